# Evaluation: accuracy and exposure of the fine-tuned base model and of every unlearning cycle.


rule evaluate_base:
    input:
        CORE_SRC + src("metrics", "pipeline/__init__.py", "pipeline/evaluation.py", "data/encoding.py"),
        finetuned=R("models/{model}/{dataset}/finetuned"),
        data=data_files("{dataset}"),
        reference=REFERENCE_INPUT,
        split=R("splits/{dataset}/seed{seed}.json"),
    output:
        R("eval/base/{dataset}/{model}/seed{seed}.json"),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{w.dataset}",
        reference=REFERENCE_ARG,
        evaluation=CFG.evaluation.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("evaluate_base/{dataset}/{model}/seed{seed}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} evaluate-base --dataset {wildcards.dataset} --model {wildcards.model} --seed {wildcards.seed} "
        "--finetuned {input.finetuned} --data {params.data_dir} --reference {params.reference} "
        "--split {input.split} --out {output} > {log} 2>&1"


rule evaluate:
    input:
        CORE_SRC + src("metrics", "pipeline/__init__.py", "pipeline/evaluation.py", "data/encoding.py"),
        run=f"{RUN}/run.json",
        checkpoints=f"{RUN}/checkpoints",
        base=R("eval/base/{dataset}/{model}/seed{seed}.json"),
        data=data_files("{dataset}"),
        reference=REFERENCE_INPUT,
        split=R("splits/{dataset}/seed{seed}.json"),
    output:
        f"{RUN}/metrics.json",
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{w.dataset}",
        reference=REFERENCE_ARG,
        evaluation=CFG.evaluation.to_dict(),
        run=lambda w, input: str(Path(input.run).parent),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L(f"evaluate/{{method}}/{{dataset}}/{{model}}/seed{{seed}}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} evaluate --run {params.run} --base {input.base} --data {params.data_dir} "
        "--reference {params.reference} --split {input.split} --out {output} > {log} 2>&1"


rule base_evaluations:
    input:
        expand(R("eval/base/{dataset}/{model}/seed{seed}.json"), dataset=TASKS, model=MODEL_NAMES, seed=SEEDS),
