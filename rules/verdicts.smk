# A verdict for every qualitative claim of the paper, from every study's outputs in this run.
# Target: `snakemake --cores all verdicts` (part of the default target).


rule verdicts:
    input:
        CORE_SRC + src("report"),
        collected=expand(R("metrics/{method}.csv"), method=METHOD_NAMES),
        curves=R("main/tables/extended_cycles.csv"),
        kl=R("discussions/tables/weight_kl.csv"),
        onion=R("discussions/tables/onion.csv"),
        shift=R("discussions/tables/exposure_shift.csv"),
        memorization=R("memorization/tables/counts.csv"),
        privacy=R("privacy/tables/points.csv"),
        curvature=R("curvature/premise_main.csv"),
    output:
        report(multiext(R("verdicts"), ".csv", ".md", ".html"), category="Verdicts", subcategory="Every claim of the paper",
               caption="../report_captions/verdicts.rst"),
    params:
        cli=CLI,
        base=lambda w, output: str(Path(output[0]).with_suffix("")),
        table_cycles=list(CFG.unlearn.table_cycles),
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("verdicts.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} verdicts --out {params.base} --curves {input.curves} --kl {input.kl} --onion {input.onion} "
        "--shift {input.shift} --memorization {input.memorization} --privacy {input.privacy} --curvature {input.curvature} {input.collected} > {log} 2>&1"
