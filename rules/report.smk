# Report: per-method metric tables, then the paper's tables and figures side by side with its numbers.


rule collect:
    input:
        CORE_SRC + src("report"),
        metrics=lambda w: expand(f"results/runs/{w.method}/{{dataset}}/{{model}}/seed{{seed}}/metrics.json",
                                 dataset=TASKS, model=MODEL_NAMES, seed=SEEDS),
    output:
        "results/metrics/{method}.csv",
    log:
        "logs/collect/{method}.log",
    shell:
        "{CLI} collect --method {wildcards.method} --out {output} {input.metrics} > {log} 2>&1"


rule report:
    input:
        CORE_SRC + src("report"),
        collected=expand("results/metrics/{method}.csv", method=METHOD_NAMES),
    output:
        summary="results/summary/metrics.json",
        tables=directory("results/tables"),
        figures=directory("results/figures"),
    params:
        report={"table_cycles": list(CFG.unlearn.table_cycles), "models": MODEL_NAMES, "tasks": TASKS},
    log:
        "logs/report.log",
    shell:
        "{CLI} report --out results {input.collected} > {log} 2>&1"
