# The memorization case studies (paper §6): MT (mtsamples) and Enron, Table 8 and Table 10.
# Each corpus is segmented, the pretrained model trained on it until it memorizes (one base model per
# corpus and model), targets drawn per seed, and every enabled method unlearns them once (D+ = the rest).
# Target: `snakemake --cores all memorization`.
from unlearn_repro.pipeline.memorization import study_config
from unlearn_repro.report import memorization as memorization_report

MEM = CFG.memorization
MEM_CFG = study_config(CFG)
MEM_DATA = R("memorization/data/{corpus}")  # derived from the prepared mirror data: the study's own output
MEM_ROOT = R("memorization")
MEM_RUN = R("memorization/runs/{method}/{corpus}/{model}/seed{seed}")
MEM_OUTPUTS = memorization_report.outputs(CFG, MEM_ROOT)
MEM_EXTRACTION = {k: MEM[k] for k in ("prefix_tokens", "suffix_tokens", "top_k", "samples", "generate_batch_size")}
MEM_MODELS = list(MEM.models or MODEL_NAMES)
MEM_METHODS = [m for m in METHOD_NAMES if m in (MEM.methods or METHOD_NAMES)]  # the listed ones that are enabled
if CFG.data.source == "mirror":
    check_mirror(CFG.data.mirror_dir, list(MEM.corpora))
mem_data_dir = lambda w: R(f"memorization/data/{w.corpus}")  # a corpus' segmented data (MEM_DATA's folder)
mem_report_item = lambda path: report(
    path, caption=f"../report_captions/memorization/{'table10' if 'table10' in path else 'table8'}.rst",
    category="Memorization (§6)", subcategory="Table 10: indelible memorizations" if "table10" in path
    else "Table 8: memorized texts after unlearning", labels={"file": Path(path).name})


wildcard_constraints:
    corpus="|".join(MEM.corpora),


rule memorization_data:
    input:
        CORE_SRC + src("data"),
    output:
        multiext(f"{MEM_DATA}/", "train.jsonl", "test.jsonl", "heldout.jsonl", "meta.json"),
    params:
        cli=CLI,
        out=mem_data_dir,
        data=lambda w: data_identity(CFG, w.corpus, ("source", "hub_paths")),
        segments={k: MEM[k] for k in ("max_texts", "max_segments", "segment_words")},
    resources:
        mem_mb=cpu_mem_mb("data"),
        runtime=cpu_runtime("data"),
    log:
        L("memorization/data/{corpus}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} memorization-data --corpus {wildcards.corpus} --out {params.out} > {log} 2>&1"


rule memorize:
    input:
        CORE_SRC + src("models", "optim", "train.py", "pipeline/__init__.py", "pipeline/memorization.py",
                       "data/encoding.py"),
        pretrained=R("models/{model}/pretrained"),
        data=f"{MEM_DATA}/train.jsonl",
    output:
        directory(R("memorization/models/{corpus}/{model}")),
    params:
        cli=CLI,
        data_dir=mem_data_dir,
        train=MEM.train.to_dict(),
        max_length=MEM.max_length,
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("memorization/memorize/{corpus}/{model}.log"),
    benchmark:
        L("benchmarks/memorization/memorize/{corpus}/{model}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} memorize --model {wildcards.model} --corpus {wildcards.corpus} --pretrained {input.pretrained} "
        "--data {params.data_dir} --out {output} > {log} 2>&1"


rule memorization_targets:
    input:
        CORE_SRC + src("pipeline/memorization.py", "data/encoding.py"),
        model=R("memorization/models/{corpus}/{model}"),
        data=f"{MEM_DATA}/train.jsonl",
    output:
        R("memorization/targets/{corpus}/{model}/seed{seed}.json"),
    params:
        cli=CLI,
        data_dir=mem_data_dir,
        targets={k: MEM[k] for k in ("n_targets", "min_target_tokens", "prefix_tokens", "suffix_tokens", "max_length")},
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("memorization/targets/{corpus}/{model}/seed{seed}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} memorization-targets --corpus {wildcards.corpus} --model-dir {input.model} "
        "--data {params.data_dir} --seed {wildcards.seed} --out {output} > {log} 2>&1"


rule memorization_base:
    """Table 8's "No unlearning" row (the premise) and each target's near-duplicates (Table 10)."""
    input:
        CORE_SRC + src("pipeline/memorization.py", "metrics/verbatim.py", "data/encoding.py"),
        model=R("memorization/models/{corpus}/{model}"),
        data=f"{MEM_DATA}/train.jsonl",
        split=R("memorization/targets/{corpus}/{model}/seed{seed}.json"),
    output:
        R("memorization/runs/none/{corpus}/{model}/seed{seed}/extraction.json"),
    params:
        cli=CLI,
        data_dir=mem_data_dir,
        extraction=MEM_EXTRACTION,
        ngram=MEM.ngram,
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("memorization/base/{corpus}/{model}/seed{seed}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} memorization-base --corpus {wildcards.corpus} --model {wildcards.model} --seed {wildcards.seed} "
        "--model-dir {input.model} --data {params.data_dir} --split {input.split} --out {output} > {log} 2>&1"


rule memorization_unlearn:
    """One method unlearns the seed's targets once (pipeline.unlearning.run), then the extraction test."""
    input:
        CORE_SRC + src("methods", "fisher", "optim", "train.py", "objectives.py", "losses.py", "pipeline", "models",
                       "metrics/verbatim.py", "data/encoding.py", "data/refusals.txt"),
        memorized=R("memorization/models/{corpus}/{model}"),
        pretrained=R("models/{model}/pretrained"),
        data=f"{MEM_DATA}/train.jsonl",
        split=R("memorization/targets/{corpus}/{model}/seed{seed}.json"),
    output:
        run=f"{MEM_RUN}/run.json",
        extraction=f"{MEM_RUN}/extraction.json",
    params:
        cli=CLI,
        data_dir=mem_data_dir,
        hp=lambda w: METHODS.get(w.method).params(MEM_CFG),
        extraction=MEM_EXTRACTION,
        out=lambda w, output: str(Path(output.run).parent),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("memorization/unlearn/{method}/{corpus}/{model}/seed{seed}.log"),
    benchmark:
        L("benchmarks/memorization/unlearn/{method}/{corpus}/{model}/seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} memorization-unlearn --method {wildcards.method} --corpus {wildcards.corpus} "
        "--model {wildcards.model} --seed {wildcards.seed} --memorized {input.memorized} "
        "--pretrained {input.pretrained} --data {params.data_dir} --split {input.split} --out {params.out} > {log} 2>&1"


rule memorization_report:
    input:
        CORE_SRC + src("report", "methods"),
        extractions=expand(R("memorization/runs/{method}/{corpus}/{model}/seed{seed}/extraction.json"),
                           method=["none"] + MEM_METHODS, corpus=list(MEM.corpora), model=MEM_MODELS, seed=list(MEM.seeds)),
    output:
        tables=[mem_report_item(p) for p in MEM_OUTPUTS["tables"]],
        figures=[mem_report_item(p) for p in MEM_OUTPUTS["figures"]],
        summary=MEM_OUTPUTS["summary"],
    params:
        cli=CLI,
        root=lambda w: MEM_ROOT,
        examples=MEM.examples,
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("memorization/report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} memorization-report --out {params.root} {input.extractions} > {log} 2>&1"


rule memorization:
    input:
        rules.memorization_report.output,
