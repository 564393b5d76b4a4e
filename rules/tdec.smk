# Knowledge unlearning on TDEC (FLoRA paper §4.1-4.2): Table 1, Figures 3 and 4. GA / GD full-parameter,
# LoRA and FLoRA with GD or IHL, each stopped by the EL10 / MA forgetting criterion, on every forget set.
# Target: `snakemake --cores all tdec`.

from unlearn_repro.pipeline import tdec as tdec_pipeline
from unlearn_repro.report import tdec as tdec_report
from unlearn_repro.studies.tdec import reasoning_tasks

TDEC = CFG.tdec
TDEC_MODELS = list(TDEC.models)
# Table 1's runs (tdec.enabled), then Figure 4's: each of tdec.ablation.configs on each of tdec.ablation.targets
# (on the default targets a configuration's Table 1 run, reused)
TDEC_RUN_SPECS = tdec_pipeline.runs(CFG)
TDEC_RUNS = list(TDEC_RUN_SPECS)
TDEC_ROOT = R("tdec")
TDEC_OUTPUTS = tdec_report.outputs(TDEC_ROOT)
TDEC_REASONING = reasoning_tasks(CFG)  # the ones this run prepares
TDEC_TASKS = task_dirs(TDEC_REASONING)
# what defines the base model and its rows (a change of a configuration reruns only the unlearning runs)
TDEC_BASE_KEYS = ("models", "forget_sets", "forget_size", "row_length", "heldout_rows", "ppl_rows", "retain_rows", "n",
                  "reasoning_tasks", "memorize", "decode_batch_size", "threshold")
# tdec.threshold.source = file: the held-out text the user names is an input of the base
TDEC_THRESHOLD_FILE = [TDEC.threshold.file] if TDEC.threshold.source == "file" else []
TDEC_PAPER = {"table1": ("Table 1", "table1"), "premise": ("Table 1", "table1"), "figure3": ("Figure 3", "figure3"),
              "ablation": ("Figure 4: target modules", "figure4"), "figure4": ("Figure 4: target modules", "figure4")}
tdec_report_item = lambda path: report(
    path, caption=f"../report_captions/tdec/{TDEC_PAPER[Path(path).stem][1]}.rst", category="TDEC (FLoRA paper)",
    subcategory=TDEC_PAPER[Path(path).stem][0], labels={"file": Path(path).name})


rule tdec_base:
    """The model unlearning starts from (tiny: trained here until its forget-set rows are memorized), its rows
    (forget sets, held-out, PPL, retain), the forgetting threshold (tdec.threshold) and the premise: EL10 / MA
    of the forget sets vs that threshold."""
    input:
        CORE_SRC + src("pipeline/__init__.py", "pipeline/tdec.py", "pipeline/base_models.py", "metrics", "models",
                       "train.py", "optim", "data"),
        threshold_file=TDEC_THRESHOLD_FILE,
        pretrained=R("models/{tmodel}/pretrained"),
        tasks=[data_files(t) for t in TDEC_REASONING],
    output:
        directory(R("tdec/models/{tmodel}")),
    wildcard_constraints:
        tmodel="|".join(TDEC_MODELS),
    params:
        cli=CLI,
        tasks=TDEC_TASKS,
        tdec={k: TDEC.to_dict()[k] for k in TDEC_BASE_KEYS},
        evaluation=CFG.evaluation.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("tdec/base_{tmodel}.log"),
    benchmark:
        L("benchmarks/tdec/base_{tmodel}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} tdec-base --model {wildcards.tmodel} --pretrained {input.pretrained} --out {output} "
        "{params.tasks} > {log} 2>&1"


rule tdec_run:
    """One configuration (method x full / LoRA / FLoRA x target modules) on every forget set."""
    input:
        CORE_SRC + src("pipeline/__init__.py", "pipeline/tdec.py", "metrics", "models", "train.py", "optim", "lora",
                       "fisher/diagonal.py", "methods", "objectives.py", "losses.py"),
        base=R("tdec/models/{tmodel}"),
    output:
        R("tdec/runs/{tmodel}/{trun}.json"),
    wildcard_constraints:
        tmodel="|".join(TDEC_MODELS),
        trun="|".join(TDEC_RUNS),
    params:
        cli=CLI,
        tasks=TDEC_TASKS,
        run=lambda w: TDEC_RUN_SPECS[w.trun],
        tdec={k: v for k, v in TDEC.to_dict().items() if k not in ("configs", "ablation")},
        optimizers=CFG.optimizers.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("tdec/run_{tmodel}_{trun}.log"),
    benchmark:
        L("benchmarks/tdec/run_{tmodel}_{trun}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} tdec-run --model {wildcards.tmodel} --run {wildcards.trun} --base {input.base} --out {output} "
        "{params.tasks} > {log} 2>&1"


rule tdec_report:
    input:
        CORE_SRC + src("report"),
        bases=expand(R("tdec/models/{tmodel}"), tmodel=TDEC_MODELS),
        runs=expand(R("tdec/runs/{tmodel}/{trun}.json"), tmodel=TDEC_MODELS, trun=TDEC_RUNS),
    output:
        tables=[tdec_report_item(p) for p in TDEC_OUTPUTS["tables"]],
        figures=[tdec_report_item(p) for p in TDEC_OUTPUTS["figures"]],
        summary=TDEC_OUTPUTS["summary"],
    params:
        cli=CLI,
        root=lambda w, output: str(Path(output.summary[0]).parent.parent),
        tdec=TDEC.to_dict(),
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("tdec/report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} tdec-report --out {params.root} {input.bases} {input.runs} > {log} 2>&1"


rule tdec:
    input:
        rules.tdec_report.output,
