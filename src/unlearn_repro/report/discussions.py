"""The discussion studies' report (paper §9): Figure 4 and the weight KL table, Figure 6 (onion effect)
with a paired test, Figure 7 (exposure distributions) with a KS test per method. It writes exactly the
files `outputs` names."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unlearn_repro.io import write_json  # noqa: E402
from unlearn_repro.metrics.weights import histogram, kl_divergence, shared_edges  # noqa: E402
from unlearn_repro.report import style  # noqa: E402
from unlearn_repro.report.figures import _legend, _save, method_label  # noqa: E402
from unlearn_repro.report.stats import ESTIMATOR, per_seed, t_interval  # noqa: E402
from unlearn_repro.report.tables import TABLE_FORMATS, write_table  # noqa: E402

PAPER_KL = {"gradient_ascent": 1176792.0, "fisher_removal": 425.0, "fisher_forgetting": 4174.0}  # §9.1
REFERENCE = "retrain"
ALPHA = 0.05


def outputs(root: str) -> dict[str, list[str]]:
    t, f = f"{root}/tables", f"{root}/figures"
    return {
        "tables": [f"{t}/{n}.{e}" for n in ("weight_kl", "onion", "exposure_shift") for e in TABLE_FORMATS],
        "figures": [f"{f}/weights.png", f"{f}/onion.png", f"{f}/exposure_distributions.png"],
        "summary": [f"{root}/summary/metrics.json"],
    }


def build_report(
    cfg,
    snapshots: dict[str, str],
    bases: dict[str, str],
    onion_files: list[str],
    out_root: str | Path,
    control_files: list[str] = (),
) -> None:
    """snapshots: "method@seed" -> that cycle-1 snapshot (.npz); bases: seed -> the fine-tuned model's
    snapshot with that seed's split; onion_files: one onion run per seed (.../seed<k>.npz), control_files:
    their random-removal controls in the same order."""
    out_root = Path(out_root)
    tables, figures = out_root / "tables", out_root / "figures"
    snaps = by_seed({k: np.load(f) for k, f in snapshots.items()})
    bases = {str(seed): np.load(f) for seed, f in bases.items()}
    fig_seed = str(cfg.discussions.seed) if str(cfg.discussions.seed) in snaps else sorted(snaps)[0]
    kl = weight_kl(cfg, snaps, fig_seed, tables, figures)
    shift = exposure_shift(snaps, bases, fig_seed, tables, figures)
    controls = [np.load(f) for f in control_files] or [None] * len(onion_files)
    runs = [(_seed_of(f), np.load(f), c) for f, c in zip(onion_files, controls, strict=True)]
    onion_row = onion_effect(runs, tables, figures)
    summary = {
        "weight_kl": {r["method"]: r["kl"] for r in kl.to_dict("records") if r["kl"] is not None},
        "exposure_ks_p": {r["method"]: r["ks_p"] for r in shift.to_dict("records")},
        "onion": {
            k: _finite(onion_row[k])
            for k in (
                "removed",
                "rose",
                "crossed",
                "shift_mean",
                "control_shift_mean",
                "difference_low",
                "difference_high",
            )
            if k in onion_row
        },
    }
    write_json(out_root / "summary" / "metrics.json", summary)


def by_seed(items: dict) -> dict[str, dict]:
    """{"method@seed": x} as {seed: {method: x}}."""
    out: dict[str, dict] = {}
    for key, x in items.items():
        method, _, seed = key.partition("@")
        out.setdefault(seed, {})[method] = x
    return out


def _finite(value):
    """NaN (an interval of one value) as null: the summary is strict JSON."""
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _seed_of(path) -> str:
    """The seed in an onion run's file name (seed<k>.npz), or the file's stem."""
    stem = Path(path).stem
    return stem[4:] if stem.startswith("seed") else stem


def kl_to_retraining(cfg, snaps) -> dict[str, float | None]:
    """One seed: KL(P_method || P_retrain) of the last block's weights on bins shared by all its methods."""
    d = cfg.discussions
    edges = shared_edges([s["weights"] for s in snaps.values()], d.bins)
    hists = {m: histogram(s["weights"], edges) for m, s in snaps.items()}
    return {
        m: kl_divergence(hists[m], hists[REFERENCE], d.kl_epsilon) if REFERENCE in hists else None
        for m in snaps
        if m != REFERENCE
    }


def weight_kl(cfg, snaps_by_seed, fig_seed, tables, figures) -> pd.DataFrame:
    """Figure 4 (the models of `fig_seed`) and the KL of each method to retraining: mean and 95 % t interval
    over the seeds, every seed's value kept."""
    d = cfg.discussions
    kl = {seed: kl_to_retraining(cfg, snaps) for seed, snaps in snaps_by_seed.items()}
    snaps = snaps_by_seed[fig_seed]
    rows = []
    for m in [m for m in snaps if m != REFERENCE]:
        values = [kl[seed][m] for seed in kl if kl[seed].get(m) is not None]
        seeds = [seed for seed in kl if kl[seed].get(m) is not None]
        iv = t_interval(values)
        rows.append(
            {
                "method": m,
                "label": method_label(m),
                "kl": iv.mean if values else None,
                "kl_ci_low": iv.low,
                "kl_ci_high": iv.high,
                "n_seeds": iv.n,
                "per_seed": per_seed(seeds, values),
                "paper": PAPER_KL.get(m),
                "bins": d.bins,
                "epsilon": d.kl_epsilon,
                "layer": str(snaps[m]["layer"]),
            }
        )
    table = pd.DataFrame(rows)
    write_table(
        table,
        tables / "weight_kl",
        "Weight distributions: KL(P_method ‖ P_retrain) (paper §9.1, Figure 4)",
        f"Histograms of the last transformer block's weights after cycle 1 on {d.bins} bins shared by all "
        f"methods, ε = {d.kl_epsilon} added per bin, KL in nats; `kl`: mean over the seeds, with the "
        f"{ESTIMATOR} (`kl_ci_low`, `kl_ci_high`) and every seed's value (`per_seed`). The paper's "
        "values (GPT-Neo-125M, 40k bins) are far larger than any KL of normalized histograms can be "
        "on these bins; they are likely unnormalized, so compare the order of methods, not the "
        "magnitudes." + ("" if REFERENCE in snaps else " Retraining is not enabled: no reference, no KL."),
    )
    _weights_figure(cfg, snaps, kl[fig_seed], figures / "weights.png", fig_seed)
    return table


def _grid(n: int, width: float = 3.0, height: float = 2.6, ncols: int = 3):
    """A figure of n panels, at most `ncols` a row (one row of 8 is unreadable at the report's width);
    the unused cells are removed. Returns (fig, the n axes)."""
    ncols = max(1, min(n, ncols))
    nrows = -(-max(n, 1) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, 0.9 + height * nrows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[n:]:
        ax.remove()
    return fig, list(axes.flat[:n])


def _weights_figure(cfg, snaps, kl, path, seed=None):
    """Paper Figure 4: per method, its last-block weight histogram (dashed, its colour) over retraining's
    (black), on shared bins; the panel title gives the KL. Returns the Figure (already saved and closed)."""
    methods = style.order([m for m in snaps if m != REFERENCE])
    edges = shared_edges([s["weights"] for s in snaps.values()], cfg.discussions.bins)
    hists = {m: histogram(s["weights"], edges) for m, s in snaps.items()}
    centers = (edges[:-1] + edges[1:]) / 2
    with style.context():
        fig, axes = _grid(len(methods))
        for ax, m in zip(axes, methods):
            if REFERENCE in hists:
                ax.plot(
                    centers,
                    hists[REFERENCE] / hists[REFERENCE].sum(),
                    color=style.BLACK,
                    lw=1.2,
                    label=method_label(REFERENCE),
                    gid=REFERENCE,
                )
            ax.plot(
                centers,
                hists[m] / hists[m].sum(),
                color=style.method_style(m)["color"],
                lw=1.2,
                ls=style.DASHED,
                label=method_label(m),
                gid=m,
            )
            value = kl.get(m)
            ax.set_title(method_label(m) + (f", KL = {value:.2g} nats" if _finite(value) is not None else ""))
            ax.set_yscale("log")
            ax.set_xlabel("weight value")
            ax.set_ylabel("share of weights (log)")
        _legend(fig, axes, 5)
        fig.suptitle(
            "Paper Figure 4 (§9.1): last-block weight distributions after unlearning vs retraining"
            + (f", seed {seed}" if seed is not None else "")
        )
        _save(fig, path)
    return fig


def ks_per_method(snaps, base_snap) -> dict[str, tuple]:
    """One seed: (before, after, KS result) of the retained samples' exposures for each method."""
    from scipy import stats  # here, not at the top: the DAG build imports this module (its declared outputs)

    before_all = dict(zip(base_snap["index"].tolist(), base_snap["exposure"].tolist()))
    out = {}
    for m, snap in snaps.items():
        before = np.array([before_all[i] for i in snap["index"].tolist()])
        out[m] = (before, snap["exposure"], stats.ks_2samp(before, snap["exposure"]))
    return out


def exposure_shift(snaps_by_seed, bases_by_seed, fig_seed, tables, figures) -> pd.DataFrame:
    """Figure 7 (the models of `fig_seed`): exposure of the retained samples before (fine-tuned model) and
    after each method; a KS test per seed, combined over the seeds by Fisher's method."""
    from scipy import stats

    ks = {seed: ks_per_method(snaps, bases_by_seed[seed]) for seed, snaps in snaps_by_seed.items()}
    rows = []
    for m in snaps_by_seed[fig_seed]:
        runs = [ks[seed][m] for seed in ks if m in ks[seed]]
        p = [float(r[2].pvalue) for r in runs]
        combined = float(stats.combine_pvalues(p, method="fisher").pvalue) if len(p) > 1 else p[0]
        rows.append(
            {
                "method": m,
                "label": method_label(m),
                "n_retained": min(len(r[0]) for r in runs),
                "mean_before": float(np.mean([r[0].mean() for r in runs])),
                "mean_after": float(np.mean([r[1].mean() for r in runs])),
                "ks_statistic": float(np.mean([r[2].statistic for r in runs])),
                "ks_p": combined,
                "shifted_seeds": int(sum(x < ALPHA for x in p)),
                "n_seeds": len(p),
                "per_seed": per_seed([seed for seed in ks if m in ks[seed]], p),
                "distribution_shifted": bool(combined < ALPHA),
            }
        )
    _exposure_figure(ks[fig_seed], figures / "exposure_distributions.png", fig_seed)
    table = pd.DataFrame(rows)
    write_table(
        table,
        tables / "exposure_shift",
        "Exposure distributions before / after unlearning (paper §9.3, Figure 7)",
        "Retained samples (D+ after the random cycle-1 forget set); a two-sample KS test per seed "
        f"(`per_seed` p-values, `shifted_seeds` with p < {ALPHA}), combined over the seeds by "
        f"Fisher's method (`ks_p`); shifted = combined p < {ALPHA}.",
    )
    return table


def _exposure_figure(ks, path, seed=None):
    """Paper Figure 7: per method, the retained samples' exposure before unlearning (light grey, the same
    in every figure) and after (the method's colour), with the KS p-value. Returns the Figure."""
    methods = style.order(ks)
    with style.context():
        fig, axes = _grid(len(methods))
        for ax, m in zip(axes, methods):
            before, after, test = ks[m]
            bins = np.linspace(min(before.min(), after.min()), max(before.max(), after.max()), 30)
            ax.hist(
                before, bins=bins, color=style.BEFORE, label="before unlearning (fine-tuned)", gid="before"
            )
            ax.hist(
                after,
                bins=bins,
                histtype="step",
                color=style.method_style(m)["color"],
                lw=1.6,
                label=method_label(m),
                gid=m,
            )
            ax.set_title(f"{method_label(m)}, KS p = {test.pvalue:.2g}")
            ax.set_xlabel("exposure (bits)")
            ax.set_ylabel("retained samples")
        _legend(fig, axes, 5)
        fig.suptitle(
            "Paper Figure 7 (§9.3): exposure of the retained samples before and after unlearning"
            + (f", seed {seed}" if seed is not None else "")
        )
        _save(fig, path)
    return fig


def versus_control(o, control) -> dict:
    """One seed's onion run against its control, on the samples both removals kept: their mean exposure shift
    after the top removal and after the random one, and the mean difference of their exposures after the two
    retrainings (the exposures before cancel) with its paired 95 % t interval over those samples."""
    top = dict(zip(o["kept"].tolist(), zip(o["before"].tolist(), o["after"].tolist())))
    ctrl = dict(zip(control["kept"].tolist(), control["after"].tolist()))
    common = sorted(set(top) & set(ctrl))
    before = np.array([top[i][0] for i in common])
    after_top, after_ctrl = np.array([top[i][1] for i in common]), np.array([ctrl[i] for i in common])
    diff = t_interval(after_top - after_ctrl)
    return {
        "common_kept": len(common),
        "shift_mean": float((after_top - before).mean()),
        "control_shift_mean": float((after_ctrl - before).mean()),
        "difference_mean": diff.mean,
        "difference_low": diff.low,
        "difference_high": diff.high,
    }


def onion_row(seed, o, control=None) -> dict:
    """One seed's onion run: how many kept samples rose or crossed the threshold, a one-sided Wilcoxon
    signed-rank test of 'the safe samples became more exposed', and the comparison with its control."""
    from scipy import stats

    before, after, threshold = o["before"], o["after"], float(o["threshold"])
    test = stats.wilcoxon(after, before, alternative="greater")
    crossed = (after > threshold) & (before <= threshold)
    row = {
        "seed": str(seed),
        "threshold": threshold,
        "removed": int(len(o["removed"])),
        "kept": int(len(o["kept"])),
        "rose": int((after > before).sum()),
        "crossed": int(crossed.sum()),
        "mean_before": float(before.mean()),
        "mean_after": float(after.mean()),
        "shift_mean": float((after - before).mean()),
        "wilcoxon_statistic": float(test.statistic),
        "wilcoxon_p": float(test.pvalue),
        "onion_effect": bool(test.pvalue < ALPHA or crossed.any()),
        "interval_over": "kept samples",
    }
    if control is not None:
        row.update(versus_control(o, control))
    return row


def across_seeds(rows: list[dict]) -> dict:
    """The row the verdict reads: means over the seeds, and the difference's 95 % t interval over the seeds'
    mean differences (with one seed: that seed's interval over its kept samples, which leaves out
    retraining's own seed-to-seed spread; `interval_over` says which)."""
    df = pd.DataFrame(rows)
    out = {k: (float(df[k].mean()) if pd.api.types.is_numeric_dtype(df[k]) else df[k].iloc[0]) for k in df}
    out.update(
        seed="all", wilcoxon_statistic=np.nan, wilcoxon_p=np.nan, onion_effect=bool(df["onion_effect"].all())
    )
    if "difference_mean" in df and len(df) >= 2:
        iv = t_interval(df["difference_mean"])
        out.update(difference_low=iv.low, difference_high=iv.high, interval_over=f"seeds ({iv.n})")
    elif len(df) == 1:
        out.update({k: rows[0][k] for k in ("difference_low", "difference_high") if k in rows[0]})
    return out


def onion_effect(runs, tables, figures) -> dict:
    """Figure 6 and its table: runs = [(seed, onion run, its control or None)]; a row per seed and the
    summary row ("all") the verdict reads. The figure shows the first seed."""
    rows = [onion_row(seed, o, control) for seed, o, control in runs]
    summary = across_seeds(rows)
    write_table(
        pd.DataFrame(rows + [summary]),
        tables / "onion",
        "The onion effect (paper §9.3, Figure 6)",
        "Kept samples' exposure after removing those above the threshold and retraining, one row "
        "per retraining seed: `rose` = higher than before, `crossed` = now above the threshold; "
        "one-sided Wilcoxon signed-rank test (after > before). Control: a random set of the same "
        "size removed and the model retrained the same way; on the samples both kept "
        "(`common_kept`): `shift_mean` (top removal) vs `control_shift_mean`, their mean difference "
        "after retraining (`difference_mean`) and its 95 % t interval (`difference_low`, "
        "`difference_high`): per seed over the kept samples; in the row `all` over the seeds' mean "
        "differences (`interval_over`). Per-sample exposures: discussions/onion/seed*.npz and "
        "onion_control/seed*.npz.",
    )
    _onion_figure(runs[0][1], rows[0], figures / "onion.png")
    return summary


def _onion_figure(o, row: dict, path):
    """Paper Figure 6 for one seed: each kept sample's exposure before against after removing the most
    exposed and retraining; above the diagonal = more exposed. Returns the Figure (saved and closed)."""
    before, after, threshold = o["before"], o["after"], float(o["threshold"])
    with style.context():
        fig, ax = plt.subplots(figsize=(4.6, 4.4), layout="constrained")
        ax.scatter(before, after, s=8, alpha=0.6, color=style.BLACK, label="kept sample", gid="kept")
        lo, hi = min(before.min(), after.min()), max(before.max(), after.max())
        ax.plot([lo, hi], [lo, hi], color=style.EDGE, lw=0.9, ls=":", label="after = before")
        ax.axhline(
            threshold, color=style.VERMILLION, lw=1.0, ls="--", label=f"threshold {threshold:.3g} bits"
        )
        ax.set_xlabel("exposure before (bits)")
        ax.set_ylabel("exposure after removal + retraining (bits)")
        ax.set_title(
            f"seed {row['seed']}: {row['rose']} of {row['kept']} rose, {row['crossed']} crossed the "
            f"threshold; Wilcoxon p = {row['wilcoxon_p']:.2g}",
            fontsize=8,
        )
        ax.legend(loc="upper left")
        fig.suptitle("Paper Figure 6 (§9.3): the onion effect")
        _save(fig, path)
    return fig
