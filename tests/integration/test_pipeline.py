"""The whole DAG on the `ci` profile in a temp dir: outputs, tables, figures and the MLflow runs."""

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import ENV, ROOT, pipeline_workspace

pytestmark = pytest.mark.integration


def _snakemake(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=ws,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1500,
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, mirror):
    ws = pipeline_workspace(tmp_path_factory.mktemp("pipeline"), mirror)
    run = _snakemake(ws, "all", "crossbench")  # the default target and the one study outside it
    if run.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-2000:]}" for p in sorted((ws / "logs").rglob("*.log"))[-5:]
        )
        pytest.fail(f"snakemake failed:\n{run.stderr[-4000:]}\n{logs}")
    return ws


def test_outputs_and_tables(pipeline):
    tables = pipeline / "results" / "ci" / "main" / "tables"
    for name in ("main_arc_easy", "main_lambada", "ranking", "runtime", "extended_cycles"):
        assert (tables / f"{name}.csv").stat().st_size > 0
        assert (tables / f"{name}.md").read_text().count("|") > 10
    for fig in ("runtime.png", "extended_cycles_tiny-gpt-neo.png"):
        assert (pipeline / "results" / "ci" / "main" / "figures" / fig).read_bytes()[:4] == b"\x89PNG"
    main = pd.read_csv(tables / "main_arc_easy.csv")
    assert set(main["method"]) == {
        "retrain",
        "finetune",
        "gradient_ascent",
        "fisher_removal",
        "fisher_forgetting",
        "gradient_difference",
        "inverted_hinge",
        "npo",
        "preference",
    }
    assert set(main["samples"]) == {16, 32}
    assert set(main["metric"]) == {"delta_acc", "delta_exp", "delta_retain_acc", "delta_test_nll"}
    assert main.loc[main["metric"] == "delta_retain_acc", "mean"].notna().all()  # retain accuracy is scored
    main = main[main["metric"].isin(["delta_acc", "delta_exp"])]  # the paper's two metrics
    in_paper = main["method"].isin(
        ["retrain", "finetune", "gradient_ascent", "fisher_removal", "fisher_forgetting"]
    )
    assert main.loc[in_paper, "paper"].notna().all()  # every paper method's cell has its published number
    assert main.loc[~in_paper, "paper"].isna().all()  # the new methods have none (shown as —)
    ext = pd.read_csv(tables / "extended_cycles.csv")
    assert ext["cycle"].max() == 3  # lambada x tiny-gpt-neo runs to max_cycles
    summary = json.loads((pipeline / "results/ci/main/summary/fisher_removal.json").read_text())
    assert summary["cycle1"]["delta_exp"] is not None and summary["runtime_s"] > 0
    # checkpoints of the unlearning cycles are temporary: removed once evaluated
    assert not list((pipeline / "results" / "ci" / "runs").rglob("checkpoints"))
    meta = json.loads((pipeline / "results/ci/models/tiny-opt/arc_easy/finetuned/meta.json").read_text())
    assert meta["git_commit"] and meta["data_hashes"] and meta["params"]["finetune"]["epochs"] == 1


def test_discussions_and_verdicts(pipeline):
    """§9 on the ci run: weight KL to retraining for every other method, the onion effect with its test,
    a KS test per method; and a verdict for every claim."""
    d = pipeline / "results/ci/discussions"
    kl = pd.read_csv(d / "tables/weight_kl.csv")
    assert set(kl["method"]) == {
        "finetune",
        "gradient_ascent",
        "fisher_removal",
        "fisher_forgetting",
        "gradient_difference",
        "inverted_hinge",
        "npo",
        "preference",
    }
    assert (kl["kl"] >= 0).all() and kl.loc[kl["method"] == "gradient_ascent", "paper"].item() == 1176792
    onion = pd.read_csv(d / "tables/onion.csv").iloc[0]
    assert onion["removed"] == 20 and onion["kept"] == 76 and 0 <= onion["wilcoxon_p"] <= 1  # top 20% of 96
    shift = pd.read_csv(d / "tables/exposure_shift.csv")
    assert len(shift) == 9 and shift["ks_p"].between(0, 1).all()
    for fig in ("weights.png", "onion.png", "exposure_distributions.png"):
        assert (d / "figures" / fig).read_bytes()[:4] == b"\x89PNG"
    verdicts = pd.read_csv(pipeline / "results/ci/verdicts.csv")
    assert {"§5.1.4", "§9.1, Fig. 4", "§9.3, Fig. 6", "§9.3, Fig. 7", "§6.3, Table 8", "§7.2, Fig. 3"} <= set(
        verdicts["section"]
    )
    assert set(verdicts["verdict"]) <= {
        "holds",
        "does not hold",
        "tie",
        "premise not met",
        "not testable at this scale",
        "not testable at m = 8",
        "not run",
    }
    assert verdicts["premise"].notna().all() and verdicts["source"].notna().all()
    assert {"shift_mean", "control_shift_mean", "difference_low", "difference_high"} <= set(onion.index)
    assert (verdicts.loc[verdicts["section"].str.startswith("§9"), "verdict"] != "not run").all()
    assert (
        verdicts.loc[verdicts["section"] == "§6.3, Table 8", "verdict"] != "not run"
    ).all()  # the memorization study


def test_mlflow_runs(pipeline):
    con = sqlite3.connect(pipeline / "mlflow.db")
    tags = pd.read_sql(
        "select r.run_uuid, t.key, t.value from runs r join tags t on r.run_uuid = t.run_uuid", con
    )
    wide = tags.pivot(index="run_uuid", columns="key", values="value")
    counts = wide["stage"].value_counts().to_dict()
    # 2 models pretrained, 2x2 fine-tuned and base-evaluated, 9 methods x 2 x 2 unlearned and evaluated
    # + memorization (1 corpus x 1 model), TOFU (base and retain models, 2 methods x {FO, SO}), TDEC
    # (base, 2 configurations)
    assert counts == {
        "pretrain": 2,
        "finetune": 4,
        "evaluate": 40,
        "unlearn": 36,
        "onion": 1,
        "onion_control": 1,
        "memorize": 1,
        "memorization_unlearn": 5,
        "memorization": 6,
        "tofu_base": 1,
        "tofu_retain": 1,
        "tofu_unlearn": 4,
        "tdec_base": 1,
        "tdec_unlearn": 2,
        # crossbench: 7 entries on the main task, 7 on memorization, 5 on TOFU, 5 on TDEC; crossbench_small's
        # 2 entries: 2 + 2 + 1 + 1 (Fisher Removal cannot run on TOFU and TDEC)
        "crossbench_point": 30,
    }
    assert wide["pipeline_run"].nunique() == 1 and set(wide["profile"]) == {"ci"}
    experiments = set(pd.read_sql("select name from experiments", con)["name"])
    assert "unlearn-repro-ci" in experiments  # one experiment per profile
    for key in ("dataset", "model", "method", "seed", "git_commit"):
        assert wide.loc[wide["stage"] == "unlearn", key].notna().all()
    n_metrics = pd.read_sql("select count(*) as n from metrics", con)["n"][0]
    assert n_metrics > 100


def test_profiles_do_not_touch_each_others_outputs(pipeline):
    """Another profile's job writes under its own roots: afterwards the ci outputs are all up to date."""
    other = _snakemake(pipeline, "data/processed/embedded/arc_easy/meta.json", "--config", "profile=embedded")
    assert other.returncode == 0, other.stderr[-3000:]
    assert (pipeline / "data/processed/embedded/arc_easy/train.jsonl").exists()
    dry = _snakemake(pipeline, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]


def test_rerun_is_noop_and_param_change_reruns_only_that_method(pipeline):
    dry = _snakemake(pipeline, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params["methods"]["gradient_ascent"]["lr"] = 1.0e-3
    (pipeline / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dry = _snakemake(pipeline, "-n", "--quiet", "rules")
    out = dry.stdout + dry.stderr
    assert "unlearn" in out and "report" in out
    jobs = _snakemake(pipeline, "-n", "--printshellcmds")
    shell = jobs.stdout + jobs.stderr
    assert "--method gradient_ascent" in shell
    for other in (
        "fisher_removal",
        "fisher_forgetting",
        "finetune ",
        "retrain",
        "gradient_difference",
        "npo",
    ):
        assert f"--method {other}" not in shell
    assert "base-model" not in shell and " finetune --model" not in shell


def test_report_shows_every_table_and_figure_beside_the_paper(pipeline):
    """`snakemake --report` (`make report`) on the finished workspace: one self-contained HTML file holding
    every table and figure of the main study, filed under the paper's table or figure, tables in captions."""
    import base64
    import re

    shutil.copytree(ROOT / "report_captions", pipeline / "report_captions", dirs_exist_ok=True)
    out = pipeline / "results" / "ci" / "report.html"
    run = _snakemake(pipeline, "all", "crossbench", "--report", str(out))  # `make report REPORT_TARGETS=...`
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    html = out.read_text()

    def var(name):  # the report's data: a line of JSON per variable (`var results = {...};`)
        return json.loads(re.search(rf"^\s*var {name} = ([{{\"].*);\s*$", html, re.M).group(1))

    results, categories = var("results"), var("categories")
    xb = pipeline / "results/ci/crossbench"
    assert sorted(
        p for paths in categories["Cross-paper benchmark (issue 25)"].values() for p in paths
    ) == sorted(
        str(p.relative_to(pipeline)) for p in [*(xb / "tables").iterdir(), *(xb / "figures").iterdir()]
    )
    main = categories["Main study (§5)"]
    for sub in (
        "Table 3: arc_easy",
        "Table 9: lambada",
        "Table 7: overall ranking",
        "Figure 2: runtime per cycle",
        "Figure 5: extended cycles",
    ):
        assert main.get(sub), f"no {sub!r} in {sorted(main)}"
    root = pipeline / "results" / "ci" / "main"
    files = sorted(
        str(p.relative_to(pipeline)) for p in [*(root / "tables").iterdir(), *(root / "figures").iterdir()]
    )
    assert (
        sorted(p for paths in main.values() for p in paths) == files
    )  # every table and figure, nothing else
    for fig in (p for p in files if p.endswith(".png")):
        uri = results[fig]["data_uri"]
        assert results[fig]["mime_type"] == "image/png" and uri.startswith("data:image/png")
        assert base64.b64decode(uri.split("base64,", 1)[1])[:4] == b"\x89PNG"  # embedded, not linked
    # each caption names the paper's table or figure and embeds the table itself (ours | paper)
    for name, paper, title in (
        ("main_arc_easy.md", "Paper Table 3", "paper Table 3"),
        ("ranking.csv", "Paper Table 7", "paper Table 7"),
        ("runtime.md", "Paper Figure 2", "paper Figure 2"),
    ):
        caption = results[f"results/ci/main/tables/{name}"]["caption"]
        assert paper in caption and title in caption and "<pre" in caption, caption[:500]
    assert "Paper Figure 5" in results["results/ci/main/figures/extended_cycles_tiny-gpt-neo.png"]["caption"]
    assert "the paper side by side" in var("workflow_desc")


def test_mlflow_artifacts_times_and_headline_metrics(pipeline, monkeypatch):
    """Runs carry their small outputs as artifacts (never checkpoints) in ./mlruns beside mlflow.db, at
    locations relative to the workspace, their job's true start and end, and each unlearning run the headline
    metrics of its evaluation, the two runs tagged with each other's id."""
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(pipeline)  # artifact locations are relative to the workspace, as the tracking URI is
    client = MlflowClient("sqlite:///mlflow.db")
    exp = client.get_experiment_by_name("unlearn-repro-ci")
    assert not Path(exp.artifact_location).is_absolute()
    assert Path(exp.artifact_location).resolve().is_relative_to((pipeline / "mlruns").resolve())

    def runs(query):
        return client.search_runs([exp.experiment_id], query, max_results=1000)

    def files(run):
        out, todo = [], [None]
        while todo:
            for f in client.list_artifacts(run.info.run_id, todo.pop()):
                (todo if f.is_dir else out).append(f.path)
        return out

    unlearn, evaluate = (
        runs("tags.stage = 'unlearn'"),
        runs("tags.stage = 'evaluate' and tags.method != 'none'"),
    )
    assert len(unlearn) == len(evaluate) == 36
    assert files(unlearn[0]) == ["run.json"] and files(evaluate[0]) == ["metrics.json"]
    [report] = runs("tags.report = 'main'")
    shipped = files(report)
    assert any(f.startswith("figures/") and f.endswith(".png") for f in shipped)
    assert any(f.startswith("tables/") and f.endswith(".csv") for f in shipped)
    assert any(f.startswith("summary/") and f.endswith(".json") for f in shipped) and report.data.metrics
    assert not [p for p in (pipeline / "mlruns").rglob("*") if p.suffix in (".safetensors", ".bin", ".pt")]
    by_id = {r.info.run_id: r for r in evaluate}
    for u in unlearn:
        # the run spans the whole job, so at least the work the job timed itself, not just the logging call
        assert u.info.end_time - u.info.start_time >= 1000 * u.data.metrics["runtime_s"] > 0
        ev = by_id[u.data.tags["evaluate_run_id"]]
        assert ev.data.tags["unlearn_run_id"] == u.info.run_id
        assert all(ev.data.tags[k] == u.data.tags[k] for k in ("dataset", "model", "method", "seed"))
        headline = {
            k: v
            for k, v in ev.data.metrics.items()
            if k.startswith(("delta_acc", "delta_exp", "delta_test_nll"))
        }
        assert (
            headline
            and {k: u.data.metrics[k] for k in headline} == headline
            and "runtime_s" in u.data.metrics
        )
    [retrain] = [
        u
        for u in unlearn
        if u.data.tags["method"] == "retrain"
        and u.data.tags["dataset"] == "arc_easy"
        and u.data.tags["seed"] == "0"
        and u.data.tags["model"] == "tiny-opt"
    ]
    assert {"delta_acc_cycle1", "delta_exp_cycle1", "delta_test_nll_cycle1", "delta_acc"} <= set(
        retrain.data.metrics
    )


def test_memorization_study(pipeline):
    """§6 on the ci run: segmented corpus with its segmentation in meta.json, Table 8 with No unlearning first
    (ours ‖ paper), one extraction per method with per-target match lengths, Table 10, the bar chart."""
    root = pipeline / "results/ci/memorization"
    meta = json.loads((root / "data/mtsamples/meta.json").read_text())
    assert (
        meta["segmentation"]["max_words"] == 10
        and meta["rows"]["train"] == meta["segmentation"]["segments"] > 0
    )
    t8 = pd.read_csv(root / "tables/table8_mtsamples.csv")
    assert list(t8["method"]) == [
        "No Unlearning",
        "Retraining",
        "Finetuning",
        "Gradient Ascent",
        "Fisher Removal",
        "Fisher Forgetting",
    ]
    assert t8.iloc[0, 1].endswith("‖ 16") and "‖ 5.69e+04" in t8.iloc[1, 2]  # the paper's NEO cells
    counts = pd.read_csv(root / "tables/counts.csv")
    assert len(counts) == 6 and (counts["n_targets"] == 4).all() and counts["memorized"].between(0, 4).all()
    assert counts.loc[counts["method"] != "none", "runtime_s"].gt(0).all()
    run = json.loads((root / "runs/fisher_removal/mtsamples/tiny-gpt-neo/seed0/extraction.json").read_text())
    assert len(run["targets"]) == 4 and all(0 <= t["match_length"] <= 8 for t in run["targets"])
    assert not (root / "runs/fisher_removal/mtsamples/tiny-gpt-neo/seed0/checkpoints").exists()
    base = json.loads((root / "runs/none/mtsamples/tiny-gpt-neo/seed0/extraction.json").read_text())
    assert all("near_duplicates_other_texts" in t and t["text"] for t in base["targets"])
    assert (root / "tables/table10.md").read_text().startswith("## §6.4")
    assert (root / "tables/table10_examples.md").read_text().startswith("## Table 10")
    assert (root / "figures/memorized.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((root / "summary/metrics.json").read_text())["mtsamples.neo"]["n_targets"] == 4


def test_privacy_study(pipeline):
    """§7 on the ci run: DP-SGD models with the ε they spent, every method's grid audited, Figure 3, the two
    §7.2 verdicts judged (PIQA is not in ci: the data-set claim is not testable there), DP models loadable."""
    from unlearn_repro.models import checkpoint

    d = pipeline / "results/ci/privacy"
    pts = pd.read_csv(d / "tables/points.csv")
    dp = pts[pts["method"] == "dp_sgd"]
    assert sorted(dp["value"].tolist()) == [2.0, 2.0, 8.0, 8.0, float("inf"), float("inf")]  # 2 models
    finite = dp[dp["value"] != float("inf")]
    assert (
        (finite["epsilon_spent"] <= finite["value"] + 1e-6)
        & (finite["epsilon_spent"] > 0.9 * finite["value"])
    ).all()
    assert (finite["slowdown"] > 0).all()
    for m in ("gradient_ascent", "fisher_removal", "fisher_forgetting"):
        assert len(pts[pts["method"] == m]) == 2 * 2  # 2 coefficients x 2 models
    assert pts["exposure"].notna().all() and pts["test_nll"].notna().all() and set(pts["seed"]) == {0}
    means = pd.read_csv(d / "tables/means.csv")  # one seed (ci): the mean is that seed's value, no interval
    assert len(means) == len(pts) and means["seeds"].eq(1).all() and means["exposure_half"].isna().all()
    assert (d / "figures/privacy_utility.png").read_bytes()[:4] == b"\x89PNG"
    model, _, meta = checkpoint.load(d / "dp/lambada/tiny-opt/seed0/models/eps2")
    assert (
        not any(k.startswith("_module.") for k in model.state_dict()) and meta["dp"]["epsilon_spent"] <= 2.0
    )
    v = pd.read_csv(pipeline / "results/ci/verdicts.csv").set_index("claim")["verdict"]
    # judged on measured slowdowns: on the loaded ci machine the interval may straddle 1 (a tie)
    assert v["DP-SGD makes training more expensive"] in {"holds", "does not hold", "tie"}
    assert (
        v[[c for c in v.index if c.startswith("DP-SGD's privacy–utility")][0]] == "not testable at this scale"
    )


def test_a_point_at_the_main_setting_is_the_main_runs_cycle_1_computed_or_read(pipeline, tmp_path):
    """The privacy study reads its grid point at the main study's setting from the main run's cycle 1
    (pipeline/main_points.py). Computed afresh, without the main run (the job on that value alone), it gives
    the same numbers bit for bit: cycle 1 of a one-cycle run is cycle 1 of the main run. Only the times
    differ."""
    dag = pipeline / "results/ci/privacy/unlearn/fisher_forgetting/lambada/tiny-gpt-neo/seed0.json"
    read = json.loads(dag.read_text())["points"]
    main = json.loads(
        (pipeline / "results/ci/runs/fisher_forgetting/lambada/tiny-gpt-neo/seed0/metrics.json").read_text()
    )["cycles"][0]
    [shared] = [p for p in read if p["runtime_s"] == main["runtime_s"]]  # one of ci's values is the main one
    assert {k: shared[k] for k in ("exposure", "accuracy", "test_nll", "curvature")} == {
        k: main[k] for k in ("exposure", "accuracy", "test_nll", "curvature")
    }
    args = ["--method", "fisher_forgetting", "--dataset", "lambada", "--model", "tiny-gpt-neo", "--seed", "0",
            "--pretrained", "results/ci/models/tiny-gpt-neo/pretrained",
            "--finetuned", "results/ci/models/tiny-gpt-neo/lambada/finetuned",
            "--data", "data/processed/ci/lambada", "--reference", "heldout",
            "--split", "results/ci/splits/lambada/seed0.json",
            "--out", str(tmp_path / "fresh.json")]  # fmt: skip
    only = f"privacy={{grids: {{fisher_forgetting: {{values: [{shared['value']!r}]}}}}}}"
    run = subprocess.run(
        [sys.executable, "-m", "unlearn_repro", "--params", "params.yaml", "--profile", "ci",
         "privacy-unlearn", *args, "--config", "tracking={enabled: false}", only],
        cwd=pipeline, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    [fresh] = json.loads((tmp_path / "fresh.json").read_text())["points"]
    untimed = lambda p: {k: v for k, v in p.items() if k != "runtime_s"}  # noqa: E731
    assert untimed(fresh) == untimed(shared) and fresh["runtime_s"] != main["runtime_s"]


def test_tofu_study_outputs(pipeline):
    """SOUL on TOFU: Table 1 (ours | paper) per method x {FO, SO}, the premise, Figure 1, the verdicts."""
    import pandas as pd

    from unlearn_repro.report.tofu import outputs

    root = pipeline / "results" / "ci" / "tofu"
    files = outputs(str(root))
    assert all(Path(p).is_file() for k in files for p in files[k])
    table = pd.read_csv(root / "tables" / "table1.csv")
    assert {"FO-GradDiff", "SO-GradDiff", "FO-NPO", "SO-NPO", "Original (base)", "Retain model"} <= set(
        table["Method"]
    )
    fq = [c for c in table.columns if c.startswith("Forget quality (SOUL")][
        0
    ]  # headers name their definition
    assert table.loc[table["Method"] == "SO-GradDiff", fq].iloc[0].endswith(" ‖ 1")
    mia = [c for c in table.columns if c.startswith("MIA")][0]  # no paper value: definitions differ
    assert not table[mia].astype(str).str.contains(" ‖ ", regex=False).any()
    tofu_table = pd.read_csv(root / "tables" / "table1_tofu.csv")
    assert not tofu_table.astype(str).apply(lambda c: c.str.contains(" ‖ ", regex=False)).any().any()
    premise = pd.read_csv(root / "tables" / "premise.csv")
    assert premise["Forget answer prob"].between(0, 1).all()
    run = json.loads((root / "runs" / "npo" / "SO" / "seed0.json").read_text())
    assert [e["epoch"] for e in run["epochs"]] == list(range(run["params"]["epochs"] + 1))
    assert (
        len(run["clip_rate_per_epoch"]) == run["params"]["epochs"] and 0 <= run["clip_rate_per_epoch"][0] <= 1
    )
    assert 0 <= run["final"]["forget_quality"] <= 1 and 0 <= run["final"]["mia_loss_auc"] <= 1
    assert all(0 <= run["final"][k] <= 1 for k in ("soul_forget_quality", "soul_forget_acc", "soul_mia_auc"))


def test_tdec_table1_figures_and_criterion(pipeline):
    """The TDEC study on the ci run: Table 1 (ours | paper) with a row per enabled configuration, the premise,
    the target-module ablation, Figures 3-4, and per-epoch EL10 / MA curves that end where
    the criterion says."""
    d = pipeline / "results/ci/tdec"
    t1 = pd.read_csv(d / "tables/table1.csv")
    assert list(t1["config"]) == ["before", "lora_gd", "flora_ihl"]
    assert t1.loc[t1["config"] == "lora_gd", "paper_epochs"].item() == 8.6  # GPT-Neo 125M, the paper's row
    assert 0 < t1.loc[t1["config"] == "lora_gd", "params_pct"].item() < 100
    assert " ‖ 30.9" in (d / "tables/table1.md").read_text()  # ours | paper, Before EL10
    premise = pd.read_csv(d / "tables/premise.csv")
    assert set(premise["rows"]) == {"forget set 0", "TDEC validation rows", "threshold"}
    assert (
        premise.loc[premise["rows"] == "threshold", "threshold source"]
        .item()
        .startswith("TDEC validation rows")
    )
    abl = pd.read_csv(d / "tables/ablation.csv")
    # ci: Figure 4's methods are the enabled ones on the default targets, their Table 1 runs reused
    assert list(abl["targets"]) == ["QVFFN"] * 2 and list(abl["config"]) == ["lora_gd", "flora_ihl"]
    assert list(abl["method"]) == ["LoRA + GD", "FLoRA + IHL"]
    for fig in ("figure3.png", "figure4.png"):
        assert (d / "figures" / fig).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((d / "summary/metrics.json").read_text())["tiny-gpt-neo"]
    assert set(summary["findings"]) == {"lora_gd_often_fails", "flora_ihl_fewer_epochs_best_utility"}
    for name in ("lora_gd", "flora_ihl"):
        run = json.loads((d / f"runs/tiny-gpt-neo/{name}.json").read_text())
        [s] = run["sets"]
        assert 1 <= s["epochs_run"] <= 3 and len(s["curve"]) == s["epochs_run"]
        assert s["forgotten"] == (s["epochs"] is not None)
        if s["forgotten"]:  # stopped at the first epoch meeting the criterion
            assert s["epochs"] == s["epochs_run"] and s["ma"] <= run["threshold"]["ma"]


TOFU_KEPT = ("forget_acc", "forget_quality", "forget_rouge", "model_utility", "retain_acc")


def test_ablations_in_the_default_target_reach_the_overview(pipeline):
    """The ablations study runs in the default target: a table and Pareto figure per comparison, a verdict
    row with its premise each, and each row in its paper's section of the overview (not 'not run')."""
    d = pipeline / "results/ci/ablations"
    v = pd.read_csv(d / "tables/verdicts.csv")
    assert sorted(v["comparison"]) == ["forgetting", "removal", "sophia_npo"]
    assert v["premise"].str.match(r"(met|not met): ").all() and (v["seeds"] == 1).all()
    # ci keeps lambda = 1 (F^-1 ~ I / lambda): Fisher Removal's premise fails, so no conclusion is drawn
    assert v.set_index("comparison").loc["removal", "verdict"] == "premise not met"
    for comp in v["comparison"]:
        assert (d / f"figures/{comp}.png").read_bytes()[:4] == b"\x89PNG"
        assert len(pd.read_csv(d / f"tables/{comp}.csv")) >= 2
    # a lean TOFU point (TOFU's final metrics only, no curves) is the TOFU study's run at its learning rate
    for optimizer, kind in (("sophia", "SO"), ("adamw", "FO")):
        [point] = json.loads((d / f"points/sophia/npo/{optimizer}/seed0.json").read_text())["points"]
        final = json.loads((pipeline / f"results/ci/tofu/runs/npo/{kind}/seed0.json").read_text())["final"]
        assert point["value"] == 1e-3 and "soul_forget_acc" in final
        assert {k: point[k] for k in TOFU_KEPT} == {k: final[k] for k in TOFU_KEPT}, optimizer
    readme = (pipeline / "results/ci/README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| Ablation: ")]
    assert len(rows) == len(v) and not any("**not run**" in r for r in rows)


def test_crossbench_runs_on_the_studies_models_and_matches_their_numbers(pipeline):
    """`snakemake crossbench` (issue 25), run with the default target: every declared file; a cell that cannot
    run says why; and at factor 1 (the studies' own steps) a point is the study's own run: the same number."""
    d = pipeline / "results/ci/crossbench"
    for p in (d / "tables/ranks.md", d / "tables/verdicts.csv", d / "figures/overview.png"):
        assert p.stat().st_size > 0
    tofu = pd.read_csv(d / "tables/leaderboard_tofu.csv").set_index("entry")
    assert tofu.loc["fisher_removal", "status"].startswith("not applicable: Fisher Removal does not train")
    assert tofu.loc["gradient_difference", "replicates"] == 1 and tofu["rank"].notna().sum() == 5

    def at_one(path):
        return next(p for p in json.loads((d / "points" / path).read_text())["points"] if p["factor"] == 1.0)

    main = json.loads(
        (
            pipeline / "results/ci/runs/gradient_difference/arc_easy/tiny-gpt-neo/seed0/metrics.json"
        ).read_text()
    )
    assert (
        at_one("tasks/arc_easy/tiny-gpt-neo/gradient_difference/seed0.json")["efficacy"]
        == -main["cycles"][0]["delta_exp"]
    )
    final = json.loads((pipeline / "results/ci/tofu/runs/gradient_difference/FO/seed0.json").read_text())[
        "final"
    ]
    assert at_one("tofu/gradient_difference/seed0.json")["efficacy"] == final["forget_quality"]
    tdec = json.loads((pipeline / "results/ci/tdec/runs/tiny-gpt-neo/lora_gd.json").read_text())["sets"][0]
    point = at_one("tdec/tiny-gpt-neo/lora_gd/seed0.json")
    assert (point["ppl"], point["epochs"]) == (tdec["ppl"], tdec["epochs"])


def test_crossbench_small_is_crossbench_on_its_grid(pipeline):
    """The default target's crossbench_small (issue 25) runs crossbench's jobs with its own grid and entries.
    In ci both grids are factor 1, so each of its points is crossbench's, bit for bit (times aside); its
    leaderboards hold its two entries."""
    small, full = (pipeline / f"results/ci/{study}" for study in ("crossbench_small", "crossbench"))
    files = sorted(p.relative_to(small / "points") for p in (small / "points").rglob("*.json"))
    assert len(files) == 6

    def untimed(path):
        points = json.loads(path.read_text())["points"]
        return [{k: v for k, v in p.items() if k not in ("runtime_s", "wall_s")} for p in points]

    for rel in files:
        assert untimed(small / "points" / rel) == untimed(full / "points" / rel), rel
    board = pd.read_csv(small / "tables/leaderboard_tasks.csv")
    assert set(board["entry"]) == {"fisher_removal", "gradient_difference"}
    assert (small / "tables/ranks.md").stat().st_size > 0 and (small / "figures/overview.png").is_file()


def test_curvature_premise_tables(pipeline):
    """Every second-order run of the ci DAG has a premise row: the main study's Fisher runs (per cycle, with
    the cosine measured) and TOFU's Sophia runs (with the clip rate); the ci profile keeps the paper's
    lambda = 1, where F^-1 ~ I / lambda, so its Fisher Removal rows must read curvature-degenerate."""
    root = pipeline / "results" / "ci" / "curvature"
    main = pd.read_csv(root / "premise_main.csv")
    removal = main[main.method == "fisher_removal"]
    assert len(removal) and removal.cosine.between(-1, 1).all()
    assert (removal.verdict == "curvature-degenerate").all()
    assert set(main.method) == {"fisher_removal", "fisher_forgetting"}
    tofu = pd.read_csv(root / "premise_tofu.csv")
    assert len(tofu) and tofu.clip_rate.between(0, 1).all() and tofu.method.str.endswith("(Sophia)").all()
    assert "curvature-degenerate" in (root / "premise_main.md").read_text()
