# Unlearning: one job per (method, data set, model, seed) runs all its cycles on one model.

RUN = R("runs/{method}/{dataset}/{model}/seed{seed}")


rule unlearn:
    input:
        CORE_SRC + src("methods", "fisher", "optim", "train.py", "objectives.py", "losses.py", "pipeline", "models",
                       "data/encoding.py", "data/refusals.txt"),
        finetuned=R("models/{model}/{dataset}/finetuned"),
        pretrained=R("models/{model}/pretrained"),
        data=data_files("{dataset}"),
        split=R("splits/{dataset}/seed{seed}.json"),
    output:
        run=f"{RUN}/run.json",
        checkpoints=temp(directory(f"{RUN}/checkpoints")),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{w.dataset}",
        hp=lambda w: method_params(w.method),
        out=lambda w, output: str(Path(output.run).parent),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L(f"unlearn/{{method}}/{{dataset}}/{{model}}/seed{{seed}}.log"),
    benchmark:
        L(f"benchmarks/unlearn/{{method}}/{{dataset}}/{{model}}/seed{{seed}}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} unlearn --method {wildcards.method} --dataset {wildcards.dataset} --model {wildcards.model} "
        "--seed {wildcards.seed} --finetuned {input.finetuned} --pretrained {input.pretrained} "
        "--data {params.data_dir} --split {input.split} --out {params.out} > {log} 2>&1"
