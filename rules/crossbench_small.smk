# The cross-paper benchmark on a smaller grid, in the default target (issue 25): crossbench.smk's rules, each
# job computing with this study's config (crossbench_small.factors and .enabled over the crossbench block, handed
# to it as its resolved config), writing under results/<profile>/crossbench_small/. The full grid stays
# `make crossbench`: it does not fit in `make reproduce`'s 2 hours (docs/crossbench.md).
# Target: `snakemake --cores all crossbench_small`.

from unlearn_repro.studies.crossbench_small import small_config

XBS_CFG = small_config(CFG)
xb_pipeline.check(XBS_CFG)
XBS_CLI = f"UNLEARN_CONFIG={params_config.write_resolved(XBS_CFG, '.snakemake/unlearn_config')} {CLI}"
XBS_ROOT = R("crossbench_small")
XBS_RUNS = {b: "|".join(xb_pipeline.runnable(XBS_CFG, b)) or "^$" for b in xb_pipeline.BENCHMARKS}
XBS_OUTPUTS = xb_report.outputs(XBS_CFG, XBS_ROOT)
xbs_report_item = lambda path: report(path, caption="../report_captions/crossbench/crossbench.rst",
                                      category="Cross-paper benchmark, default grid (issue 25)",
                                      labels={"file": Path(path).name})


use rule crossbench_tasks as crossbench_small_tasks with:
    output:
        R("crossbench_small/points/tasks/{dataset}/{model}/{xentry}/seed{seed}.json"),
    wildcard_constraints:
        xentry=XBS_RUNS["tasks"],
    params:
        cli=XBS_CLI,
        run=lambda w: xb_pipeline.rerun_params(XBS_CFG, "tasks", w.xentry),
    log:
        L("crossbench_small/tasks/{dataset}/{model}/{xentry}/seed{seed}.log"),
    benchmark:
        L("benchmarks/crossbench_small/tasks/{dataset}/{model}/{xentry}/seed{seed}.tsv")



use rule crossbench_tofu as crossbench_small_tofu with:
    output:
        R("crossbench_small/points/tofu/{xentry}/seed{seed}.json"),
    wildcard_constraints:
        xentry=XBS_RUNS["tofu"],
    params:
        cli=XBS_CLI,
        run=lambda w: xb_pipeline.rerun_params(XBS_CFG, "tofu", w.xentry),
    log:
        L("crossbench_small/tofu/{xentry}/seed{seed}.log"),
    benchmark:
        L("benchmarks/crossbench_small/tofu/{xentry}/seed{seed}.tsv")


use rule crossbench_tdec as crossbench_small_tdec with:
    output:
        R("crossbench_small/points/tdec/{tmodel}/{xentry}/seed{seed}.json"),
    wildcard_constraints:
        xentry=XBS_RUNS["tdec"],
        tmodel="|".join(CFG.tdec.models),
    params:
        cli=XBS_CLI,
        run=lambda w: xb_pipeline.rerun_params(XBS_CFG, "tdec", w.xentry),
    log:
        L("crossbench_small/tdec/{tmodel}/{xentry}/seed{seed}.log"),
    benchmark:
        L("benchmarks/crossbench_small/tdec/{tmodel}/{xentry}/seed{seed}.tsv")


use rule crossbench_memorization as crossbench_small_memorization with:
    output:
        R("crossbench_small/points/memorization/{corpus}/{model}/{xentry}/seed{seed}.json"),
    wildcard_constraints:
        xentry=XBS_RUNS["memorization"],
    params:
        cli=XBS_CLI,
        run=lambda w: xb_pipeline.rerun_params(XBS_CFG, "memorization", w.xentry),
    log:
        L("crossbench_small/memorization/{corpus}/{model}/{xentry}/seed{seed}.log"),
    benchmark:
        L("benchmarks/crossbench_small/memorization/{corpus}/{model}/{xentry}/seed{seed}.tsv")


use rule crossbench_report as crossbench_small_report with:
    input:
        CORE_SRC + src("report"),
        points=xb_pipeline.point_files(XBS_CFG, XBS_ROOT),
    output:
        tables=[xbs_report_item(p) for p in XBS_OUTPUTS["tables"]],
        figures=[xbs_report_item(p) for p in XBS_OUTPUTS["figures"]],
        summary=XBS_OUTPUTS["summary"],
    params:
        cli=XBS_CLI,
        root=lambda w: XBS_ROOT,
        settings=XBS_CFG.crossbench.to_dict(),
    log:
        L("crossbench_small/report.log"),


rule crossbench_small:
    input:
        rules.crossbench_small_report.output,
