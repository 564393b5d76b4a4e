# Report: per-method metric tables, then the paper's tables and figures side by side with its numbers.


rule collect:
    input:
        CORE_SRC + src("report"),
        metrics=lambda w: expand(f"results/runs/{w.method}/{{dataset}}/{{model}}/seed{{seed}}/metrics.json",
                                 dataset=TASKS, model=MODEL_NAMES, seed=SEEDS),
    output:
        "results/metrics/{method}.csv",
    params:
        cli=CLI,
    log:
        "logs/collect/{method}.log",
    conda:
        ENV_FILE
    shell:
        "{params.cli} collect --out {output} {input.metrics} > {log} 2>&1"


rule report:
    input:
        CORE_SRC + src("report"),
        collected=expand("results/metrics/{method}.csv", method=METHOD_NAMES),
    output:
        summary="results/summary/metrics.json",
        tables=directory("results/tables"),
        figures=directory("results/figures"),
    params:
        cli=CLI,
        root=lambda w, output: str(Path(output.summary).parent.parent),
        report={"table_cycles": list(CFG.unlearn.table_cycles), "models": MODEL_NAMES, "tasks": TASKS},
    log:
        "logs/report.log",
    conda:
        ENV_FILE
    shell:
        "{params.cli} report --out {params.root} {input.collected} > {log} 2>&1"
