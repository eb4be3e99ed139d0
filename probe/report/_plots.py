"""The report's figures, drawn with matplotlib without pyplot (no global backend state).

Each `plot_*` function takes plain data (summary parts or DataFrames from `probe.load_run`)
and returns a `matplotlib.figure.Figure` sized for a paper column pair (6.5 inches wide, 9 pt
text); `save_figure` writes it as PNG and SVG. Notebooks can call the same functions and
show the figures inline.

The count axis is symmetric-log with a linear part of one decade's width for [0, 1): the
zero-count bucket (the most interesting one) sits at the left of the decades 1-9, 10-99, ...
instead of falling off a log axis.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from probe.report._frames import SETTING_NAMES, num, pair

WIDTH = 6.5
"""Figure width in inches: the text width of a two-column paper page."""

STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
    "axes.spines.right": False, "svg.hashsalt": "ltprobe", "svg.fonttype": "path",
}

SETTING_COLOURS = {"closed_book": "#1f4e9a", "rag": "#d9641e", "oracle": "#2f9b4a"}
_CYCLE = ["#1f4e9a", "#d9641e", "#2f9b4a", "#a4327a", "#6b6b6b", "#b59b00", "#17a2b8", "#7b4f2c"]


def colour(label: str, i: int) -> str:
    """The colour of a series: fixed per setting, else the i-th of a colour-blind-safe cycle."""
    return SETTING_COLOURS.get(label, _CYCLE[i % len(_CYCLE)])


def new_figure(height: float, nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure with the report's style and its axes."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(WIDTH, height), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, axes


def save_figure(fig: Figure, plots_dir: str | Path, name: str, dpi: int = 200) -> dict[str, Any]:
    """Write `plots_dir/NAME.png` and `NAME.svg`; return their paths and the PNG as a data URI."""
    import matplotlib

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    from entity_linking.io import atomic_write

    png, svg = io.BytesIO(), io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(png, format="png", dpi=dpi)
        # No date in the SVG: the same run draws the same bytes (a resumed run equals an uninterrupted one).
        fig.savefig(svg, format="svg", metadata={"Date": None})
    for suffix, buffer in (("svg", svg), ("png", png)):
        with atomic_write(plots_dir / f"{name}.{suffix}", "wb") as handle:
            handle.write(buffer.getvalue())
    uri = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")
    return {"png": plots_dir / f"{name}.png", "svg": plots_dir / f"{name}.svg", "data_uri": uri}


# ---- the count axis -----------------------------------------------------------------------

def bucket_centre(lo: float, hi: float) -> float:
    """Where a bucket's point sits on the count axis: mid-bar for [0, 1), else the geometric middle."""
    return (lo + hi) / 2 if lo < 1 else math.sqrt(lo * hi)


def count_axis(ax: Any, max_hi: float, label: str = "relevant documents (count)") -> None:
    """Symmetric-log count axis from 0 to `max_hi` with ticks at 0 and each decade."""
    max_hi = max(10.0, float(max_hi))
    ax.set_xscale("symlog", linthresh=1, linscale=1)
    ticks = [0] + [10 ** e for e in range(0, int(round(math.log10(max_hi))) + 1)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_count_tick))
    ax.set_xlim(0, max_hi)
    ax.set_xlabel(label)


def _count_tick(value: float, _pos: int) -> str:
    if value < 1:
        return "0"
    exponent = round(math.log10(value))
    return f"{int(value):,}" if exponent <= 3 else f"$10^{{{exponent}}}$"


# ---- accuracy against count -----------------------------------------------------------------

def plot_accuracy_vs_count(series: Mapping[str, pd.DataFrame], hist: Mapping[str, pd.DataFrame] | None = None,
                           *, title: str | None = None, min_bucket: int | None = None,
                           names: Mapping[str, str] | None = None,
                           fits: Mapping[str, Mapping[str, Any]] | None = None) -> Figure:
    """Accuracy per count bucket with 95% intervals, one line per series, histogram underneath.

    `series` maps a label (a setting, or a run in comparisons) to a bucket frame with `lo`,
    `hi`, `n`, `accuracy`, `ci_low`, `ci_high`, `flagged` (`Run.buckets()`). `hist` maps a
    label to the frame whose `n` is drawn as the number of questions per bucket (default: the
    first series). Flagged buckets (fewer questions than the analysis minimum) get open markers.
    `fits` maps a label to a logistic fit of correctness on log10(count + 1) (`intercept`,
    `slope`), drawn as a thin dashed curve.
    """
    names = dict(SETTING_NAMES, **(names or {}))
    fig, axes = new_figure(4.6, 2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.1]})
    ax, hax = axes[0, 0], axes[1, 0]
    frames = {k: v for k, v in series.items() if v is not None and not v.empty}
    max_hi = max([float(f["hi"].max()) for f in frames.values()] + [10.0])
    any_flagged = any_fit = False
    for i, (label, frame) in enumerate(frames.items()):
        c = colour(label, i)
        x = np.array([bucket_centre(lo, hi) for lo, hi in zip(frame["lo"], frame["hi"])])
        x = _dodge(x, i, len(frames))
        y = frame["accuracy"].to_numpy(dtype=float)
        lo_err = np.clip(y - frame["ci_low"].to_numpy(dtype=float), 0, None)
        hi_err = np.clip(frame["ci_high"].to_numpy(dtype=float) - y, 0, None)
        yerr = np.nan_to_num(np.vstack([lo_err, hi_err]))
        ax.plot(x, y, "-", color=c, lw=1.6, label=names.get(label, label), zorder=2)
        ax.errorbar(x, y, yerr=yerr, fmt="none", ecolor=c, elinewidth=1, capsize=3, zorder=2)
        flagged = frame["flagged"].to_numpy(dtype=bool) if "flagged" in frame else np.zeros(len(x), bool)
        any_flagged |= bool(flagged.any())
        ax.plot(x[~flagged], y[~flagged], "o", color=c, ms=5, zorder=3)
        ax.plot(x[flagged], y[flagged], "o", mfc="white", mec=c, ms=5, zorder=3)
        fit = (fits or {}).get(label) or {}
        a, b = num(fit.get("intercept")), num(fit.get("slope"))
        if a is not None and b is not None:
            xs = np.concatenate([np.linspace(0, 1, 20), np.logspace(0, math.log10(max_hi), 60)])
            ax.plot(xs, 1 / (1 + np.exp(-(a + b * np.log10(xs + 1)))), "--", color=c, lw=0.9, alpha=0.7,
                    zorder=1)
            any_fit = True
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy")
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    if frames:
        handles, labels = ax.get_legend_handles_labels()
        if any_flagged:
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="0.3"))
            labels.append(f"< {min_bucket} questions" if min_bucket else "few questions (flagged)")
        if any_fit:
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], ls="--", color="0.4", lw=0.9))
            labels.append("logistic fit")
        ax.legend(handles, labels, loc="best", frameon=False)
    else:
        ax.text(0.5, 0.5, "no accuracy buckets in this run", ha="center", va="center", transform=ax.transAxes)

    hists = dict(hist) if hist else ({next(iter(frames)): next(iter(frames.values()))} if frames else {})
    hists = {k: v for k, v in hists.items() if v is not None and not v.empty}
    for i, (label, frame) in enumerate(hists.items()):
        lefts, rights = frame["lo"].to_numpy(dtype=float), frame["hi"].to_numpy(dtype=float)
        n = frame["n"].fillna(0).to_numpy(dtype=float)
        if len(hists) == 1:
            hax.bar(lefts, n, width=rights - lefts, align="edge", color="0.75", edgecolor="white")
            for xc, v in zip([bucket_centre(a, b) for a, b in zip(lefts, rights)], n):
                hax.text(xc, v, f"{int(v)}", ha="center", va="bottom", fontsize=7)
        else:  # outlines, so several runs' histograms stay readable on top of each other
            hax.bar(lefts, n, width=rights - lefts, align="edge", fill=False, edgecolor=colour(label, i),
                    lw=1.4, label=names.get(label, label))
    if len(hists) > 1:
        hax.legend(frameon=False, fontsize=7)
    hax.set_ylabel("questions")
    hax.margins(y=0.25)
    count_axis(hax, max_hi)
    return fig


def _dodge(x: np.ndarray, i: int, n: int, width: float = 0.06) -> np.ndarray:
    """Shift series i of n sideways (a fraction of a decade) so their intervals do not overlap."""
    if n <= 1:
        return x
    shift = width * (i - (n - 1) / 2)
    return np.where(x < 1, x + shift, x * 10 ** shift)


# ---- slopes and reduction -------------------------------------------------------------------

def plot_slopes(settings: Mapping[str, Mapping[str, Any]], reduction: float | None = None,
                reduction_ci: Any = None, names: Mapping[str, str] | None = None) -> Figure:
    """Slope of accuracy per tenfold count with its 95% interval, one row per setting."""
    names = dict(SETTING_NAMES, **(names or {}))
    rows = [(k, v) for k, v in settings.items() if num(v.get("slope_per_decade")) is not None]
    fig, axes = new_figure(0.6 + 0.45 * max(len(rows), 1))
    ax = axes[0, 0]
    for i, (label, entry) in enumerate(rows):
        s = num(entry["slope_per_decade"])
        ci = pair(entry.get("slope_ci"))
        y = len(rows) - 1 - i
        if ci:
            ax.plot(ci, [y, y], "-", color=colour(label, i), lw=2.5, alpha=0.6, solid_capstyle="butt")
        ax.plot([s], [y], "o", color=colour(label, i), ms=6)
        ax.text(s, y + 0.22, f"{s:+.3f}" + (f"  [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""),
                ha="center", va="bottom", fontsize=7)
    ax.axvline(0, color="0.4", lw=0.8, ls="--")
    ax.set_yticks(range(len(rows)), [names.get(k, k) for k, _ in reversed(rows)])
    ax.set_ylim(-0.6, len(rows) - 0.2)
    ax.set_xlabel("change in accuracy per tenfold more relevant documents (95% interval)")
    title = "Count dependence: slope per decade"
    red = num(reduction)
    if red is not None:
        title += f"\nretrieval reduces it by {red:.0%}"
        ci = pair(reduction_ci)
        if ci:
            title += f" (95% interval {ci[0]:.0%} to {ci[1]:.0%})"
    ax.set_title(title)
    return fig


def plot_slopes_compare(runs: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Figure:
    """Slope per decade with its interval for several runs: one row per run, one marker per setting."""
    labels = list(runs)
    settings: list[str] = []
    for entries in runs.values():
        settings += [s for s, e in entries.items() if s not in settings and isinstance(e, Mapping)
                     and num(e.get("slope_per_decade")) is not None]
    fig, axes = new_figure(0.9 + 0.4 * max(len(labels), 1))
    ax = axes[0, 0]
    for j, setting in enumerate(settings):
        offset = 0.25 * (j - (len(settings) - 1) / 2)
        for i, label in enumerate(labels):
            e = runs[label].get(setting) or {}
            s = num(e.get("slope_per_decade"))
            if s is None:
                continue
            y = len(labels) - 1 - i - offset
            ci = pair(e.get("slope_ci"))
            if ci:
                ax.plot(ci, [y, y], "-", color=colour(setting, j), lw=2, alpha=0.6, solid_capstyle="butt")
            ax.plot([s], [y], "o", color=colour(setting, j), ms=5,
                    label=SETTING_NAMES.get(setting, setting) if i == 0 else None)
    ax.axvline(0, color="0.4", lw=0.8, ls="--")
    ax.set_yticks(range(len(labels)), list(reversed(labels)))
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.set_xlabel("change in accuracy per tenfold more relevant documents (95% interval)")
    ax.set_title("Count dependence per run")
    if settings:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=len(settings), frameon=False)
    return fig


# ---- retrieval ----------------------------------------------------------------------------

def plot_recall_at_k(recall: pd.DataFrame) -> Figure:
    """Recall@k per count bucket (`Run.recall_at_k()`), one line per k."""
    fig, axes = new_figure(3.4)
    ax = axes[0, 0]
    ks = sorted(recall["k"].unique(), key=lambda k: (not isinstance(k, (int, np.integer)), k))
    for i, k in enumerate(ks):
        part = recall[recall["k"] == k].sort_values("lo")
        x = [bucket_centre(lo, hi) for lo, hi in zip(part["lo"], part["hi"])]
        overall = num(part["overall"].iloc[0]) if "overall" in part else None
        label = f"k = {k}" + (f" (overall {overall:.2f})" if overall is not None else "")
        ax.plot(x, part["recall"], "o-", color=plt_cycle(i, len(ks)), ms=4, lw=1.4, label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("share with an answer in top k")
    ax.set_title("Retrieval recall@k by relevant-document count")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
    count_axis(ax, float(recall["hi"].max()) if len(recall) else 10)
    return fig


def plt_cycle(i: int, n: int) -> str:
    """A sequential colour (light to dark blue) for ordered series such as k."""
    from matplotlib import colormaps

    return colormaps["viridis"](0.1 + 0.75 * (i / max(n - 1, 1)))


def plot_precision(precision: pd.DataFrame) -> Figure:
    """Retrieval precision per count bucket (`lo`, `hi`, `precision`)."""
    fig, axes = new_figure(2.6)
    ax = axes[0, 0]
    x = [bucket_centre(lo, hi) for lo, hi in zip(precision["lo"], precision["hi"])]
    ax.plot(x, precision["precision"], "o-", color=SETTING_COLOURS["rag"], ms=4)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("retrieval precision")
    ax.set_title("Share of retrieved passages about the question's entity pair")
    ax.grid(axis="y", alpha=0.3)
    count_axis(ax, float(precision["hi"].max()))
    return fig


# ---- scaling ------------------------------------------------------------------------------

def plot_scaling(points: pd.DataFrame, fit: Mapping[str, Any] | None = None,
                 target: float | None = None, extrapolated: float | None = None) -> Figure:
    """Low-count accuracy against model size (`params`, `accuracy`, `model`), log size axis,
    with the linear fit on log10(params) extended to where it reaches `target`."""
    fig, axes = new_figure(3.0)
    ax = axes[0, 0]
    ax.set_xscale("log")
    if {"ci_low", "ci_high"} <= set(points.columns) and points["ci_low"].notna().any():
        y = points["accuracy"].to_numpy(dtype=float)
        err = np.nan_to_num(np.vstack([y - points["ci_low"].to_numpy(dtype=float),
                                       points["ci_high"].to_numpy(dtype=float) - y]).clip(0))
        ax.errorbar(points["params"], y, yerr=err, fmt="none", ecolor=_CYCLE[0], capsize=3, zorder=2)
    ax.plot(points["params"], points["accuracy"], "o", color=_CYCLE[0], ms=6, zorder=3)
    for _, row in points.iterrows():
        ax.annotate(str(row.get("model", "")), (row["params"], row["accuracy"]), fontsize=7,
                    xytext=(4, -10), textcoords="offset points")
    slope, intercept = (num((fit or {}).get("slope")), num((fit or {}).get("intercept")))
    if slope is not None and intercept is not None:
        right = max(float(points["params"].max()), num(extrapolated) or 0) * 1.5
        xs = np.logspace(math.log10(float(points["params"].min()) / 1.5), math.log10(right), 50)
        r2 = num((fit or {}).get("r2"))
        ax.plot(xs, intercept + slope * np.log10(xs), "--", color="0.4", lw=1,
                label="linear fit on log10(parameters)" + (f", $R^2$ = {r2:.2f}" if r2 is not None else ""))
    if num(target) is not None:
        ax.axhline(target, color=SETTING_COLOURS["oracle"], lw=1, ls=":", label=f"target accuracy {target:.2f}")
    if num(extrapolated) is not None:
        ax.axvline(extrapolated, color="0.6", lw=0.8)
        ax.annotate(f"~{extrapolated:.1e} parameters", (extrapolated, 0.05), fontsize=7, rotation=90,
                    xytext=(-9, 0), textcoords="offset points", ha="center", va="bottom")
    lo_x, hi_x = ax.get_xlim()
    if hi_x / lo_x > 1e6:  # minor ticks on many decades cost time and say nothing
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_ylim(0, 1)
    ax.set_xlabel("model parameters")
    ax.set_ylabel("accuracy on low-count questions")
    ax.set_title("Scaling: how large a model would the long tail need?")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False)
    return fig


# ---- LINK long-tail generation -------------------------------------------------------------

def plot_link(statements: pd.DataFrame, rule_col: str = "rule") -> Figure:
    """Head and tail distributions per rule: mean token log-likelihood (and corpus count when
    the statements carry one)."""
    has_count = "count" in statements and statements["count"].notna().any()
    ncols = 2 if has_count else 1
    fig, axes = new_figure(0.8 + 0.55 * max(statements[rule_col].nunique(), 1) * 1.3, 1, ncols)
    rules = list(dict.fromkeys(statements[rule_col].astype(str)))
    panels = [("loglik", "mean token log-likelihood", False)]
    if has_count:
        panels.append(("count", "relevant documents of the filled values", True))
    for col_i, (column, label, log) in enumerate(panels):
        ax = axes[0, col_i]
        for r_i, rule in enumerate(rules):
            part = statements[statements[rule_col].astype(str) == rule]
            for b_i, (beam, c) in enumerate((("head", _CYCLE[0]), ("tail", _CYCLE[1]))):
                values = pd.to_numeric(part.loc[part["beam"] == beam, column], errors="coerce").dropna()
                if values.empty:
                    continue
                y = len(rules) - 1 - r_i + (0.15 if beam == "head" else -0.15)
                jitter = np.random.default_rng(r_i * 2 + b_i).uniform(-0.06, 0.06, len(values))
                ax.plot(values, y + jitter, "o", color=c, ms=3, alpha=0.5,
                        label=beam if r_i == 0 else None)
                ax.plot([values.mean()], [y], "|", color="black", ms=12, mew=2)
        ax.set_yticks(range(len(rules)), list(reversed(rules)))
        ax.set_xlabel(label)
        if log:
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=2,
               frameon=False, title="beam (black bar: mean)")
    fig.suptitle("LINK head and tail statements per rule")
    return fig


# ---- the causal check ----------------------------------------------------------------------

def plot_counterfactual(cf: Mapping[str, Any]) -> Figure:
    """Accuracy before and after removing the relevant documents, per original-count bucket and
    for the control sample, with the drop and its 95% interval."""
    from probe.analysis import bucket_label

    groups = []
    for b in cf.get("buckets") or []:
        if isinstance(b, dict) and b.get("lo") is not None and b.get("hi") is not None:
            groups.append((bucket_label(b["lo"], b["hi"]), b))
    if isinstance(cf.get("control"), dict):
        groups.append(("control\n(kept)", cf["control"]))
    fig, axes = new_figure(3.0, 1, 2, gridspec_kw={"width_ratios": [3, 2]})
    ax, dax = axes[0, 0], axes[0, 1]
    x = np.arange(len(groups))
    before = [(num(g.get("before")) or 0.0) for _, g in groups]
    after = [(num(g.get("after")) or 0.0) for _, g in groups]
    ax.bar(x - 0.2, before, 0.4, color=_CYCLE[0], label="original model")
    ax.bar(x + 0.2, after, 0.4, color=_CYCLE[1], label="retrained without the documents")
    ax.set_xticks(x, [g[0] for g in groups])
    ax.set_ylim(0, 1.3)  # room above the bars for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("accuracy on sampled questions")
    ax.set_xlabel("original relevant-document count")
    ax.legend(frameon=False, fontsize=7, loc="upper left", ncols=2)
    for i, (_, g) in enumerate(groups):
        drop = num(g.get("drop"))
        if drop is None:
            continue
        ci = pair(g.get("drop_ci"))
        err = [[drop - ci[0]], [ci[1] - drop]] if ci else None
        dax.errorbar([i], [drop], yerr=err, fmt="o", color="0.5" if i == len(groups) - 1 and "control" in groups[i][0]
                     else _CYCLE[3], capsize=3)
    dax.axhline(0, color="0.4", lw=0.8, ls="--")
    dax.set_xticks(x, [g[0] for g in groups])
    dax.set_ylabel("drop (before - after), 95% interval")
    fig.suptitle("Causal check: retraining without the relevant documents")
    return fig


