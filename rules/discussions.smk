# The discussion studies (paper §9): weight distributions (Figure 4), the onion effect (Figure 6) and
# exposure distributions (Figure 7), on the main study's runs of one (data set, model) for every seed of
# `seeds` (their 95 % intervals are over those); the onion effect and its random-removal control retrain once
# per seed. discussions.seed: the seed whose models the figures show.
# Target: `snakemake --cores all discussions`.

DISC = CFG.discussions
DISC_RUN = R(f"runs/{{method}}/{DISC.dataset}/{DISC.model}/seed{{seed}}")
DISC_ROOT = R("discussions")
DISC_OUTPUTS = discussions_report.outputs(DISC_ROOT)
DISC_PAPER = {  # file stem -> (subcategory: the paper's figure, caption file)
    "weight_kl": ("Figure 4: weight distributions", "weights"), "weights": ("Figure 4: weight distributions", "weights"),
    "onion": ("Figure 6: onion effect", "onion"),
    "exposure_shift": ("Figure 7: exposure distributions", "exposure"),
    "exposure_distributions": ("Figure 7: exposure distributions", "exposure"),
}
disc_report_item = lambda path: report(
    path, caption=f"../report_captions/discussions/{DISC_PAPER[Path(path).stem][1]}.rst",
    category="Discussions (§9)", subcategory=DISC_PAPER[Path(path).stem][0], labels={"file": Path(path).name})
DISC_COMMON = dict(
    data=data_files(DISC.dataset),
    reference=REFERENCE_INPUT,
    split=R(f"splits/{DISC.dataset}/seed{{seed}}.json"),
)


rule discussion_checkpoint:
    """Keep the cycle-1 model of the runs the discussions use (unlearning checkpoints are temporary). A
    plain copy with no code inputs: changing the discussions' code never reruns unlearning."""
    input:
        checkpoints=f"{DISC_RUN}/checkpoints",
    output:
        directory(R("discussions/checkpoints/seed{seed}/{method}")),
    resources:
        mem_mb=cpu_mem_mb("small"),
        runtime=cpu_runtime("small"),
    log:
        L("discussions/checkpoint_{method}_seed{seed}.log"),
    conda:
        ENV_FILE
    shell:
        "cp -r {input.checkpoints}/cycle1 {output} > {log} 2>&1"


rule discussion_snapshot:
    """A method's cycle-1 model: its last-block weights and its retained samples' exposures."""
    input:
        CORE_SRC + src("pipeline", "metrics", "data/encoding.py"),
        model=R("discussions/checkpoints/seed{seed}/{method}"),
        **DISC_COMMON,
    output:
        R("discussions/snapshots/seed{seed}/{method}.npz"),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{DISC.dataset}",
        reference=REFERENCE_ARG,
        evaluation=CFG.evaluation.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("discussions/snapshot_{method}_seed{seed}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} discussion-snapshot --model-dir {input.model} --data {params.data_dir} "
        "--reference {params.reference} --split {input.split} --out {output} > {log} 2>&1"


rule discussion_base_snapshot:
    input:
        CORE_SRC + src("pipeline", "metrics", "data/encoding.py"),
        finetuned=R(f"models/{DISC.model}/{DISC.dataset}/finetuned"),
        **DISC_COMMON,
    output:
        R("discussions/snapshots/seed{seed}/base.npz"),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{DISC.dataset}",
        reference=REFERENCE_ARG,
        evaluation=CFG.evaluation.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("discussions/snapshot_base_seed{seed}.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} discussion-snapshot --base --model-dir {input.finetuned} --data {params.data_dir} "
        "--reference {params.reference} --split {input.split} --out {output} > {log} 2>&1"


rule onion:
    input:
        CORE_SRC + src("pipeline", "metrics", "train.py", "optim", "data/encoding.py"),
        base=R("discussions/snapshots/seed{seed}/base.npz"),
        pretrained=R(f"models/{DISC.model}/pretrained"),
        **DISC_COMMON,
    output:
        R("discussions/onion/seed{seed}.npz"),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{DISC.dataset}",
        reference=REFERENCE_ARG,
        onion={k: DISC[k] for k in ("onion_threshold", "onion_top_fraction")},
        dataset=DISC.dataset,
        model=DISC.model,
        finetune=CFG.finetune.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("discussions/onion_seed{seed}.log"),
    benchmark:
        L("benchmarks/discussions/onion_seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} onion --base {input.base} --pretrained {input.pretrained} --data {params.data_dir} "
        "--reference {params.reference} --dataset {params.dataset} --model {params.model} --out {output} "
        "--seed {wildcards.seed} > {log} 2>&1"


rule onion_control:
    """The onion effect's control: remove a random set of the same size, retrain, rescore the rest."""
    input:
        CORE_SRC + src("pipeline", "metrics", "train.py", "optim", "data/encoding.py"),
        base=R("discussions/snapshots/seed{seed}/base.npz"),
        pretrained=R(f"models/{DISC.model}/pretrained"),
        **DISC_COMMON,
    output:
        R("discussions/onion_control/seed{seed}.npz"),
    params:
        cli=CLI,
        data_dir=lambda w: f"{PROCESSED}/{DISC.dataset}",
        reference=REFERENCE_ARG,
        onion={k: DISC[k] for k in ("onion_threshold", "onion_top_fraction")},
        dataset=DISC.dataset,
        model=DISC.model,
        finetune=CFG.finetune.to_dict(),
    threads: MODEL_THREADS
    resources:
        gpu=gpu_resources,
    log:
        L("discussions/onion_control_seed{seed}.log"),
    benchmark:
        L("benchmarks/discussions/onion_control_seed{seed}.tsv")
    conda:
        ENV_FILE
    shell:
        "{params.cli} onion --base {input.base} --pretrained {input.pretrained} --data {params.data_dir} "
        "--reference {params.reference} --dataset {params.dataset} --model {params.model} --out {output} --control "
        "--seed {wildcards.seed} > {log} 2>&1"


rule discussions_report:
    input:
        CORE_SRC + src("report", "metrics/weights.py"),
        snapshots=expand(R("discussions/snapshots/seed{seed}/{method}.npz"), seed=SEEDS, method=METHOD_NAMES),
        base=expand(R("discussions/snapshots/seed{seed}/base.npz"), seed=SEEDS),
        onion=expand(R("discussions/onion/seed{seed}.npz"), seed=SEEDS),
        onion_control=expand(R("discussions/onion_control/seed{seed}.npz"), seed=SEEDS),
    output:
        tables=[disc_report_item(p) for p in DISC_OUTPUTS["tables"]],
        figures=[disc_report_item(p) for p in DISC_OUTPUTS["figures"]],
        summary=DISC_OUTPUTS["summary"],
    params:
        cli=CLI,
        root=lambda w, output: str(Path(output.summary[0]).parent.parent),
        pairs=lambda w, input: " ".join(f"{m}@{s}={f}" for (s, m), f in
                                        zip([(s, m) for s in SEEDS for m in METHOD_NAMES], input.snapshots)),
        bases=lambda w, input: " ".join(f"{s}={f}" for s, f in zip(SEEDS, input.base)),
        bins={k: DISC[k] for k in ("bins", "kl_epsilon")},
    resources:
        mem_mb=cpu_mem_mb("weights"),
        runtime=cpu_runtime("weights"),
    log:
        L("discussions/report.log"),
    conda:
        ENV_FILE
    shell:
        "{params.cli} discussions-report {params.pairs} --out {params.root} --base {params.bases} "
        "--onion {input.onion} --onion-control {input.onion_control} > {log} 2>&1"


rule discussions:
    input:
        rules.discussions_report.output,
