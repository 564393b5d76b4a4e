"""The curvature premise (docs/curvature.md): for every second-order run of the main, memorization, privacy
and TOFU studies, how far its step was from the first-order one, and whether the run is
curvature-degenerate (rules/curvature.smk, report/curvature.py). It has no params block of its own: the
thresholds are metrics/curvature.py's, the runs the other studies'."""

from unlearn_repro.commands import command, opt
from unlearn_repro.studies.base import DvcStage, Study, register

PREMISE_STUDIES = ("main", "memorization", "privacy", "tofu")  # the studies with second-order runs

register(
    Study(
        "curvature",
        "the curvature premise of every second-order run",
        dvc=DvcStage(
            deps=(
                "results/${profile}/runs",
                "results/${profile}/memorization/runs",
                "results/${profile}/privacy/unlearn",
                "results/${profile}/tofu/runs",
                "src/unlearn_repro/report/curvature.py",
                "src/unlearn_repro/metrics/curvature.py",
                "rules/curvature.smk",
            ),
            params=("fisher", "methods.enabled", "tofu.optimizers", "profile", "profiles"),
            outs=("curvature",),
        ),
    )
)


@command(
    "curvature-premise",
    "the premise table of each study's second-order runs (cosine, norm ratio, spread, clip rate)",
    "out",
    options=[opt("files", nargs="*", help="STUDY=FILE: a run record (run.json, privacy or TOFU result)")],
)
def _curvature_premise(a, cfg, tracker):
    from pathlib import Path

    from unlearn_repro.report import curvature
    from unlearn_repro.tracking import log_report

    by_study = {study: [] for study in PREMISE_STUDIES}
    for study, path in (item.split("=", 1) for item in a.files):
        by_study[study].append(path)
    tables = []
    for study, files in by_study.items():
        md, csv = Path(a.out) / f"premise_{study}.md", Path(a.out) / f"premise_{study}.csv"
        curvature.write(curvature.premise_table(study, files), md, csv)
        tables += [md, csv]
    log_report(tracker, "curvature", {"tables": tables}, {"fisher": cfg.fisher.to_dict()})
