"""A verdict for every qualitative claim of the paper, from the other studies' outputs in this run
(rules/verdicts.smk, report/verdicts.py). It has no params block of its own."""

from unlearn_repro.commands import command, opt
from unlearn_repro.studies.base import DvcStage, Study, register

register(
    Study(
        "verdicts",
        "a verdict for every claim of the paper",
        dvc=DvcStage(
            deps=(
                "results/${profile}/metrics",
                "results/${profile}/main/tables",
                "results/${profile}/discussions/tables",
                "results/${profile}/memorization/tables",
                "results/${profile}/privacy/tables",
                "results/${profile}/curvature",
                "src/unlearn_repro/report/verdicts.py",
                "rules/verdicts.smk",
            ),
            params=("unlearn.table_cycles", "methods.enabled", "profile", "profiles"),
            outs=("verdicts.csv", "verdicts.md", "verdicts.html"),
        ),
    )
)


@command(
    "verdicts",
    "a verdict for every claim of the paper, from the studies' outputs",
    "out",
    "curves",
    "kl",
    "onion",
    "shift",
    options=[
        opt("--memorization", default=None, help="the memorization study's counts.csv (Table 8)"),
        opt("--privacy", default=None, help="the privacy study's points table (CSV), when it ran"),
        opt("--curvature", default=None, help="the main study's curvature premise table (CSV)"),
        opt("collected", nargs="+"),
    ],
)
def _verdicts(a, cfg, tracker):
    from unlearn_repro.report.verdicts import build_verdicts
    from unlearn_repro.tracking import log_report

    build_verdicts(
        cfg,
        a.collected,
        a.curves,
        a.kl,
        a.onion,
        a.shift,
        a.out,
        memorization_file=a.memorization,
        privacy_file=a.privacy,
        curvature_file=a.curvature,
    )
    log_report(tracker, "verdicts", {"": [f"{a.out}.csv", f"{a.out}.md"]}, {"profile": cfg.profile})
