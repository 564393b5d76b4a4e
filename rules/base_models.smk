# Base models: pretrained (tiny: on WikiText-2 here; hub: as published) and fine-tuned on each task's D.


rule base_model:
    input:
        CORE_SRC + src("models", "optim", "train.py", "pipeline/__init__.py", "pipeline/base_models.py"),
        # tiny models are pretrained here on WikiText-2; hub models come pretrained and need no corpus
        corpus=lambda w: [f"{PROCESSED}/{PRETRAIN_CORPUS}/train.jsonl"] if MODELS.get(w.model).is_tiny else [],
        tokenizer=lambda w: [R("tokenizer")] if needs_tokenizer(w.model) else [],
    output:
        directory(R("models/{model}/pretrained")),
    params:
        cli=CLI,
        corpus=lambda w, input: str(Path(input.corpus[0]).parent) if input.corpus else "none",
        pretrain=lambda w: CFG.pretrain.to_dict() if MODELS.get(w.model).is_tiny else {},
        max_length=CFG.data.max_length,
        tokenizer_dir=lambda w: R("tokenizer") if needs_tokenizer(w.model) else "none",
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("base_model/{model}.log"),
    benchmark:
        L("benchmarks/base_model/{model}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} base-model --model {wildcards.model} --corpus {params.corpus} "
        "--tokenizer {params.tokenizer_dir} --out {output} > {log} 2>&1"


rule finetune:
    input:
        CORE_SRC + src("models", "optim", "train.py", "pipeline/__init__.py", "pipeline/base_models.py",
                       "data/encoding.py"),
        pretrained=R("models/{model}/pretrained"),
        data=data_files("{dataset}"),
    output:
        directory(R("models/{model}/{dataset}/finetuned")),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{w.dataset}",
        finetune=CFG.finetune.to_dict(),
        max_length=CFG.data.max_length,
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("finetune/{dataset}/{model}.log"),
    benchmark:
        L("benchmarks/finetune/{dataset}/{model}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} finetune --model {wildcards.model} --dataset {wildcards.dataset} --pretrained {input.pretrained} "
        "--data {params.data_dir} --out {output} > {log} 2>&1"


rule base_models:
    input:
        expand(R("models/{model}/{dataset}/finetuned"), model=MODEL_NAMES, dataset=TASKS),
        expand(R("splits/{dataset}/seed{seed}.json"), dataset=TASKS, seed=SEEDS),
