"""The report's sections for issue 19: the learning curve, error attribution, and the gold
answer's log-probability (`probe.analysis._learning` computes them into summary.json)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from probe.report._html import html_figure, html_table
from probe.report._plots import plot_accuracy_vs_count

KEYS = {"learning", "error_attribution"}
"""summary.json keys these sections render."""


def _frame(buckets: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"lo": b["lo"], "hi": b["hi"], "n": b["n"], "accuracy": b.get("accuracy", b.get("share")),
             "ci_low": (b.get("ci") or [None, None])[0], "ci_high": (b.get("ci") or [None, None])[1],
             "flagged": b.get("flagged", False)} for b in buckets if b["n"]]
    return pd.DataFrame(rows, columns=["lo", "hi", "n", "accuracy", "ci_low", "ci_high", "flagged"])


def section_learning(run: Any, plots_dir: Path) -> str | None:

    learning = run.summary.get("learning")
    if not learning:
        return None
    checkpoints = learning["checkpoints"]
    series = {f"step {c['step']}": _frame(c["buckets"]) for c in checkpoints}
    last = f"step {checkpoints[-1]['step']}"
    fig = plot_accuracy_vs_count(series, hist={last: series[last]},
                                 title="accuracy against relevant documents seen so far, per checkpoint")
    fig.axes[-1].set_xlabel("relevant documents seen before the checkpoint's step")
    parts = [html_figure(fig, plots_dir, "learning_curve",
                     "Closed-book accuracy per bucket of relevant documents the checkpoint had been trained on, "
                     "with 95% Wilson intervals; the histogram counts the last checkpoint's questions")]
    rows = []
    for c in checkpoints:
        half = c.get("count_at_half")
        rows.append([c["step"], c["n"], f"{c['accuracy']:.3f}",
                     "not reached" if half is None else f"{half:,.1f}", html.escape(str(c["model"]))])
    parts.append(html_table(["step", "questions", "accuracy", "documents seen at which half are known", "model"], rows))
    parts.append("<p class='note'>Counts by step come from the training order (counts_by_step.jsonl, "
                 "`ltprobe count --order`); the half-known count is where the logistic fit of correctness "
                 "on log10(seen + 1) crosses 0.5.</p>")
    return "".join(parts)


def section_errors(run: Any, plots_dir: Path) -> str | None:

    attribution = run.summary.get("error_attribution")
    if not attribution:
        return None
    parts = [f"<p>{html.escape(attribution.get('definition', ''))}.</p>"]
    series = {}
    for setting, s in attribution["settings"].items():
        share = s["share_more_frequent"]
        rows = [[f"{b['lo']:,}-{b['hi'] - 1:,}" if b["hi"] > 1 else "0", b["n"], b["more_frequent"],
                 "n/a" if b["share"] is None else f"{b['share']:.2f}"] for b in s["buckets"]]
        parts.append(f"<h3>{html.escape(setting)}</h3><p>{s['n_errors']} wrong answers ("
                     + ", ".join(f"{html.escape(k)}: {v}" for k, v in sorted(s["status"].items()))
                     + f"); {s['n_more_frequent']} of the {s['n_attributed']} linked to another entity name "
                     f"one that co-occurs more often with the question entity"
                     + ("" if share is None else f" (share {share:.2f})") + ".</p>")
        parts.append(html_table(["gold count", "attributed errors", "more frequent distractor", "share"], rows))
        series[setting] = _frame(s["buckets"])
    series = {k: v for k, v in series.items() if not v.empty}
    if series:
        fig = plot_accuracy_vs_count(series, title="share of wrong answers with a more frequent predicted answer")
        fig.axes[0].set_ylabel("share of errors")
        parts.append(html_figure(fig, plots_dir, "error_attribution",
                             "Share of wrong answers whose predicted entity co-occurs with the question entity "
                             "more often than the gold answer, by gold count, with 95% Wilson intervals"))
    parts.append("<p class='note'>errors.jsonl lists each wrong answer; `ltprobe docs QA_ID --errors "
                 "errors.jsonl` shows the documents behind it.</p>")
    return "".join(parts)


def section_gold_logprob(run: Any, plots_dir: Path) -> str | None:

    settings = run.summary.get("settings") or {}
    rows = []
    for name, s in settings.items():
        if s.get("gold_logprob_slope") is None and s.get("gold_logprob_mean") is None:
            continue
        ci = s.get("gold_logprob_slope_ci")
        slope = s.get("gold_logprob_slope")
        acc = s.get("slope_per_decade")
        rows.append([name, s.get("gold_logprob_n"), f"{s['gold_logprob_mean']:.2f}",
                     "n/a" if slope is None else f"{slope:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""),
                     "n/a" if acc is None else f"{acc:+.3f}"])
    if not rows:
        return None
    return ("<p>The gold answer's log-probability after the prompt (natural log, summed over its tokens, "
            "best alias): a continuous measure beside exact match. Its slope is per tenfold increase of "
            "the count, with a bootstrap 95% interval.</p>"
            + html_table(["setting", "questions", "mean log-prob", "log-prob slope per decade [95%]",
                      "accuracy slope per decade"], rows))
