# SOUL on TOFU (Table 1, Figure 1): GA / GradDiff / PO / NPO with AdamW (FO) and Sophia (SO).
# Target: `snakemake --cores all tofu`.

from unlearn_repro.models.registry import tofu_sources
from unlearn_repro.report import tofu as tofu_report

TOFU = CFG.tofu
TOFU_SOURCES = tofu_sources(CFG)  # which: (registry model, fine-tuned here?)
TOFU_ROOT = R("tofu")
TOFU_OUTPUTS = tofu_report.outputs(TOFU_ROOT)
TOFU_SRC = CORE_SRC + src("pipeline/__init__.py", "pipeline/tofu.py", "metrics", "models", "optim", "train.py",
                          "data/tofu.py")
tofu_report_item = lambda path: report(
    path, category="SOUL on TOFU", subcategory="Figure 1" if path.endswith(".png") else "Table 1",
    caption=f"../report_captions/tofu/{'figure1' if path.endswith('.png') else 'table1'}.rst",
    labels={"file": Path(path).name})


rule tofu_model:
    """The base model (fine-tuned on full) or the retain model, with every TOFU metric (the premise)."""
    input:
        TOFU_SRC,
        # the model each is made from: the pretrained one fine-tuned here, or a released TOFU checkpoint
        pretrained=lambda w: R(f"models/{TOFU_SOURCES[w.which][0]}/pretrained"),
    output:
        directory(R("tofu/models/{which}")),
    wildcard_constraints:
        which="base|retain",
    params:
        cli=CLI,
        tofu={k: v for k, v in TOFU.to_dict().items() if k not in ("methods", "optimizers", "lr", "epochs",
                                                                   "batch_size", "gamma", "npo_beta", "weight_decay", "sophia")},
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("tofu/model_{which}.log"),
    benchmark:
        L("benchmarks/tofu/model_{which}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} tofu-model --which {wildcards.which} --pretrained {input.pretrained} --out {output} > {log} 2>&1"


rule tofu_unlearn:
    """One method x optimizer kind x seed: per-epoch curves and the final Table 1 metrics."""
    input:
        TOFU_SRC + src("methods", "objectives.py", "losses.py"),
        base=R("tofu/models/base"),
        retain=R("tofu/models/retain"),
    output:
        R("tofu/runs/{tofu_method}/{kind}/seed{seed}.json"),
    wildcard_constraints:
        tofu_method="|".join(TOFU.methods),
        kind="FO|SO",
    params:
        cli=CLI,
        tofu=TOFU.to_dict(),
        optimizers=CFG.optimizers.to_dict(),
        method=lambda w: CFG.methods[w.tofu_method].to_dict() if w.tofu_method in CFG.methods else {},
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("tofu/unlearn_{tofu_method}_{kind}_seed{seed}.log"),
    benchmark:
        L("benchmarks/tofu/unlearn_{tofu_method}_{kind}_seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} tofu-unlearn --method {wildcards.tofu_method} --kind {wildcards.kind} --seed {wildcards.seed} "
        "--base {input.base} --retain {input.retain} --out {output} > {log} 2>&1"


rule tofu_report:
    input:
        CORE_SRC + src("report"),
        base=R("tofu/models/base"),
        retain=R("tofu/models/retain"),
        runs=expand(R("tofu/runs/{tofu_method}/{kind}/seed{seed}.json"), tofu_method=TOFU.methods,
                    kind=["FO", "SO"], seed=SEEDS),
    output:
        tables=[tofu_report_item(p) for p in TOFU_OUTPUTS["tables"]],
        figures=[tofu_report_item(p) for p in TOFU_OUTPUTS["figures"]],
        summary=TOFU_OUTPUTS["summary"],
    params:
        cli=CLI,
        root=lambda w: TOFU_ROOT,
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("tofu/report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} tofu-report --out {params.root} --base {input.base} --retain {input.retain} {input.runs} "
        "> {log} 2>&1"


rule tofu:
    input:
        rules.tofu_report.output,
