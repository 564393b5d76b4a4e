# The main study (paper §5): per-method metric tables, then Tables 3-5, 7, 9 and Figures 2, 5 beside the
# paper's numbers. Target: `snakemake --cores all main`.

from unlearn_repro.report import paper_tables

MAIN_ROOT = R("main")
MAIN_OUTPUTS = main_report.outputs(CFG, MAIN_ROOT)

# The Snakemake report (`snakemake --report results/<profile>/report.html`, `make report`; its front page
# is the Snakefile's): every table and figure of this study is a report item under the paper's table or
# figure it reproduces; its caption (report_captions/main/*.rst) says what the paper shows and embeds the
# table itself, ours | paper.

MAIN_CATEGORY = "Main study (§5)"
MAIN_PAPER = {  # file stem -> (subcategory: the paper's table or figure, caption file, what the file shows)
    **{f"main_{t}": (f"Table {paper_tables.TABLE_NUMBER[t]}: {t}", f"main_{t}", "Δacc, Δexp: ours | paper")
       if t in paper_tables.TABLE_NUMBER else (f"Task table: {t}", "main_task", "Δacc, Δexp: ours") for t in TASKS},
    "ranking": ("Table 7: overall ranking", "ranking", "mean ± std of ranks: ours | paper"),
    "ranking_numeric": ("Table 7: overall ranking", "ranking", "the same ranks as numbers"),
    "runtime": ("Figure 2: runtime per cycle", "runtime", "seconds per cycle, per method and data set"),
    "extended_cycles": ("Figure 5: extended cycles", "extended_cycles", "accuracy and NLL after each cycle"),
    **{f"extended_cycles_{m}": ("Figure 5: extended cycles", "extended_cycles", f"curves of {m}")
       for m in CFG.unlearn.extended_models},
}
# one report item (a lambda: the linter wants functions in rules/common.smk); captions are read relative to this file
main_report_item = lambda path, subcategory="Other", caption=None, shows="": report(
    path, caption=f"../report_captions/main/{caption}.rst" if caption else None, category=MAIN_CATEGORY,
    subcategory=subcategory,
    labels={"file": Path(path).name, "shows": f"figure: {shows}" if path.endswith(".png") else shows})


rule collect:
    input:
        CORE_SRC + src("report/tables.py"),
        metrics=lambda w: expand(R(f"runs/{w.method}/{{dataset}}/{{model}}/seed{{seed}}/metrics.json"),
                                 dataset=TASKS, model=MODEL_NAMES, seed=SEEDS),
        # each run's own record beside its metrics (retain-set size, Fisher rebuilds: report/tables.RUN_COLUMNS)
        runs=lambda w: expand(R(f"runs/{w.method}/{{dataset}}/{{model}}/seed{{seed}}/run.json"),
                              dataset=TASKS, model=MODEL_NAMES, seed=SEEDS),
    output:
        R("metrics/{method}.csv"),
    params:
        cli=CLI,
    resources:
        mem_mb=cpu_mem_mb("small"),
        runtime=cpu_runtime("small"),
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
        tables=[main_report_item(p, *MAIN_PAPER.get(Path(p).stem, ())) for p in MAIN_OUTPUTS["tables"]],
        figures=[main_report_item(p, *MAIN_PAPER.get(Path(p).stem, ())) for p in MAIN_OUTPUTS["figures"]],
        summary=MAIN_OUTPUTS["summary"],
    params:
        cli=CLI,
        root=lambda w: MAIN_ROOT,  # a function: the linter flags a plain string that prefixes the outputs
        report={"table_cycles": list(CFG.unlearn.table_cycles), "models": MODEL_NAMES, "tasks": TASKS,
                "extended": [list(CFG.unlearn.extended_datasets), list(CFG.unlearn.extended_models)]},
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("main_report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} main-report --out {params.root} {input.collected} > {log} 2>&1"


rule main:
    input:
        rules.main_report.output,
