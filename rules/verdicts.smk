# A verdict for every qualitative claim of the paper, from every study's outputs in this run, and the overview of
# all three papers' claims. Targets: `snakemake --cores all verdicts`; `overview` (in the default target).

from unlearn_repro.report import overview as overview_report
from unlearn_repro.report import tdec as tdec_report
from unlearn_repro.report import tofu as tofu_report


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


# The overview that the default target ends with: every claim of the three papers (the verdicts above, the TDEC
# findings, the TOFU verdicts) on one page: results/<profile>/README.md (the folder's front page) and
# overview.html, which the report's landing page (report_captions/workflow.rst) shows first.
OVERVIEW_INPUTS = sorted(
    {R(p) for p in overview_report.SOURCES}
    | {p for part in tdec_report.outputs(R("tdec")).values() for p in part}
    | {p for part in tofu_report.outputs(R("tofu")).values() for p in part}
)


rule overview:
    input:
        CORE_SRC + src("report"),
        rules.verdicts.output,
        OVERVIEW_INPUTS,
    output:
        readme=R("README.md"),
        html=report(R("overview.html"), category="Overview", subcategory="Every claim of the three papers",
                    caption="../report_captions/overview.rst"),
    params:
        cli=CLI,
        root=lambda w, output: str(Path(output.readme).parent),
    resources:
        mem_mb=cpu_mem_mb("small"),
        runtime=cpu_runtime("small"),
    log:
        L("overview.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} overview --results {params.root} > {log} 2>&1"


rule claims:  # the study's target (in the default target): the verdicts and the overview of every claim
    input:
        rules.verdicts.output,
        rules.overview.output,
