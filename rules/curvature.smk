# The curvature premise of every second-order run (docs/curvature.md): one table per study, read from the
# run records the main, memorization, privacy and TOFU studies wrote. Target: `snakemake --cores all curvature`.

from unlearn_repro.studies.curvature import PREMISE_STUDIES

NEWTON_METHODS = ("fisher_removal", "fisher_forgetting")


second_order_of = lambda methods: [m for m in methods if m in NEWTON_METHODS]
# every second-order run record of this config, by study (the rules of the other studies make them)
curvature_records = lambda w: {
    "main": expand(R("runs/{method}/{dataset}/{model}/seed{seed}/run.json"), method=second_order_of(METHOD_NAMES),
                   dataset=TASKS, model=MODEL_NAMES, seed=SEEDS),
    "memorization": expand(f"{MEM_RUN}/run.json", method=second_order_of(MEM_METHODS), corpus=list(MEM.corpora),
                           model=MEM_MODELS, seed=list(MEM.seeds)),
    "privacy": expand(R("privacy/unlearn/{method}/{dataset}/{model}/seed{seed}.json"), method=second_order_of(PRIV_METHODS),
                      dataset=privacy_pipeline.datasets(CFG), model=MODEL_NAMES, seed=PRIV_SEEDS),
    "tofu": expand(R("tofu/runs/{tofu_method}/{kind}/seed{seed}.json"), tofu_method=TOFU.methods,
                   kind=["FO", "SO"], seed=SEEDS),
}


rule curvature:
    input:
        CORE_SRC + src("report/curvature.py", "metrics/curvature.py"),
        unpack(curvature_records),
    output:
        [report(R(f"curvature/premise_{study}.{ext}"), category="Curvature premise", subcategory=study,
                caption="../report_captions/curvature/premise.rst", labels={"study": study, "file": ext})
         for study in PREMISE_STUDIES for ext in ("md", "csv")],
    params:
        cli=CLI,
        out=lambda w, output: str(Path(output[0]).parent),
        records=lambda w, input: " ".join(f"{s}={f}" for s in PREMISE_STUDIES for f in input[s]),
    resources:
        mem_mb=cpu_mem_mb("small"),
        runtime=cpu_runtime("small"),
    log:
        L("curvature.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} curvature-premise --out {params.out} {params.records} > {log} 2>&1"
