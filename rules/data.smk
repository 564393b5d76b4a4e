# Data: each data set normalized into data/processed/<name>/{train,test}.jsonl + meta.json.


rule prepare_data:
    input:
        CORE_SRC + src("data"),
    output:
        data_files("{dataset}"),
    params:
        data=lambda w: {k: v for k, v in CFG.data.to_dict().items() if k not in ("tasks", "reference_corpus")},
    log:
        "logs/prepare_data/{dataset}.log",
    shell:
        "{CLI} prepare-data --dataset {wildcards.dataset} --out {PROCESSED}/{wildcards.dataset} > {log} 2>&1"


rule tokenizer:
    input:
        CORE_SRC + src("models/tokenizers.py"),
        corpus=f"{PROCESSED}/{PRETRAIN_CORPUS}/train.jsonl",
    output:
        directory("results/tokenizer"),
    params:
        tokenizer=CFG.tokenizer.to_dict(),
    log:
        "logs/tokenizer.log",
    shell:
        "{CLI} tokenizer --corpus {PROCESSED}/{PRETRAIN_CORPUS} --out {output} > {log} 2>&1"


rule splits:
    input:
        CORE_SRC + src("data/splits.py"),
        data=f"{PROCESSED}/{{dataset}}/meta.json",
    output:
        "results/splits/{dataset}/seed{seed}.json",
    params:
        unlearn=CFG.unlearn.to_dict(),
    log:
        "logs/splits/{dataset}/seed{seed}.log",
    shell:
        "{CLI} splits --dataset {wildcards.dataset} --data {PROCESSED}/{wildcards.dataset} --seed {wildcards.seed} "
        "--out {output} > {log} 2>&1"
