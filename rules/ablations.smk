# Ablations that isolate second-order information (issue 21): on the main study's setting, Fisher Removal with
# the block F^-1, a diagonal F^-1 and I/lambda, Fisher Forgetting's F^-1/4 noise against isotropic noise
# of the same norm; on TOFU, Sophia against constant-h Sophia (sign-momentum) and AdamW. Each over a step
# grid.
# Target: `snakemake --cores all ablations`.

from unlearn_repro.pipeline import ablations as ablations_pipeline
from unlearn_repro.pipeline import main_points
from unlearn_repro.pipeline.main_points import main_arg
from unlearn_repro.report import ablations as ablations_report

ABL = CFG.ablations
ablations_pipeline.check(CFG)
ABL_ROOT = R("ablations")
ABL_SEEDS = ablations_pipeline.seeds(CFG)
ABL_DATASETS = ablations_pipeline.datasets(CFG)
ABL_OUTPUTS = ablations_report.outputs(CFG, ABL_ROOT)
ABL_NEWTON = [(c, m) for c, comp in ABL.newton.items() for m in comp.methods]
abl_report_item = lambda path: report(path, caption="../report_captions/ablations/ablations.rst",
                                      category="Ablations (issue 21)", labels={"file": Path(path).name})


rule ablation_newton:
    """One Newton-type variant at every value of its comparison's grid: cycle 1 unlearned and evaluated."""
    input:
        CORE_SRC + src("methods", "fisher", "optim", "train.py", "objectives.py", "losses.py", "pipeline",
                       "models", "metrics", "data/encoding.py"),
        finetuned=R("models/{model}/{dataset}/finetuned"),
        pretrained=R("models/{model}/pretrained"),
        data=data_files("{dataset}"),
        reference=REFERENCE_INPUT,
        split=R("splits/{dataset}/seed{seed}.json"),
        base=R("eval/base/{dataset}/{model}/seed{seed}.json"),
        main=lambda w: main_points.main_metrics(CFG, R("runs"), w.ablation_method, w.dataset, w.model, w.seed,
                                                ABL.newton[w.comparison]["keys"],
                                                ablations_pipeline.grid(ABL.newton[w.comparison], w.ablation_method)),
    output:
        R("ablations/points/{comparison}/{ablation_method}/{dataset}/{model}/seed{seed}.json"),
    wildcard_constraints:
        comparison="removal|forgetting",
        ablation_method="|".join(sorted({m for _, m in ABL_NEWTON})),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{w.dataset}",
        reference=REFERENCE_ARG,
        grid=lambda w: ablations_pipeline.grid(ABL.newton[w.comparison], w.ablation_method),
        grid_keys=lambda w: list(ABL.newton[w.comparison]["keys"]),
        hp=lambda w: method_params(w.ablation_method),
        evaluation=CFG.evaluation.to_dict(),
        main=main_arg,
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("ablations/newton/{comparison}/{ablation_method}/{dataset}/{model}/seed{seed}.log"),
    benchmark:
        L("benchmarks/ablations/newton/{comparison}/{ablation_method}/{dataset}/{model}/seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} ablation-newton --comparison {wildcards.comparison} "
        "--method {wildcards.ablation_method} "
        "--dataset {wildcards.dataset} --model {wildcards.model} --seed {wildcards.seed} "
        "--finetuned {input.finetuned} --pretrained {input.pretrained} --data {params.data_dir} "
        "--reference {params.reference} --split {input.split} --base {input.base} {params.main} --out {output} "
        "> {log} 2>&1"


rule ablation_sophia:
    """One TOFU loss with one optimizer (Sophia, constant-h Sophia, AdamW) at every learning rate."""
    input:
        CORE_SRC + src("pipeline", "metrics", "models", "optim", "train.py", "data/tofu.py", "methods",
                       "objectives.py", "losses.py"),
        base=R("tofu/models/base"),
        retain=R("tofu/models/retain"),
    output:
        R("ablations/points/sophia/{tofu_method}/{ablation_optimizer}/seed{seed}.json"),
    wildcard_constraints:
        tofu_method="|".join(ABL.sophia.methods),
        ablation_optimizer="|".join(ABL.sophia.optimizers),
    params:
        cli=CLI,
        grid=ABL.sophia.to_dict(),
        tofu=CFG.tofu.to_dict(),
        optimizers=CFG.optimizers.to_dict(),
        method=lambda w: CFG.methods[w.tofu_method].to_dict() if w.tofu_method in CFG.methods else {},
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("ablations/sophia/{tofu_method}/{ablation_optimizer}/seed{seed}.log"),
    benchmark:
        L("benchmarks/ablations/sophia/{tofu_method}/{ablation_optimizer}/seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} ablation-sophia --method {wildcards.tofu_method} "
        "--optimizer {wildcards.ablation_optimizer} "
        "--seed {wildcards.seed} --base {input.base} --retain {input.retain} --out {output} > {log} 2>&1"


rule ablations_report:
    input:
        CORE_SRC + src("report"),
        newton=[R(f"ablations/points/{c}/{m}/{d}/{mod}/seed{s}.json") for c, m in ABL_NEWTON
                for d in ABL_DATASETS for mod in MODEL_NAMES for s in ABL_SEEDS],
        sophia=expand(R("ablations/points/sophia/{tofu_method}/{ablation_optimizer}/seed{seed}.json"),
                      tofu_method=ABL.sophia.methods, ablation_optimizer=ABL.sophia.optimizers,
                      seed=ABL_SEEDS),
    output:
        tables=[abl_report_item(p) for p in ABL_OUTPUTS["tables"]],
        figures=[abl_report_item(p) for p in ABL_OUTPUTS["figures"]],
        summary=ABL_OUTPUTS["summary"],
        verdicts=ABL_OUTPUTS["verdicts"],
    params:
        cli=CLI,
        root=lambda w: ABL_ROOT,
    resources:
        mem_mb=cpu_mem_mb("report"),
        runtime=cpu_runtime("report"),
    log:
        L("ablations/report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} ablations-report --out {params.root} {input.newton} {input.sophia} > {log} 2>&1"


rule ablations:
    input:
        rules.ablations_report.output,
