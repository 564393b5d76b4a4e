"""A verdict for every qualitative claim of the paper, from the other studies' outputs in this run
(rules/verdicts.smk, report/verdicts.py), and the overview of all three papers' claims that the default
target ends with (report/overview.py: results/<profile>/README.md, overview.html). No params block."""

from unlearn_repro.commands import command, opt
from unlearn_repro.studies.base import DvcStage, Study, register

register(
    Study(
        "verdicts",
        "a verdict for every claim of the paper; the overview of every paper's claims",
        target="claims",
        dvc=DvcStage(
            deps=(
                "results/${profile}/metrics",
                "results/${profile}/main/tables",
                "results/${profile}/discussions/tables",
                "results/${profile}/memorization/tables",
                "results/${profile}/privacy/tables",
                "results/${profile}/curvature",
                "results/${profile}/tdec/tables",
                "results/${profile}/tdec/summary",
                "results/${profile}/tofu/tables",
                "results/${profile}/tofu/summary",
                "results/${profile}/ablations/tables",
                "src/unlearn_repro/report/verdicts.py",
                "src/unlearn_repro/report/overview.py",
                "rules/verdicts.smk",
            ),
            params=("unlearn.table_cycles", "methods.enabled", "profile", "profiles"),
            # results/<profile>/README.md, the overview's other copy, is not cached: git tracks it
            outs=("verdicts.csv", "verdicts.md", "verdicts.html", "overview.html"),
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


@command("overview", "every paper's claims on one page: verdict, premise, key number, the paper's", "results")
def _overview(a, cfg, tracker):
    from unlearn_repro.report.overview import write_overview
    from unlearn_repro.tracking import log_report

    files = write_overview(a.results, cfg.profile)
    log_report(tracker, "overview", {"": files}, {"profile": cfg.profile})
