# The main study (paper §5): per-method metric tables, then Tables 3-5, 7, 9 and Figures 2, 5 beside the
# paper's numbers. Target: `snakemake --cores all main`.

MAIN_ROOT = R("main")
MAIN_OUTPUTS = main_report.outputs(CFG, MAIN_ROOT)


rule collect:
    input:
        CORE_SRC + src("report/tables.py"),
        metrics=lambda w: expand(R(f"runs/{w.method}/{{dataset}}/{{model}}/seed{{seed}}/metrics.json"),
                                 dataset=TASKS, model=MODEL_NAMES, seed=SEEDS),
    output:
        R("metrics/{method}.csv"),
    params:
        cli=CLI,
    log:
        L("collect/{method}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} collect --out {output} {input.metrics} > {log} 2>&1"


rule main_report:
    input:
        CORE_SRC + src("report", "methods"),
        collected=expand(R("metrics/{method}.csv"), method=METHOD_NAMES),
    output:
        tables=report(MAIN_OUTPUTS["tables"], category="Main study (§5)", subcategory="Tables"),
        figures=report(MAIN_OUTPUTS["figures"], category="Main study (§5)", subcategory="Figures"),
        summary=MAIN_OUTPUTS["summary"],
    params:
        cli=CLI,
        root=MAIN_ROOT,
        report={"table_cycles": list(CFG.unlearn.table_cycles), "models": MODEL_NAMES, "tasks": TASKS,
                "extended": [list(CFG.unlearn.extended_datasets), list(CFG.unlearn.extended_models)]},
    log:
        L("main_report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} main-report --out {params.root} {input.collected} > {log} 2>&1"


rule main:
    input:
        rules.main_report.output,
