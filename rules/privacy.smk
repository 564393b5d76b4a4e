# The privacy study (paper §7): DP-SGD fine-tuned models audited on the main study's cycle-1 forget set, and
# each enabled method at a grid of its coefficient on the same samples (Figure 3); once per seed of
# privacy.seeds (each seed: its split's forget set, its DP-SGD and unlearning noise).
# Target: `snakemake --cores all privacy`.

from unlearn_repro.pipeline import privacy as privacy_pipeline
from unlearn_repro.pipeline import main_points
from unlearn_repro.pipeline.main_points import main_arg
from unlearn_repro.report import privacy as privacy_report

PRIV = CFG.privacy
privacy_pipeline.check(CFG)
PRIV_METHODS = privacy_pipeline.methods(CFG)
PRIV_SEEDS = privacy_pipeline.seeds(CFG)
PRIV_ROOT = R("privacy")
PRIV_OUTPUTS = privacy_report.outputs(PRIV_ROOT)
PRIV_COMMON = dict(
    pretrained=R("models/{model}/pretrained"),
    finetuned=R("models/{model}/{dataset}/finetuned"),
    data=data_files("{dataset}"),
    reference=REFERENCE_INPUT,
    split=R("splits/{dataset}/seed{seed}.json"),
)
priv_report_item = lambda path: report(path, caption="../report_captions/privacy.rst", category="Privacy (§7)",
                                       subcategory="Figure 3: privacy–utility trade-off", labels={"file": Path(path).name})


rule privacy_dp:
    """DP-SGD fine-tuning at each ε (opacus), every model audited; the ordinary model is the ε = ∞ point."""
    input:
        CORE_SRC + src("dp.py", "pipeline", "metrics", "train.py", "optim", "models", "losses.py", "data/encoding.py"),
        **PRIV_COMMON,
    output:
        points=R("privacy/dp/{dataset}/{model}/seed{seed}/points.json"),
        models=directory(R("privacy/dp/{dataset}/{model}/seed{seed}/models")),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{w.dataset}",
        reference=REFERENCE_ARG,
        privacy={k: v for k, v in PRIV.to_dict().items() if k not in ("methods", "grids")},
        finetune=CFG.finetune.to_dict(),
        evaluation=CFG.evaluation.to_dict(),
        out=lambda w, output: str(Path(output.points).parent),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("privacy/dp/{dataset}/{model}/seed{seed}.log"),
    benchmark:
        L("benchmarks/privacy/dp/{dataset}/{model}/seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} privacy-dp --dataset {wildcards.dataset} --model {wildcards.model} --seed {wildcards.seed} "
        "--pretrained {input.pretrained} "
        "--finetuned {input.finetuned} --data {params.data_dir} --reference {params.reference} --split {input.split} "
        "--out {params.out} > {log} 2>&1"


rule privacy_unlearn:
    """One method at each value of its coefficient grid (cycle 1 of the main study's unlearning), audited."""
    input:
        CORE_SRC + src("methods", "fisher", "optim", "train.py", "objectives.py", "losses.py", "pipeline", "models",
                       "metrics", "data/encoding.py", "data/refusals.txt"),
        **PRIV_COMMON,
        main=lambda w: main_points.main_metrics(CFG, R("runs"), w.method, w.dataset, w.model, w.seed,
                                                privacy_pipeline.grid_keys(CFG, w.method),
                                                PRIV.grids[w.method]["values"]),
    output:
        R("privacy/unlearn/{method}/{dataset}/{model}/seed{seed}.json"),
    params:
        cli=CLI,
        main=main_arg,
        data_dir=lambda w: f"{PROCESSED}/{w.dataset}",
        reference=REFERENCE_ARG,
        grid=lambda w: PRIV.grids[w.method].to_dict(),
        hp=lambda w: method_params(w.method),
        evaluation=CFG.evaluation.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("privacy/unlearn/{method}/{dataset}/{model}/seed{seed}.log"),
    benchmark:
        L("benchmarks/privacy/unlearn/{method}/{dataset}/{model}/seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} privacy-unlearn --method {wildcards.method} --dataset {wildcards.dataset} --model {wildcards.model} "
        "--seed {wildcards.seed} "
        "--pretrained {input.pretrained} --finetuned {input.finetuned} --data {params.data_dir} "
        "--reference {params.reference} --split {input.split} {params.main} --out {output} > {log} 2>&1"


rule privacy_report:
    input:
        CORE_SRC + src("report"),
        dp=expand(R("privacy/dp/{dataset}/{model}/seed{seed}/points.json"), dataset=privacy_pipeline.datasets(CFG),
                  model=MODEL_NAMES, seed=PRIV_SEEDS),
        unlearn=expand(R("privacy/unlearn/{method}/{dataset}/{model}/seed{seed}.json"), method=PRIV_METHODS,
                       dataset=privacy_pipeline.datasets(CFG), model=MODEL_NAMES, seed=PRIV_SEEDS),
    output:
        tables=[priv_report_item(p) for p in PRIV_OUTPUTS["tables"]],
        figures=[priv_report_item(p) for p in PRIV_OUTPUTS["figures"]],
        summary=PRIV_OUTPUTS["summary"],
    params:
        cli=CLI,
        root=lambda w: PRIV_ROOT,
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("privacy/report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} privacy-report --out {params.root} {input.dp} {input.unlearn} > {log} 2>&1"


rule privacy:
    input:
        rules.privacy_report.output,
