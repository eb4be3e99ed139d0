"""`report.html` of a run and side-by-side comparisons of several runs.

The report is one self-contained HTML file (figures embedded as base64 PNG) that a researcher
can mail to a colleague; the same figures are written to `plots/NAME.png` and `.svg`. The
headline is written from the numbers in `summary.json`, so it always says what the run found.
Every section beyond the contract's accuracy and slopes is optional: it appears when its data
is in the run (`summary.json` extras, `counterfactual.json`, a LINK generation run) and is left
out otherwise. A section whose data has an unexpected shape is shown as a raw table with a
note instead of failing the report.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from entity_linking.io import InputError, OnError, atomic_write
from probe.analysis import bucket_label
from probe.evaluation import setting_order
from probe.report._frames import SETTING_NAMES, buckets_frame, num, pair
from probe.report._html import (
    cell,
    first_num,
    fmt,
    fmt_int,
    fmt_pct,
    how_to_read,
    html_figure,
    html_page,
    html_table,
    kv_table,
    logistic_text,
    missing,
    paragraphs,
    records_table,
    short,
)
from probe.report._load import Run, load_run
from probe.report._words import headline, setup_sentence

logger = logging.getLogger(__name__)

# summary.json keys the report renders in a section of their own; others land in "Other figures".
_RENDERED_KEYS = {"model", "index", "n_questions", "settings", "count_dependence_reduction",
                  "count_dependence", "count_dependence_oracle",
                  "count_dependence_reduction_ci", "count_dependence_reduction_oracle",
                  "count_dependence_reduction_oracle_ci", "retrieval", "adaptive_retrieval", "scaling",
                  "truth_agreement", "n_unlinked", "learning", "error_attribution"}


# ---- the report ---------------------------------------------------------------------------------

def write_report(run_dir: str | Path, out: str | Path | None = None, *,
                 generation: str | Path | None = None, on_error: OnError = "fail") -> Path:
    """Write `report.html` (default: into the run folder) and `plots/*.png|svg`; return its path.

    `generation` names a LINK generation run folder (`statements.jsonl`,
    `generation_summary.json`); by default the run folder itself and `RUN/generation/` are
    looked at. Raises `InputError` when `run_dir` is not a run folder.
    """
    run = load_run(run_dir, on_error=on_error)
    out = Path(out) if out is not None else run.path / "report.html"
    plots_dir = out.parent / "plots"
    gen = _generation_run(run, generation, on_error)
    sections = [
        ("Accuracy against relevant-document count", _section_accuracy),
        ("Count dependence", _section_slopes),
        ("Retrieval", _section_retrieval),
        ("Scaling across model sizes", _section_scaling),
        ("Learning curve: accuracy against documents seen so far", _learning_section("section_learning")),
        ("Gold-answer log-probability", _learning_section("section_gold_logprob")),
        ("Error attribution: rare fact or frequent distractor", _learning_section("section_errors")),
        ("Counts against the world's true counts", _section_truth),
        ("Causal check: retraining without the relevant documents", _section_counterfactual),
        ("Long-tail test statements (LINK)", lambda r, p: _section_link(gen, p)),
        ("Other figures in summary.json", _section_other),
        ("Run manifest", _section_manifest),
    ]
    skipped = ""
    if run.skipped.skipped:
        logger.warning(f"report: {run.skipped.summary()}")
        skipped = (f"<p class='note'>{run.skipped.skipped} bad record(s) in the run's files were skipped "
                   f"(--on-error skip); first: {html.escape(run.skipped.examples[0])}</p>")
    setup = setup_sentence(run.manifest, run.summary)
    setup_html = f"<p class='meta'>{html.escape(setup)}</p>" if setup else ""
    warnings = "".join(f"<p class='warning'><b>Warning:</b> {html.escape(str(w.get('message', w)))}</p>"
                       for w in run.summary.get("diagnostics") or [] if isinstance(w, Mapping))
    body = [f"<section><h2>Finding</h2>{warnings}{paragraphs(headline(run.summary))}{setup_html}{skipped}"
            f"{how_to_read()}</section>"]
    for title, render in sections:
        body.append(_guarded(title, render, run, plots_dir))
    meta = {"run": str(run.path), "model": run.model or "?", "index": run.summary.get("index", "?"),
            "questions": run.summary.get("n_questions", len(run.questions))}
    document = html_page(f"ltprobe report: {run.name}", meta, "\n".join(b for b in body if b))
    with atomic_write(out) as handle:
        handle.write(document)
    return out


def _learning_section(name: str) -> Any:
    """A section of probe.report._learning (issue 19), imported when drawn."""
    def render(run: Run, plots_dir: Path) -> str | None:
        from probe.report import _learning as _report_learning

        return getattr(_report_learning, name)(run, plots_dir)

    return render


def _generation_run(run: Run, generation: str | Path | None, on_error: OnError) -> Run | None:
    if generation is not None:
        return load_run(generation, on_error=on_error)
    if run.statements is not None or run.generation_summary is not None:
        return run
    sub = run.path / "generation"
    if (sub / "statements.jsonl").exists() or (sub / "generation_summary.json").exists():
        return load_run(sub, on_error=on_error)
    return None


def _guarded(title: str, render: Any, run: Run, plots_dir: Path) -> str:
    """Render one section; an unexpected data shape gives a note, not a failed report."""
    try:
        content = render(run, plots_dir)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        logger.warning(f"report: section {title!r} could not be drawn ({type(exc).__name__}: {exc})")
        content = (f"<p class='note'>This section could not be drawn from the run's data "
                   f"({html.escape(type(exc).__name__)}: {html.escape(str(exc))}).</p>")
    if not content:
        return ""
    anchor = "".join(c if c.isalnum() else "-" for c in title.lower())
    return f"<section id='{anchor}'><h2>{html.escape(title)}</h2>\n{content}</section>"


def _section_accuracy(run: Run, plots_dir: Path) -> str | None:
    from probe.report._plots import plot_accuracy_vs_count

    settings = [s for s in run.settings if not run.buckets(s).empty]
    if not settings:
        return "<p class='note'>No accuracy buckets yet: the run has not reached the analysis.</p>"
    frames = {s: run.buckets(s) for s in settings}
    min_bucket = ((run.manifest.get("config") or {}).get("analysis") or {}).get("min_bucket")
    fits = {s: e.get("logistic") for s, e in (run.summary.get("settings") or {}).items()
            if isinstance(e, Mapping) and isinstance(e.get("logistic"), Mapping)}
    fig = plot_accuracy_vs_count(frames, title="Accuracy against the number of relevant pretraining documents",
                                 min_bucket=min_bucket, fits=fits)
    img = html_figure(fig, plots_dir, "accuracy_vs_count",
                  "Accuracy per count bucket with 95% intervals (top); questions per bucket (bottom)."
                  + (" Dashed: logistic fit of correctness on log10(count + 1)." if fits else ""))
    # One table: bucket, n, and accuracy [interval] per setting.
    labels = list(dict.fromkeys(label for f in frames.values() for label in f["label"]))
    rows = []
    for label in labels:
        row = [label]
        n = next((f.loc[f["label"] == label, "n"].iloc[0] for f in frames.values()
                  if (f["label"] == label).any()), None)
        row.append(fmt_int(n))
        flagged = False
        for s in settings:
            match = frames[s][frames[s]["label"] == label]
            if match.empty:
                row.append("–")
                continue
            m = match.iloc[0]
            flagged |= bool(m["flagged"])
            row.append("–" if num(m["accuracy"]) is None else
                       f"{fmt_pct(m['accuracy'])} [{fmt_pct(m['ci_low'])}, {fmt_pct(m['ci_high'])}]")
        row.append("yes" if flagged else "")
        rows.append(row)
    table = html_table(["relevant documents", "questions"] + [SETTING_NAMES.get(s, s) for s in settings]
                   + ["too few questions"], rows)
    return img + table


def _section_slopes(run: Run, plots_dir: Path) -> str | None:
    from probe.report._plots import plot_slopes

    settings = {s: e for s, e in (run.summary.get("settings") or {}).items() if isinstance(e, Mapping)}
    if not any(num(e.get("slope_per_decade")) is not None for e in settings.values()):
        return None
    fig = plot_slopes(settings, run.summary.get("count_dependence_reduction"),
                      run.summary.get("count_dependence_reduction_ci"))
    img = html_figure(fig, plots_dir, "slopes", "Slope of accuracy per tenfold increase of the count "
                  "(least squares on log10(count + 1)) with bootstrap 95% intervals.")
    has_logistic = any(isinstance(e.get("logistic"), Mapping) for e in settings.values())
    rows = []
    for name in sorted(settings, key=setting_order):
        e = settings[name]
        ci = pair(e.get("slope_ci"))
        aci = pair(e.get("accuracy_ci"))
        row = [SETTING_NAMES.get(name, name), fmt_int(e.get("n")),
               fmt_pct(e.get("accuracy")) + (f" [{aci[0]:.1%}, {aci[1]:.1%}]" if aci else ""),
               fmt(e.get("slope_per_decade"), "+.3f"),
               f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "–", fmt(e.get("spearman"), ".3f")]
        if has_logistic:
            row.append(logistic_text(e.get("logistic")))
        nz, nzci, zero = num(e.get("slope_per_decade_nonzero")), pair(e.get("slope_nonzero_ci")), e.get("zero_count")
        row.append(fmt(nz, "+.3f") + (f" [{nzci[0]:+.3f}, {nzci[1]:+.3f}]" if nzci else ""))
        row.append(f"{fmt_pct(zero.get('accuracy'))} (n = {fmt_int(zero.get('n'))})"
                   if isinstance(zero, Mapping) and zero.get("n") else "–")
        rows.append(row)
    head = ["setting", "questions", "accuracy [95% interval]", "slope per decade", "95% interval", "Spearman"]
    table = html_table(head + (["logistic fit"] if has_logistic else [])
                   + ["slope on count ≥ 1 (log10 count) [95%]", "accuracy at count 0"], rows)
    reduction = num(run.summary.get("count_dependence_reduction"))
    text = ""
    if reduction is not None:
        ci = pair(run.summary.get("count_dependence_reduction_ci"))
        text = (f"<p>Count-dependence reduction (1 - slope<sub>RAG</sub> / slope<sub>closed-book</sub>): "
                f"<b>{reduction:.1%}</b>" + (f" (95% interval {ci[0]:.1%} to {ci[1]:.1%})" if ci else "")
                + ".")
        oracle = num(run.summary.get("count_dependence_reduction_oracle"))
        if oracle is not None:
            oci = pair(run.summary.get("count_dependence_reduction_oracle_ci"))
            text += (f" With the oracle passage instead of retrieval: <b>{oracle:.1%}</b>"
                     + (f" (95% interval {oci[0]:.1%} to {oci[1]:.1%})" if oci else "") + ".")
        text += "</p>"
    text += _count_dependence_text(run.summary)
    return img + table + text


def _count_dependence_text(summary: Mapping[str, Any]) -> str:
    """The sound count-dependence statistic (issue 16): difference of slopes with a paired
    bootstrap interval; the ratio only where the closed-book slope's interval excludes 0."""
    parts = []
    for key, label in (("count_dependence", "retrieval"), ("count_dependence_oracle", "the oracle passage")):
        cd = summary.get(key)
        diff = num(cd.get("slope_difference")) if isinstance(cd, Mapping) else None
        if diff is None:
            continue
        ci = pair(cd.get("slope_difference_ci"))
        text = (f"<p>Slope difference, closed-book minus {html.escape(label)}: <b>{diff:+.3f}</b> per tenfold "
                f"increase" + (f" (paired bootstrap 95% interval {ci[0]:+.3f} to {ci[1]:+.3f})" if ci else "") + ". ")
        reduction = num(cd.get("reduction"))
        if reduction is not None:
            rci = pair(cd.get("reduction_ci"))
            text += (f"Reduction 1 - slope<sub>{html.escape(label)}</sub> / slope<sub>closed-book</sub>: "
                     f"<b>{reduction:.1%}</b>" + (f" (95% interval {rci[0]:.1%} to {rci[1]:.1%})" if rci else "") + ". ")
        else:
            text += f"No reduction ratio: {html.escape(str(cd.get('note') or 'undefined'))}. "
        nonzero, zero = cd.get("nonzero") or {}, cd.get("zero_count") or {}
        if num(nonzero.get("slope_difference")) is not None:
            nci = pair(nonzero.get("slope_difference_ci"))
            text += (f"On questions with at least one relevant document (n = {fmt_int(nonzero.get('n'))}, "
                     f"slope on log10(count)): {nonzero['slope_difference']:+.3f}"
                     + (f" ({nci[0]:+.3f} to {nci[1]:+.3f})" if nci else "") + "; ")
        if zero.get("n"):
            text += (f"at count 0 (n = {fmt_int(zero.get('n'))}) accuracy is {fmt_pct(zero.get('accuracy_closed_book'))} "
                     f"closed-book and {fmt_pct(zero.get('accuracy_rag'))} with {html.escape(label)}.")
        parts.append(text + "</p>")
    return "".join(parts)


def _section_retrieval(run: Run, plots_dir: Path) -> str | None:
    from probe.report._plots import plot_recall_at_k

    retrieval = run.summary.get("retrieval")
    adaptive = run.summary.get("adaptive_retrieval")
    if not isinstance(retrieval, Mapping) and adaptive is None:
        return None
    parts = []
    retrieval = retrieval if isinstance(retrieval, Mapping) else {}
    recall = run.recall_at_k()
    if not recall.empty:
        by_bucket = recall.dropna(subset=["lo", "recall"])
        if not by_bucket.empty:
            parts.append(html_figure(plot_recall_at_k(by_bucket), plots_dir, "recall_at_k",
                                 "Share of questions with an answer alias in the top k retrieved passages, "
                                 "per count bucket (the original study's figure 8)."))
        ks = list(dict.fromkeys(recall["k"]))
        rows = []
        for (_lo, label), part in recall.dropna(subset=["lo"]).groupby(["lo", "label"], sort=True):
            n = part["n"].iloc[0]
            rows.append([label, fmt_int(n)] + [fmt(part.loc[part["k"] == k, "recall"].iloc[0], ".2f")
                                                if (part["k"] == k).any() else "–" for k in ks])
        rows.append(["all questions", ""] + [fmt(recall.loc[recall["k"] == k, "overall"].iloc[0], ".2f")
                                             for k in ks])
        parts.append(html_table(["relevant documents", "questions"] + [f"recall@{k}" for k in ks], rows))
    parts.append(_precision_html(retrieval.get("precision"), plots_dir))
    rest = {k: v for k, v in retrieval.items() if k not in ("recall_at_k", "precision") and v is not None}
    if rest:
        parts.append(kv_table(rest))
    if adaptive is not None:
        parts.append("<h3>Adaptive retrieval</h3><p>Retrieve only for questions whose count is below a "
                     "threshold chosen on one split of the questions (PopQA's policy); accuracy on the other "
                     "split against always and never retrieving.</p>" + _adaptive_html(adaptive))
    return "\n".join(p for p in parts if p) or None


def _precision_html(precision: Any, plots_dir: Path) -> str:
    """Retrieval precision: a number, or `ltprobe rag`'s record of shares of the top-k passages."""
    from probe.report._plots import plot_precision

    note = (" Low precision means the passages in the prompt are often about something else, so wrong "
            "answers with retrieval can be copies of the wrong fact rather than missing knowledge.")
    if precision is None:
        return ""
    if num(precision) is not None:
        return f"<p>Retrieval precision: <b>{num(precision):.2f}</b>.{note}</p>"
    if not isinstance(precision, Mapping):
        return kv_table({"precision": precision})
    parts, known = [], set()
    k = precision.get("k")
    of = f"top-{k}" if k is not None else "retrieved"
    sentences = []
    if num(precision.get("answer")) is not None:
        sentences.append(f"{precision['answer']:.1%} of the {of} passages contain an answer alias")
        known.add("answer")
    if num(precision.get("answer_and_question_entity")) is not None:
        sentences.append(f"{precision['answer_and_question_entity']:.1%} contain an answer alias and the "
                         f"question's entity")
        known.add("answer_and_question_entity")
    if num(precision.get("questions_without_answer_passage")) is not None:
        sentences.append(f"{precision['questions_without_answer_passage']:.1%} of the questions get no "
                         f"passage with the answer")
        known.add("questions_without_answer_passage")
    known |= {"k", "passages"}
    if num(precision.get("overall")) is not None:
        parts.append(f"<p>Retrieval precision: <b>{precision['overall']:.2f}</b> overall.</p>")
        known.add("overall")
    if sentences:
        text = "; ".join(sentences)
        parts.append(f"<p>Retrieval precision: {html.escape(text)}.{note}</p>")
    frame = buckets_frame(precision.get("buckets") or [], value="precision")
    if not frame.empty and frame["precision"].notna().any():
        parts.append(html_figure(plot_precision(frame), plots_dir, "retrieval_precision",
                             "Retrieval precision per count bucket."))
        known.add("buckets")
    rest = {key: v for key, v in precision.items() if key not in known and v is not None}
    if rest:
        parts.append(kv_table(rest))
    return "".join(parts)


def _adaptive_html(adaptive: Any) -> str:
    if not isinstance(adaptive, Mapping):
        return kv_table({"adaptive_retrieval": adaptive})
    rows = []
    for policy, what in (("adaptive", "retrieve below the threshold"), ("always", "always retrieve"),
                         ("never", "never retrieve (closed-book)")):
        entry = adaptive.get(policy)
        acc = num(entry.get("accuracy")) if isinstance(entry, Mapping) else num(entry)
        if acc is None:
            continue
        ci = pair(entry.get("ci")) if isinstance(entry, Mapping) else None
        rows.append([policy, what, fmt_pct(acc), f"[{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "–"])
    if isinstance(adaptive.get("accuracy"), Mapping):  # {"accuracy": {"adaptive": x, ...}}
        rows += [[k, "", fmt_pct(v), "–"] for k, v in adaptive["accuracy"].items() if num(v) is not None]
    out = html_table(["policy", "", "accuracy", "95% interval"], rows) if rows else ""
    facts = []
    if "threshold" in adaptive:
        t = adaptive["threshold"]
        facts.append("threshold: retrieve when count < " + (fmt_int(t) if num(t) is not None else
                                                           "∞ (always)" if "thresholds" not in adaptive or
                                                           not adaptive.get("thresholds") else "per relation"))
    if num(adaptive.get("retrieved_share")) is not None:
        facts.append(f"share of questions that retrieved: {adaptive['retrieved_share']:.1%}")
    if num(adaptive.get("n_fit")) is not None:
        facts.append(f"questions to choose the threshold: {int(adaptive['n_fit']):,}, to report: "
                     f"{fmt_int(adaptive.get('n_report'))}")
    if facts:
        out += "<p>" + html.escape("; ".join(facts)) + ".</p>"
    if isinstance(adaptive.get("thresholds"), Mapping) and adaptive["thresholds"]:
        out += html_table(["relation", "retrieve when count <"],
                      [[k, fmt_int(v) if num(v) is not None else "∞"] for k, v in adaptive["thresholds"].items()])
    return out


def _scaling_points(scaling: Mapping[str, Any]) -> pd.DataFrame:
    models = scaling.get("models", scaling.get("points"))
    if isinstance(models, Mapping):
        models = [dict(v, model=k) for k, v in models.items() if isinstance(v, Mapping)]
    rows = []
    for m in models or []:
        if not isinstance(m, Mapping):
            continue
        params = first_num(m, ("params", "n_params", "parameters", "size"))
        acc = first_num(m, ("low_count_accuracy", "accuracy_low_count", "low_accuracy", "accuracy"))
        if params is not None and acc is not None and params > 0:
            ci = pair(m.get("ci")) or (math.nan, math.nan)
            rows.append({"model": m.get("model", m.get("name", "")), "params": params, "accuracy": acc,
                         "n": m.get("n"), "ci_low": ci[0], "ci_high": ci[1]})
    return pd.DataFrame(rows, columns=["model", "params", "accuracy", "n", "ci_low", "ci_high"])


def _section_scaling(run: Run, plots_dir: Path) -> str | None:
    from probe.report._plots import plot_scaling

    scaling = run.summary.get("scaling")
    if scaling is None:
        return None
    if not isinstance(scaling, Mapping):
        return kv_table({"scaling": scaling})
    points = _scaling_points(scaling)
    fit = scaling.get("fit") if isinstance(scaling.get("fit"), Mapping) else \
        {k: scaling.get(k) for k in ("slope", "intercept", "r2")}
    target = first_num(scaling, ("target_accuracy", "target"))
    extrapolated = first_num(scaling, ("parameters_for_target", "extrapolated_params", "params_needed"))
    max_count = num(scaling.get("max_count"))
    low = f"questions with fewer than {int(max_count):,} relevant documents" if max_count else "low-count questions"
    parts = []
    if len(points) >= 1:
        parts.append(html_figure(plot_scaling(points, fit, target, extrapolated), plots_dir, "scaling",
                             f"Accuracy on {low} against model size, with the linear fit on "
                             "log10(parameters) extrapolated to the target accuracy."))
        parts.append(html_table(["model", "parameters", "questions", "low-count accuracy", "95% interval"],
                            [[str(r.model), f"{r.params:.3g}", fmt_int(r.n), fmt_pct(r.accuracy),
                              f"[{r.ci_low:.1%}, {r.ci_high:.1%}]" if num(r.ci_low) is not None else "–"]
                             for r in points.itertuples()]))
    if len(points) < 2:
        parts.append("<p class='note'>The extrapolation needs at least two model sizes.</p>")
    if extrapolated is not None:
        parts.append(f"<p>Extrapolating the fit, a model of about <b>{extrapolated:.2g}</b> parameters would "
                     f"reach" + (f" {target:.0%}" if target is not None else " the target") +
                     f" accuracy on {low} (the original study found about 10<sup>18</sup> for "
                     "BLOOM on TriviaQA).</p>")
    slope, intercept, r2 = (num(fit.get(k)) for k in ("slope", "intercept", "r2"))
    if slope is not None and intercept is not None:
        parts.append(f"<p>Fit: accuracy = {intercept:.3f} + {slope:.3f} × log10(parameters)"
                     + (f", R² = {r2:.2f}" if r2 is not None else "")
                     + (f" over {len(points)} models" if len(points) else "")
                     + (f" ({html.escape(str(scaling['setting']))})" if scaling.get("setting") else "") + ".</p>")
    known = {"models", "points", "fit", "slope", "intercept", "r2", "target_accuracy", "target", "max_count",
             "setting", "parameters_for_target", "extrapolated_params", "params_needed"}
    rest = {k: v for k, v in scaling.items() if k not in known and v is not None}
    if rest:
        parts.append(kv_table(rest))
    return "\n".join(parts)


def _section_truth(run: Run, plots_dir: Path) -> str | None:
    truth = run.summary.get("truth_agreement")
    has_world = run.truth is not None and not run.truth.empty and not run.counts.empty
    if truth is None and not has_world:
        return None
    parts = []
    if truth is not None and not isinstance(truth, Mapping):
        parts.append(kv_table({"truth_agreement": truth}))
        truth = {}
    truth = truth or {}
    share = first_num(truth, ("share", "share_equal", "agreement", "equal_share"))
    n = first_num(truth, ("n", "n_questions"))
    if has_world:
        merged = run.counts.merge(run.truth, on="id", how="inner")
        if share is None and len(merged):
            share, n = _count_equal(merged).mean(), len(merged)
    if share is not None:
        parts.append(f"<p>The toolkit's counts equal the world's true counts (from the gold links, which "
                     f"the pipeline never sees) for <b>{share:.1%}</b> of the QA pairs"
                     + (f" (n = {int(n):,})" if n is not None else "") + ".</p>")
    if has_world and len(merged):
        parts.append(_truth_breakdown(run, merged))
    for key, value in truth.items():
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value) and not has_world:
            parts.append(f"<h3>{html.escape(key.replace('_', ' '))}</h3>" + records_table(value))
    rest = {k: v for k, v in truth.items() if k not in ("share", "share_equal", "n", "equal")
            and not (isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v))}
    if rest:
        parts.append(kv_table(rest))
    return "\n".join(parts)


def _count_equal(merged: pd.DataFrame) -> pd.Series:
    return (merged["count"] == merged["true_count"]) & merged["count"].notna()


def _truth_breakdown(run: Run, merged: pd.DataFrame) -> str:
    """Where (true-count bucket) and why (direction of the error) counts differ from the truth."""
    equal = _count_equal(merged)
    status = merged["status"] if "status" in merged else pd.Series("ok", index=merged.index)
    unlinked = merged["count"].isna() | (status != "ok")
    above = ~unlinked & (merged["count"] > merged["true_count"])
    below = ~unlinked & (merged["count"] < merged["true_count"])
    why = [["equal", f"{int(equal.sum()):,}", f"{equal.mean():.1%}", "the linker found exactly the gold mentions"],
           ["higher than true", f"{int(above.sum()):,}", f"{above.mean():.1%}",
            "extra documents: a mention linked to the wrong entity (e.g. a shared name) or an alias of "
            "another entity"],
           ["lower than true", f"{int(below.sum()):,}", f"{below.mean():.1%}",
            "missed documents: a mention the linker did not find or resolved to another entity"],
           ["no count", f"{int(unlinked.sum()):,}", f"{unlinked.mean():.1%}",
            "the question or answer entity was not linked at all (status no_q_entity / no_a_entity)"]]
    out = ["<h3>Why they differ</h3>", html_table(["counts", "QA pairs", "share", "what it means"], why)]
    from probe.analysis import bucket_of

    labels = [bucket_label(*bucket_of(c)) if bucket_of(c) else "?" for c in merged["true_count"]]
    lows = [bucket_of(c)[0] if bucket_of(c) else -1 for c in merged["true_count"]]
    where = (pd.DataFrame({"lo": lows, "label": labels, "equal": equal, "above": above, "below": below,
                           "unlinked": unlinked})
             .groupby(["lo", "label"]).agg(n=("equal", "size"), equal=("equal", "mean"), above=("above", "sum"),
                                            below=("below", "sum"), unlinked=("unlinked", "sum")))
    out.append("<h3>Where: by true count</h3>" + html_table(
        ["true relevant documents", "QA pairs", "equal", "higher", "lower", "no count"],
        [[label, f"{int(r.n):,}", f"{r.equal:.1%}", int(r.above), int(r.below), int(r.unlinked)]
         for (lo, label), r in where.iterrows()]))
    differ = merged[~equal]
    if len(differ):
        questions = run.questions.set_index("id")["question"] if "question" in run.questions else pd.Series(dtype=str)
        rows = [[r.id, short(questions.get(r.id, ""), 90), fmt_int(r.count), fmt_int(r.true_count),
                 cell(getattr(r, "status", ""))] for r in differ.head(15).itertuples()]
        out.append(f"<h3>Examples ({len(differ):,} differ{'; first 15' if len(differ) > 15 else ''})</h3>"
                   + html_table(["id", "question", "count", "true count", "status"], rows))
    return "".join(out)


def _section_counterfactual(run: Run, plots_dir: Path) -> str | None:
    from probe.report._plots import plot_counterfactual

    cf = run.counterfactual
    if not cf:
        return None
    parts = [html_figure(plot_counterfactual(cf), plots_dir, "counterfactual",
                     "Accuracy of the original model and of a model retrained with the relevant documents "
                     "of the sampled questions removed (left); the drop with its 95% interval (right).")]
    parts.append("<p>If the count causes the knowledge, removing a question's relevant documents should "
                 "lower accuracy on it, more so the more documents there were; the control questions kept "
                 "their documents, so their drop should be near zero.</p>")
    rows = []
    for b in cf.get("buckets") or []:
        ci = pair(b.get("drop_ci"))
        rows.append([bucket_label(b["lo"], b["hi"]), fmt_int(b.get("n")), fmt_int(b.get("docs_removed")),
                     fmt_pct(b.get("before")), fmt_pct(b.get("after")), fmt(b.get("drop"), "+.2f"),
                     f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "–"])
    control = cf.get("control")
    if isinstance(control, Mapping):
        ci = pair(control.get("drop_ci"))
        rows.append(["control (kept)", fmt_int(control.get("n")), "0", fmt_pct(control.get("before")),
                     fmt_pct(control.get("after")), fmt(control.get("drop"), "+.2f"),
                     f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "–"])
    parts.append(html_table(["original count", "questions", "documents removed", "before", "after", "drop",
                         "95% interval"], rows))
    rest = {k: v for k, v in cf.items() if k not in ("buckets", "control") and v is not None}
    if rest:
        parts.append(kv_table(rest))
    return "\n".join(parts)


def _section_link(gen: Run | None, plots_dir: Path) -> str | None:
    from probe.report._plots import plot_link

    if gen is None:
        return None
    parts = []
    st = gen.statements
    rule_col = next((c for c in ("rule", "rule_id", "rule_name") if st is not None and c in st), None)
    if st is not None and not st.empty and rule_col and "beam" in st and "loglik" in st:
        parts.append(html_figure(plot_link(st, rule_col), plots_dir, "link_head_tail",
                             "Head and tail beams per rule: mean token log-likelihood under the oracle model"
                             " (and corpus counts when an index was given)."))
        rows = []
        for rule, part in st.groupby(st[rule_col].astype(str), sort=False):
            head, tail = part[part["beam"] == "head"], part[part["beam"] == "tail"]
            hl = pd.to_numeric(head["loglik"], errors="coerce").mean()
            tl = pd.to_numeric(tail["loglik"], errors="coerce").mean()
            row = [rule, str(len(head)), str(len(tail)), fmt(hl, ".2f"), fmt(tl, ".2f"), fmt(hl - tl, "+.2f")]
            if "count" in st:
                row += [fmt(pd.to_numeric(head["count"], errors="coerce").median(), ".3g"),
                        fmt(pd.to_numeric(tail["count"], errors="coerce").median(), ".3g")]
            rows.append(row)
        head_cols = ["rule", "head n", "tail n", "head log-lik", "tail log-lik", "gap (head - tail)"]
        if "count" in st:
            head_cols += ["head median count", "tail median count"]
        parts.append(html_table(head_cols, rows))
        parts.append("<p>A positive gap means the tail beam found statements the oracle model finds less "
                     "likely: LINK reported 0.48 for its own search against -0.14 for direct prompting of "
                     "ChatGPT.</p>")
        text_col = next((c for c in ("statement", "succinct", "text") if c in st), None)
        if text_col:
            sample = st.groupby("beam", sort=False).head(3)
            parts.append("<h3>Examples</h3>" + html_table(
                ["rule", "beam", "statement", "log-lik"],
                [[str(r[rule_col]), str(r["beam"]), short(r[text_col]), fmt(r["loglik"], ".2f")]
                 for _, r in sample.iterrows()]))
    if gen.generation_summary:
        parts.append(_generation_summary_html(gen.generation_summary))
    return "\n".join(parts) or None


def _generation_summary_html(gs: Mapping[str, Any]) -> str:
    """`generation_summary.json` of `ltprobe generate`: per-rule gaps, probing head vs tail, warnings."""
    parts = []
    facts = []
    if num(gs.get("mean_loglik_gap")) is not None:
        facts.append(f"mean head - tail log-likelihood gap over rules: {gs['mean_loglik_gap']:+.2f}")
    if gs.get("reranker"):
        facts.append(f"reranker: {gs['reranker']}")
    if num(gs.get("n_statements")) is not None:
        facts.append(f"statements: {int(gs['n_statements']):,}")
    if isinstance(gs.get("models"), Mapping):
        facts.append("models: " + ", ".join(f"{k} {v}" for k, v in gs["models"].items() if v))
    if facts:
        parts.append("<p>" + html.escape("; ".join(facts)) + ".</p>")
    for warning in gs.get("warnings") or []:
        parts.append(f"<p class='note'>{html.escape(str(warning))}</p>")
    rules = gs.get("rules")
    if isinstance(rules, Mapping) and rules:
        rows = []
        for rule, r in rules.items():
            if not isinstance(r, Mapping):
                continue
            ll = r.get("loglik") if isinstance(r.get("loglik"), Mapping) else {}
            cnt = r.get("count") if isinstance(r.get("count"), Mapping) else {}
            probing = r.get("probing") if isinstance(r.get("probing"), Mapping) else {}
            n = r.get("n") if isinstance(r.get("n"), Mapping) else {}

            def mean(block: Mapping[str, Any], beam: str, key: str = "mean") -> Any:
                entry = block.get(beam)
                return entry.get(key) if isinstance(entry, Mapping) else None

            rows.append([str(rule), str(r.get("status", "")), f"{fmt_int(n.get('head'))} / {fmt_int(n.get('tail'))}",
                         fmt(mean(ll, "head"), ".2f"), fmt(mean(ll, "tail"), ".2f"), fmt(ll.get("gap"), "+.2f"),
                         _interval_text(pair(ll.get("gap_ci")), "+.2f"),
                         fmt(cnt.get("gap_log10"), "+.2f"),
                         fmt_pct(mean(probing, "head", "accuracy")), fmt_pct(mean(probing, "tail", "accuracy"))])
        parts.append("<h3>Per rule (generation_summary.json)</h3>" + html_table(
            ["rule", "status", "head / tail", "head log-lik", "tail log-lik", "gap", "gap 95% interval",
             "count gap (log10)",
             "probing head", "probing tail"], rows))
    probing = gs.get("probing")
    if isinstance(probing, Mapping):
        rows = []
        for name, block in [("all templates", probing), *((f"template {k}", v) for k, v in
                                                          (probing.get("by_template") or {}).items()),
                            *((k, v) for k, v in (probing.get("by_polarity") or {}).items())]:
            if isinstance(block, Mapping):
                head, tail = block.get("head") or {}, block.get("tail") or {}
                h, t = num(head.get("accuracy")), num(tail.get("accuracy"))
                rows.append([name, fmt_pct(h), fmt_pct(t), fmt(h - t, "+.2f") if h is not None and t is not None
                             else "–", f"{fmt_int(head.get('n'))} / {fmt_int(tail.get('n'))}"])
        parts.append("<h3>Probing: does the model judge the statements correctly?</h3><p>Each statement asked "
                     "in several templates (yes/no, true/false, entails/contradicts, with negated variants). "
                     "LINK found accuracy about 3 points lower on the tail.</p>"
                     + html_table(["", "head accuracy", "tail accuracy", "gap", "questions head / tail"], rows))
    if isinstance(gs.get("config"), Mapping):
        parts.append("<details><summary>Search configuration</summary><pre>"
                     + html.escape(json.dumps(gs["config"], indent=2, default=str)) + "</pre></details>")
    return "\n".join(parts)


def _interval_text(ci: tuple[float, float] | None, spec: str) -> str:
    """`[lo, hi]`, with "excludes 0" when the whole interval is on one side of zero; "–" without one."""
    if ci is None:
        return "–"
    text = f"[{ci[0]:{spec}}, {ci[1]:{spec}}]"
    return text + (" excludes 0" if ci[0] > 0 or ci[1] < 0 else "")


def _section_other(run: Run, plots_dir: Path) -> str | None:
    rest = {k: v for k, v in run.summary.items() if k not in _RENDERED_KEYS}
    return kv_table(rest) if rest else None


def _section_manifest(run: Run, plots_dir: Path) -> str | None:
    m = run.manifest
    if not m:
        return "<p class='note'>No manifest.json in this run folder.</p>"
    parts = []
    simple = {k: v for k, v in m.items() if k != "config"}
    if simple:
        parts.append(kv_table(simple))
    if "config" in m:
        parts.append("<h3>Configuration</h3><pre>" + html.escape(json.dumps(m["config"], indent=2, default=str))
                     + "</pre>")
    return "\n".join(parts)


# ---- comparing runs -----------------------------------------------------------------------------

def compare_table(runs: Sequence[Run], labels: Sequence[str]) -> pd.DataFrame:
    """One row per run: model, index, questions, accuracy / slope / interval / Spearman per setting,
    the reduction and recall@k overall."""
    settings = sorted({s for r in runs for s in (r.summary.get("settings") or {})}, key=setting_order)
    recalls = [r.recall_at_k() for r in runs]
    ks: list[str] = []
    for frame in recalls:
        ks += [str(k) for k in dict.fromkeys(frame["k"]) if str(k) not in ks]
    rows = []
    for run, label, recall in zip(runs, labels, recalls):
        s = run.summary
        row: dict[str, Any] = {"run": label, "path": str(run.path), "model": run.model,
                               "index": s.get("index"), "n_questions": s.get("n_questions")}
        for name in settings:
            e = (s.get("settings") or {}).get(name) or {}
            ci = pair(e.get("slope_ci")) or (None, None)
            row.update({f"{name}_accuracy": num(e.get("accuracy")),
                        f"{name}_slope": num(e.get("slope_per_decade")),
                        f"{name}_slope_ci_low": ci[0], f"{name}_slope_ci_high": ci[1],
                        f"{name}_spearman": num(e.get("spearman"))})
        rci = pair(s.get("count_dependence_reduction_ci")) or (None, None)
        row.update({"count_dependence_reduction": num(s.get("count_dependence_reduction")),
                    "reduction_ci_low": rci[0], "reduction_ci_high": rci[1]})
        for k in ks:
            values = recall.loc[recall["k"].astype(str) == k, "overall"]
            row[f"recall_at_{k}"] = num(values.iloc[0]) if len(values) else None
        rows.append(row)
    return pd.DataFrame(rows)


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, *, labels: Sequence[str] | None = None,
                 on_error: OnError = "fail") -> Path:
    """Put several runs side by side: `OUT/compare.html` (one accuracy figure per setting with a
    line per run, the table, each run's headline), `OUT/compare.csv`, `OUT/compare.md` and
    `OUT/plots/compare_*.png|svg`. Returns the HTML's path."""
    from probe.report._plots import plot_accuracy_vs_count, plot_slopes_compare

    if len(run_dirs) < 1:
        raise InputError("compare: give at least one run folder")
    runs = [load_run(d, on_error=on_error) for d in run_dirs]
    for run in runs:
        if run.skipped.skipped:
            logger.warning(f"compare: {run.path}: {run.skipped.summary()}")
    if labels is not None and len(labels) != len(runs):
        raise InputError(f"compare: {len(labels)} label(s) for {len(runs)} run(s); give one per run")
    labels = list(labels) if labels is not None else _unique_labels([r.path for r in runs])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots_dir = out_dir / "plots"
    table = compare_table(runs, labels)
    _write_csv(table, out_dir / "compare.csv")
    settings = sorted({s for r in runs for s in (r.summary.get("settings") or {})}, key=setting_order)
    readable = _readable_compare(table, settings)
    with atomic_write(out_dir / "compare.md") as handle:
        handle.write(markdown_table(readable))

    body = ["<section><h2>Runs</h2>" + html_table(list(readable.columns), readable.itertuples(index=False))
            + "<p class='meta'>All figures with full precision: compare.csv.</p></section>"]
    for setting in settings:
        series = {label: run.buckets(setting) for run, label in zip(runs, labels)}
        series = {k: v for k, v in series.items() if not v.empty}
        if not series:
            continue
        fig = plot_accuracy_vs_count(series, hist=series, title=f"{SETTING_NAMES.get(setting, setting)}: "
                                     "accuracy against relevant-document count", names={k: k for k in series})
        body.append(f"<section><h2>{html.escape(SETTING_NAMES.get(setting, setting))}</h2>"
                    + html_figure(fig, plots_dir, f"compare_{setting}", "One line per run; questions per "
                              "bucket of each run underneath.") + "</section>")
    entries = {label: {k: v for k, v in (run.summary.get("settings") or {}).items() if isinstance(v, Mapping)}
               for run, label in zip(runs, labels)}
    if any(num(e.get("slope_per_decade")) is not None for es in entries.values() for e in es.values()):
        body.append("<section><h2>Count dependence</h2>" + html_figure(
            plot_slopes_compare(entries), plots_dir, "compare_slopes",
            "Slope of accuracy per tenfold increase of the count, with 95% intervals, per run and setting.")
            + "</section>")
    findings = "".join(f"<h3>{html.escape(label)}</h3>{paragraphs(headline(run.summary))}"
                       for run, label in zip(runs, labels))
    body.append(f"<section><h2>Findings per run</h2>{findings}</section>")
    meta = {"runs": ", ".join(labels)}
    out = out_dir / "compare.html"
    with atomic_write(out) as handle:
        handle.write(html_page("ltprobe comparison", meta, "\n".join(body)))
    return out


def _readable_compare(table: pd.DataFrame, settings: Sequence[str]) -> pd.DataFrame:
    """The comparison table with intervals folded into one cell, for HTML and markdown."""
    out = pd.DataFrame({"run": table["run"], "model": table["model"].map(cell),
                        "index": table["index"].map(cell), "questions": table["n_questions"].map(fmt_int)})
    for name in settings:
        short = SETTING_NAMES.get(name, name)
        if f"{name}_accuracy" not in table:
            continue
        out[f"{short} accuracy"] = table[f"{name}_accuracy"].map(fmt_pct)
        out[f"{short} slope [95% CI]"] = [
            fmt(sl, "+.3f") + (f" [{lo:+.3f}, {hi:+.3f}]" if num(lo) is not None and num(hi) is not None else "")
            for sl, lo, hi in zip(table[f"{name}_slope"], table[f"{name}_slope_ci_low"],
                                  table[f"{name}_slope_ci_high"])]
    out["reduction [95% CI]"] = [
        fmt_pct(r) + (f" [{lo:.0%}, {hi:.0%}]" if num(lo) is not None and num(hi) is not None else "")
        for r, lo, hi in zip(table["count_dependence_reduction"], table["reduction_ci_low"],
                             table["reduction_ci_high"])]
    for col in table.columns:
        if col.startswith("recall_at_"):
            out[col.replace("recall_at_", "recall@")] = table[col].map(lambda v: fmt(v, ".2f"))
    return out


def _unique_labels(paths: Sequence[Path]) -> list[str]:
    """Folder names, lengthened with parent folders until they differ."""
    resolved = [p.resolve() for p in paths]
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) for p in resolved]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in resolved):
            break
        depth += 1
    if len(set(labels)) < len(labels):  # the same folder twice
        labels = [f"{label} ({i + 1})" for i, label in enumerate(labels)]
    return labels


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table of a frame (numbers to 3 significant digits)."""
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(frame.columns)
        for row in frame.itertuples(index=False):
            writer.writerow(["" if missing(v) else v for v in row])


