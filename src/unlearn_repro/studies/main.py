"""The main study (paper §5): per-method metric tables, then Tables 3-5, 7, 9 and Figures 2, 5 beside the
paper's numbers (rules/main.smk, report/main.py). Its unlearning and evaluation jobs are the shared steps."""

from unlearn_repro.commands import command, opt
from unlearn_repro.studies.base import DvcStage, Study, register


def _datasets(cfg) -> list[str]:
    """Its tasks, the exposure reference corpus, and WikiText-2 where a tiny model is pretrained here."""
    from unlearn_repro.hub import needed_datasets

    return needed_datasets(cfg)


DVC_STAGE = DvcStage(
    deps=("results/${profile}/metrics", "src/unlearn_repro/report", "rules/main.smk"),
    params=(
        "unlearn.table_cycles",
        "methods.enabled",
        "seeds",
        "models",
        "data.tasks",
        "profile",
        "profiles",
    ),
    outs=("main/tables", "main/figures"),
    metrics=("main/summary",),
    plots=("main/figures",),
)
register(
    Study("main", "the main study (§5): Tables 3-5, 7, 9, Figures 2 and 5", dvc=DVC_STAGE, datasets=_datasets)
)


@command(
    "collect",
    "gather per-run metrics.json files into one CSV",
    "out",
    torch=False,
    options=[opt("metrics", nargs="+")],
)
def _collect(a, cfg, tracker):
    from unlearn_repro.report.tables import collect

    collect(a.metrics, a.out)


@command(
    "main-report",
    "the main study's tables (CSV + Markdown) and figures",
    "out",
    options=[opt("collected", nargs="+")],
)
def _main_report(a, cfg, tracker):
    from unlearn_repro.report.main import build_report, outputs
    from unlearn_repro.tracking import log_report

    build_report(cfg, a.collected, a.out)
    log_report(
        tracker,
        "main",
        {**outputs(cfg, a.out), "metrics": a.collected},
        {
            "table_cycles": list(cfg.unlearn.table_cycles),
            "methods": list(cfg.methods.enabled),
            "models": list(cfg.models),
            "tasks": list(cfg.data.tasks),
        },
    )
