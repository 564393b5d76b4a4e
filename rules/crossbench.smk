# The cross-paper benchmark (issue 25): every entry (method, optimizer, adapter) on every forget task at one
# step grid, run by each task's own study code on the models that study makes; leaderboards, Pareto fronts,
# a rank table and the cross-paper verdicts. Not in the default target: `make crossbench`.
# Target: `snakemake --cores all crossbench`.

from unlearn_repro.pipeline import crossbench as xb_pipeline
from unlearn_repro.report import crossbench as xb_report
from unlearn_repro.studies.tdec import reasoning_tasks

XB = CFG.crossbench
xb_pipeline.check(CFG)
XB_ROOT = R("crossbench")
XB_RUNS = {b: "|".join(xb_pipeline.runnable(CFG, b)) or "^$" for b in xb_pipeline.BENCHMARKS}  # wildcard
XB_OUTPUTS = xb_report.outputs(CFG, XB_ROOT)
XB_TDEC_REASONING = reasoning_tasks(CFG)  # TDEC's reasoning tasks, as rules/tdec.smk scores them
XB_SRC = CORE_SRC + src("methods", "fisher", "optim", "lora", "train.py", "objectives.py", "losses.py", "pipeline",
                        "models", "metrics", "data")
xb_report_item = lambda path: report(path, caption="../report_captions/crossbench/crossbench.rst",
                                     category="Cross-paper benchmark (issue 25)", labels={"file": Path(path).name})


rule crossbench_tasks:
    """One entry on a main-study task set: cycle 1 at every grid point, scored by the main study's evaluation."""
    input:
        XB_SRC,
        finetuned=R("models/{model}/{dataset}/finetuned"),
        pretrained=R("models/{model}/pretrained"),
        data=data_files("{dataset}"),
        reference=REFERENCE_INPUT,
        split=R("splits/{dataset}/seed{seed}.json"),
        base=R("eval/base/{dataset}/{model}/seed{seed}.json"),
    output:
        R("crossbench/points/tasks/{dataset}/{model}/{xentry}/seed{seed}.json"),
    wildcard_constraints:
        xentry=XB_RUNS["tasks"],
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{w.dataset}",
        reference=REFERENCE_ARG,
        run=lambda w: xb_pipeline.rerun_params(CFG, "tasks", w.xentry),
        evaluation=CFG.evaluation.to_dict(),
        lora=CFG.tdec.lora.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("crossbench/tasks/{dataset}/{model}/{xentry}/seed{seed}.log"),
    benchmark:
        L("benchmarks/crossbench/tasks/{dataset}/{model}/{xentry}/seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} crossbench-points --benchmark tasks --entry {wildcards.xentry} --seed {wildcards.seed} "
        "--where dataset={wildcards.dataset} model={wildcards.model} --inputs finetuned={input.finetuned} "
        "pretrained={input.pretrained} data={params.data_dir} reference={params.reference} split={input.split} "
        "base={input.base} --out {output} > {log} 2>&1"


rule crossbench_tofu:
    """One loss-based entry on TOFU at every grid point (the TOFU study's run, lean: its final metrics)."""
    input:
        XB_SRC,
        base=R("tofu/models/base"),
        retain=R("tofu/models/retain"),
    output:
        R("crossbench/points/tofu/{xentry}/seed{seed}.json"),
    wildcard_constraints:
        xentry=XB_RUNS["tofu"],
    params:
        cli=CLI,
        model=CFG.tofu.model,
        run=lambda w: xb_pipeline.rerun_params(CFG, "tofu", w.xentry),
        tofu=CFG.tofu.to_dict(),
        optimizers=CFG.optimizers.to_dict(),
        lora=CFG.tdec.lora.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("crossbench/tofu/{xentry}/seed{seed}.log"),
    benchmark:
        L("benchmarks/crossbench/tofu/{xentry}/seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} crossbench-points --benchmark tofu --entry {wildcards.xentry} --seed {wildcards.seed} "
        "--where model={params.model} --inputs base={input.base} retain={input.retain} --out {output} > {log} 2>&1"


rule crossbench_tdec:
    """One loss-based entry on one TDEC forget set at every grid point, stopped by the EL10 / MA criterion."""
    input:
        XB_SRC,
        base=R("tdec/models/{tmodel}"),
        tasks=[data_files(t) for t in XB_TDEC_REASONING],
    output:
        R("crossbench/points/tdec/{tmodel}/{xentry}/seed{seed}.json"),
    wildcard_constraints:
        xentry=XB_RUNS["tdec"],
        tmodel="|".join(CFG.tdec.models),
    params:
        cli=CLI,
        tasks=task_dirs(XB_TDEC_REASONING),
        run=lambda w: xb_pipeline.rerun_params(CFG, "tdec", w.xentry),
        tdec={k: v for k, v in CFG.tdec.to_dict().items() if k not in ("configs", "ablation", "enabled")},
        optimizers=CFG.optimizers.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("crossbench/tdec/{tmodel}/{xentry}/seed{seed}.log"),
    benchmark:
        L("benchmarks/crossbench/tdec/{tmodel}/{xentry}/seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} crossbench-points --benchmark tdec --entry {wildcards.xentry} --seed {wildcards.seed} "
        "--where model={wildcards.tmodel} --inputs base={input.base} --tasks {params.tasks} --out {output} > {log} 2>&1"


rule crossbench_memorization:
    """One entry unlearns a memorization seed's targets at every grid point, then the extraction test."""
    input:
        XB_SRC,
        memorized=R("memorization/models/{corpus}/{model}"),
        pretrained=R("models/{model}/pretrained"),
        data=R("memorization/data/{corpus}/train.jsonl"),
        split=R("memorization/targets/{corpus}/{model}/seed{seed}.json"),
        base=R("memorization/runs/none/{corpus}/{model}/seed{seed}/extraction.json"),
    output:
        R("crossbench/points/memorization/{corpus}/{model}/{xentry}/seed{seed}.json"),
    wildcard_constraints:
        xentry=XB_RUNS["memorization"],
    params:
        cli=CLI,
        data_dir=lambda w: R(f"memorization/data/{w.corpus}"),
        run=lambda w: xb_pipeline.rerun_params(CFG, "memorization", w.xentry),
        memorization=CFG.memorization.to_dict(),
        lora=CFG.tdec.lora.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("crossbench/memorization/{corpus}/{model}/{xentry}/seed{seed}.log"),
    benchmark:
        L("benchmarks/crossbench/memorization/{corpus}/{model}/{xentry}/seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} crossbench-points --benchmark memorization --entry {wildcards.xentry} --seed {wildcards.seed} "
        "--where dataset={wildcards.corpus} model={wildcards.model} --inputs memorized={input.memorized} "
        "pretrained={input.pretrained} data={params.data_dir} split={input.split} base={input.base} "
        "--out {output} > {log} 2>&1"


rule crossbench_report:
    input:
        CORE_SRC + src("report"),
        points=xb_pipeline.point_files(CFG, XB_ROOT),
    output:
        tables=[xb_report_item(p) for p in XB_OUTPUTS["tables"]],
        figures=[xb_report_item(p) for p in XB_OUTPUTS["figures"]],
        summary=XB_OUTPUTS["summary"],
    params:
        cli=CLI,
        root=lambda w: XB_ROOT,
        settings=XB.to_dict(),
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("crossbench/report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} crossbench-report --out {params.root} {input.points} > {log} 2>&1"


rule crossbench:
    input:
        rules.crossbench_report.output,
