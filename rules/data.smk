# Data: each data set normalized into data/processed/<name>/ (train, test[, heldout] jsonl + meta.json).
from unlearn_repro.data.splits import data_identity

# what a data set is prepared from (the rest of data: is the job list, or another rule's)
PREPARE_KEYS = [k for k in CFG.data.to_dict() if k not in ("tasks", "reference_corpus", "mirror_dir")]


rule prepare_data:
    input:
        CORE_SRC + src("data"),
    output:
        data_files("{dataset}"),
    wildcard_constraints:
        dataset="|".join(sorted(set(TASKS) | set(CORPORA))),
    params:
        cli=CLI,
        out=lambda w: f"{PROCESSED}/{w.dataset}",
        data=lambda w: data_identity(CFG, w.dataset, PREPARE_KEYS),
    resources:
        mem_mb=cpu_mem_mb("data"),
        runtime=cpu_runtime("data"),
    log:
        L("prepare_data/{dataset}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} prepare-data --dataset {wildcards.dataset} --out {params.out} > {log} 2>&1"


rule tokenizer:
    input:
        CORE_SRC + src("models/tokenizers.py"),
        corpus=f"{PROCESSED}/{PRETRAIN_CORPUS}/train.jsonl",
    output:
        directory(R("tokenizer")),
    params:
        cli=CLI,
        corpus=lambda w, input: str(Path(input.corpus).parent),
        tokenizer=CFG.tokenizer.to_dict(),
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("tokenizer.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} tokenizer --corpus {params.corpus} --out {output} > {log} 2>&1"


rule splits:
    input:
        CORE_SRC + src("data/splits.py"),
        data=f"{PROCESSED}/{{dataset}}/meta.json",
    output:
        R("splits/{dataset}/seed{seed}.json"),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{w.dataset}",
        unlearn=CFG.unlearn.to_dict(),
    resources:
        mem_mb=cpu_mem_mb("small"),
        runtime=cpu_runtime("small"),
    log:
        L("splits/{dataset}/seed{seed}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} splits --dataset {wildcards.dataset} --data {params.data_dir} --seed {wildcards.seed} "
        "--out {output} > {log} 2>&1"


rule download:  # `snakemake download` on a login node: every hub model and data set of the profile in $HF_HOME
    localrule: True
    input:
        CORE_SRC + src("data", "hub_check.py"),
    output:
        R("hub/download.json"),
    params:
        cli=CLI,
        models=hub.needed_models(CFG),
        datasets=hub_check.all_datasets(CFG),  # every study's, not only the main one's
        sources=dict(CFG.get("model_sources") or {}),
    log:
        L("download.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} download --out {output} 2>&1 | tee {log}"
