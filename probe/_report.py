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
import datetime as _dt
import html
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from entity_linking.io import InputError, OnError, atomic_write
from probe._load import SETTINGS_ORDER, Run, bucket_label, buckets_frame, load_run
from probe._plots import SETTING_NAMES, _num, _pair

# summary.json keys the report renders in a section of their own; others land in "Other figures".
_RENDERED_KEYS = {"model", "index", "n_questions", "settings", "count_dependence_reduction",
                  "count_dependence_reduction_ci", "count_dependence_reduction_oracle",
                  "count_dependence_reduction_oracle_ci", "retrieval", "adaptive_retrieval", "scaling",
                  "truth_agreement", "n_unlinked", "learning", "error_attribution"}


# ---- the headline -----------------------------------------------------------------------------

def headline(summary: Mapping[str, Any]) -> list[str]:
    """The run's finding in plain sentences, generated from `summary.json`."""
    settings = summary.get("settings") or {}
    sentences: list[str] = []
    cb, rag = settings.get("closed_book"), settings.get("rag")
    first_label = None
    if isinstance(cb, Mapping):
        sentence, first_label, first_acc = _trend_sentence("Closed-book accuracy", cb)
        if sentence:
            sentences.append(sentence)
    if isinstance(rag, Mapping) and _num(rag.get("accuracy")) in (0.0, 1.0):
        sentence, _, _ = _trend_sentence("Accuracy with retrieval augmentation", rag)
        sentences.append(sentence)
    elif isinstance(rag, Mapping):
        slope, ci = _num(rag.get("slope_per_decade")), _pair(rag.get("slope_ci"))
        frame = _usable_buckets(rag)
        parts = []
        if first_label is not None and not frame.empty:
            match = frame[frame["label"] == first_label]
            if not match.empty:
                parts.append(f"accuracy on questions with {_docs(first_label)} is "
                             f"{match['accuracy'].iloc[0]:.0%} (closed-book: {first_acc:.0%})")
        if slope is not None:
            parts.append(f"the slope is {slope:+.3f} per tenfold increase{_ci_text(ci, '+.3f')}")
        if parts:
            sentences.append("With retrieval augmentation, " + " and ".join(parts) + ".")
    reduction = _num(summary.get("count_dependence_reduction"))
    if reduction is not None:
        ci = _pair(summary.get("count_dependence_reduction_ci"))
        if reduction > 0:
            text = f"Retrieval reduces the dependence of accuracy on the count by {reduction:.0%}"
            text += _ci_text(ci, ".0%")
            if ci and ci[0] <= 0:
                text += "; the interval includes no reduction, so this run does not establish it"
        else:
            text = (f"Retrieval does not reduce the dependence of accuracy on the count in this run "
                    f"(reduction {reduction:.0%}{_ci_text(ci, '.0%', bare=True)})")
        sentences.append(text + ".")
    oracle = settings.get("oracle")
    if isinstance(oracle, Mapping) and _num(oracle.get("accuracy")) is not None:
        slope = _num(oracle.get("slope_per_decade"))
        sentences.append(f"Given a passage known to state the answer (oracle), accuracy is "
                         f"{oracle['accuracy']:.0%}" + (f" with a slope of {slope:+.3f}" if slope is not None else "")
                         + ".")
    for name, entry in settings.items():
        if name not in ("closed_book", "rag", "oracle") and isinstance(entry, Mapping):
            sentence, _, _ = _trend_sentence(f"Accuracy ({name})", entry)
            if sentence:
                sentences.append(sentence)
    unlinked = _num(summary.get("n_unlinked"))
    if unlinked:
        sentences.append(f"{int(unlinked)} question(s) had no linked entity on one side and are not in "
                         f"the buckets (reported separately, not counted as 0).")
    if not sentences:
        sentences.append("This run has no accuracy results yet (summary.json has no settings).")
    return sentences


def setup_sentence(manifest: Mapping[str, Any], summary: Mapping[str, Any]) -> str | None:
    """What was run, in one sentence, from the manifest's config (None when there is none)."""
    config = manifest.get("config") if isinstance(manifest.get("config"), Mapping) else None
    if not config:
        return None
    parts = []
    world = config.get("world")
    data = config.get("data") if isinstance(config.get("data"), Mapping) else {}
    if isinstance(world, Mapping):
        people = world.get("people")
        parts.append("a generated controlled world" + (f" of {people:,} people" if isinstance(people, int) else "")
                     + (f" (seed {world['seed']})" if world.get("seed") is not None else ""))
    elif data.get("qa"):
        parts.append(f"questions from {data['qa']}"
                     + (f" and the corpus {data['corpus']}" if data.get("corpus") else ""))
    model = config.get("model") if isinstance(config.get("model"), Mapping) else {}
    train = model.get("train")
    if isinstance(train, Mapping):
        size = ", ".join(text for text in (
            f"hidden size {train['hidden_size']}" if train.get("hidden_size") else "",
            f"{train['layers']} layers" if train.get("layers") else "") if text)
        parts.append("a model trained on its corpus" + (f" for {train['steps']:,} steps" if isinstance(
            train.get("steps"), int) else "") + (f" ({size})" if size else ""))
    elif isinstance(model.get("path"), list) and len(model["path"]) > 1:
        parts.append(f"the models {', '.join(map(str, model['path']))}")
    elif model.get("path") or summary.get("model"):
        path = model.get("path")
        parts.append(f"the model {(path[0] if isinstance(path, list) and path else path) or summary.get('model')}")
    ev = config.get("eval") if isinstance(config.get("eval"), Mapping) else {}
    rag = config.get("rag") if isinstance(config.get("rag"), Mapping) else {}
    if ev.get("settings"):
        settings = ", ".join(SETTING_NAMES.get(str(x), str(x)) for x in ev["settings"])
        text = f"evaluated {settings}"
        if ev.get("shots") is not None:
            text += f" with {ev['shots']}-shot closed-book prompts"
        if rag.get("k") is not None and "rag" in ev["settings"]:
            text += f" and the top {rag['k']} retrieved passage(s) for retrieval"
        if ev.get("scoring"):
            text += f", scored by {'exact match' if ev['scoring'] == 'em' else ev['scoring']}"
        parts.append(text)
    index = config.get("index") if isinstance(config.get("index"), Mapping) else {}
    if index.get("backend"):
        parts.append(f"counts from the {index['backend']} index")
    if not parts:
        return None
    return "Setup: " + "; ".join(parts) + "."


def _trend_sentence(subject: str, entry: Mapping[str, Any]) -> tuple[str | None, str | None, float]:
    slope, ci = _num(entry.get("slope_per_decade")), _pair(entry.get("slope_ci"))
    frame = _usable_buckets(entry)
    if slope is None and frame.empty:
        return None, None, math.nan
    accuracy = _num(entry.get("accuracy"))
    if accuracy in (0.0, 1.0):  # nothing varies, so nothing can depend on the count
        first = frame.iloc[0] if len(frame) else None
        return (f"{subject} is {accuracy:.0%} on every question, so this run cannot show whether it depends "
                f"on the number of relevant documents" + (" (the model answered none correctly: it may be too "
                                                          "small or too briefly trained)" if accuracy == 0 else "")
                + ".", first["label"] if first is not None else None,
                float(first["accuracy"]) if first is not None else math.nan)
    if ci is not None:
        verb = ("rises" if ci[0] > 0 else "falls" if ci[1] < 0
                else "shows no clear dependence (the slope's interval includes 0)")
    else:
        verb = "rises" if (slope or 0) > 0 else "falls" if (slope or 0) < 0 else "does not change"
    text = f"{subject} {verb} with the number of relevant pretraining documents"
    first_label, first_acc = None, math.nan
    if len(frame) >= 2:
        a, b = frame.iloc[0], frame.iloc[-1]
        first_label, first_acc = a["label"], float(a["accuracy"])
        text += (f": {a['accuracy']:.0%} on questions with {_docs(a['label'])} "
                 f"(n = {int(a['n'])}) against {b['accuracy']:.0%} with {_docs(b['label'])} (n = {int(b['n'])})")
    elif len(frame) == 1:
        first_label, first_acc = frame.iloc[0]["label"], float(frame.iloc[0]["accuracy"])
    if slope is not None:
        text += f"; slope {slope:+.3f} accuracy per tenfold increase{_ci_text(ci, '+.3f')}"
    return text + ".", first_label, first_acc


def _usable_buckets(entry: Mapping[str, Any]) -> pd.DataFrame:
    frame = buckets_frame(entry.get("buckets") or [], value="accuracy")
    frame = frame[frame["accuracy"].notna() & (frame["n"].fillna(0) > 0)]
    unflagged = frame[~frame["flagged"]]
    return (unflagged if len(unflagged) >= 2 else frame).reset_index(drop=True)


def _docs(label: str) -> str:
    return "no relevant documents" if label == "0" else f"{label} relevant documents"


def _ci_text(ci: tuple[float, float] | None, spec: str, bare: bool = False) -> str:
    if not ci:
        return ""
    inner = f"95% interval {ci[0]:{spec}} to {ci[1]:{spec}}"
    return f", {inner}" if bare else f" ({inner})"


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
        print(f"ltprobe report: {run.skipped.summary()}", file=sys.stderr)
        skipped = (f"<p class='note'>{run.skipped.skipped} bad record(s) in the run's files were skipped "
                   f"(--on-error skip); first: {html.escape(run.skipped.examples[0])}</p>")
    setup = setup_sentence(run.manifest, run.summary)
    setup_html = f"<p class='meta'>{html.escape(setup)}</p>" if setup else ""
    warnings = "".join(f"<p class='warning'><b>Warning:</b> {html.escape(str(w.get('message', w)))}</p>"
                       for w in run.summary.get("diagnostics") or [] if isinstance(w, Mapping))
    body = [f"<section><h2>Finding</h2>{warnings}{_paragraphs(headline(run.summary))}{setup_html}{skipped}"
            f"{_how_to_read()}</section>"]
    for title, render in sections:
        body.append(_guarded(title, render, run, plots_dir))
    meta = {"run": str(run.path), "model": run.model or "?", "index": run.summary.get("index", "?"),
            "questions": run.summary.get("n_questions", len(run.questions))}
    document = _page(f"ltprobe report: {run.name}", meta, "\n".join(b for b in body if b))
    with atomic_write(out) as handle:
        handle.write(document)
    return out


def _learning_section(name: str) -> Any:
    """A section of probe._report_learning (issue 19), imported when drawn."""
    def render(run: Run, plots_dir: Path) -> str | None:
        from probe import _report_learning

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
        print(f"ltprobe report: warning: section {title!r} could not be drawn ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        content = (f"<p class='note'>This section could not be drawn from the run's data "
                   f"({html.escape(type(exc).__name__)}: {html.escape(str(exc))}).</p>")
    if not content:
        return ""
    anchor = "".join(c if c.isalnum() else "-" for c in title.lower())
    return f"<section id='{anchor}'><h2>{html.escape(title)}</h2>\n{content}</section>"


def _section_accuracy(run: Run, plots_dir: Path) -> str | None:
    from probe._plots import plot_accuracy_vs_count

    settings = [s for s in run.settings if not run.buckets(s).empty]
    if not settings:
        return "<p class='note'>No accuracy buckets yet: the run has not reached the analysis.</p>"
    frames = {s: run.buckets(s) for s in settings}
    min_bucket = ((run.manifest.get("config") or {}).get("analysis") or {}).get("min_bucket")
    fits = {s: e.get("logistic") for s, e in (run.summary.get("settings") or {}).items()
            if isinstance(e, Mapping) and isinstance(e.get("logistic"), Mapping)}
    fig = plot_accuracy_vs_count(frames, title="Accuracy against the number of relevant pretraining documents",
                                 min_bucket=min_bucket, fits=fits)
    img = _figure(fig, plots_dir, "accuracy_vs_count",
                  "Accuracy per count bucket with 95% intervals (top); questions per bucket (bottom)."
                  + (" Dashed: logistic fit of correctness on log10(count + 1)." if fits else ""))
    # One table: bucket, n, and accuracy [interval] per setting.
    labels = list(dict.fromkeys(label for f in frames.values() for label in f["label"]))
    rows = []
    for label in labels:
        row = [label]
        n = next((f.loc[f["label"] == label, "n"].iloc[0] for f in frames.values()
                  if (f["label"] == label).any()), None)
        row.append(_fmt_int(n))
        flagged = False
        for s in settings:
            match = frames[s][frames[s]["label"] == label]
            if match.empty:
                row.append("–")
                continue
            m = match.iloc[0]
            flagged |= bool(m["flagged"])
            row.append("–" if _num(m["accuracy"]) is None else
                       f"{_fmt_pct(m['accuracy'])} [{_fmt_pct(m['ci_low'])}, {_fmt_pct(m['ci_high'])}]")
        row.append("yes" if flagged else "")
        rows.append(row)
    table = _table(["relevant documents", "questions"] + [SETTING_NAMES.get(s, s) for s in settings]
                   + ["too few questions"], rows)
    return img + table


def _section_slopes(run: Run, plots_dir: Path) -> str | None:
    from probe._plots import plot_slopes

    settings = {s: e for s, e in (run.summary.get("settings") or {}).items() if isinstance(e, Mapping)}
    if not any(_num(e.get("slope_per_decade")) is not None for e in settings.values()):
        return None
    fig = plot_slopes(settings, run.summary.get("count_dependence_reduction"),
                      run.summary.get("count_dependence_reduction_ci"))
    img = _figure(fig, plots_dir, "slopes", "Slope of accuracy per tenfold increase of the count "
                  "(least squares on log10(count + 1)) with bootstrap 95% intervals.")
    has_logistic = any(isinstance(e.get("logistic"), Mapping) for e in settings.values())
    rows = []
    for name in sorted(settings, key=_setting_key):
        e = settings[name]
        ci = _pair(e.get("slope_ci"))
        aci = _pair(e.get("accuracy_ci"))
        row = [SETTING_NAMES.get(name, name), _fmt_int(e.get("n")),
               _fmt_pct(e.get("accuracy")) + (f" [{aci[0]:.1%}, {aci[1]:.1%}]" if aci else ""),
               _fmt(e.get("slope_per_decade"), "+.3f"),
               f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "–", _fmt(e.get("spearman"), ".3f")]
        if has_logistic:
            row.append(_logistic_text(e.get("logistic")))
        rows.append(row)
    head = ["setting", "questions", "accuracy [95% interval]", "slope per decade", "95% interval", "Spearman"]
    table = _table(head + (["logistic fit"] if has_logistic else []), rows)
    reduction = _num(run.summary.get("count_dependence_reduction"))
    text = ""
    if reduction is not None:
        ci = _pair(run.summary.get("count_dependence_reduction_ci"))
        text = (f"<p>Count-dependence reduction (1 - slope<sub>RAG</sub> / slope<sub>closed-book</sub>): "
                f"<b>{reduction:.1%}</b>" + (f" (95% interval {ci[0]:.1%} to {ci[1]:.1%})" if ci else "")
                + ".")
        oracle = _num(run.summary.get("count_dependence_reduction_oracle"))
        if oracle is not None:
            oci = _pair(run.summary.get("count_dependence_reduction_oracle_ci"))
            text += (f" With the oracle passage instead of retrieval: <b>{oracle:.1%}</b>"
                     + (f" (95% interval {oci[0]:.1%} to {oci[1]:.1%})" if oci else "") + ".")
        text += "</p>"
    return img + table + text


def _section_retrieval(run: Run, plots_dir: Path) -> str | None:
    from probe._plots import plot_recall_at_k

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
            parts.append(_figure(plot_recall_at_k(by_bucket), plots_dir, "recall_at_k",
                                 "Share of questions with an answer alias in the top k retrieved passages, "
                                 "per count bucket (the original study's figure 8)."))
        ks = list(dict.fromkeys(recall["k"]))
        rows = []
        for (_lo, label), part in recall.dropna(subset=["lo"]).groupby(["lo", "label"], sort=True):
            n = part["n"].iloc[0]
            rows.append([label, _fmt_int(n)] + [_fmt(part.loc[part["k"] == k, "recall"].iloc[0], ".2f")
                                                if (part["k"] == k).any() else "–" for k in ks])
        rows.append(["all questions", ""] + [_fmt(recall.loc[recall["k"] == k, "overall"].iloc[0], ".2f")
                                             for k in ks])
        parts.append(_table(["relevant documents", "questions"] + [f"recall@{k}" for k in ks], rows))
    parts.append(_precision_html(retrieval.get("precision"), plots_dir))
    rest = {k: v for k, v in retrieval.items() if k not in ("recall_at_k", "precision") and v is not None}
    if rest:
        parts.append(_kv_table(rest))
    if adaptive is not None:
        parts.append("<h3>Adaptive retrieval</h3><p>Retrieve only for questions whose count is below a "
                     "threshold chosen on one split of the questions (PopQA's policy); accuracy on the other "
                     "split against always and never retrieving.</p>" + _adaptive_html(adaptive))
    return "\n".join(p for p in parts if p) or None


def _precision_html(precision: Any, plots_dir: Path) -> str:
    """Retrieval precision: a number, or `ltprobe rag`'s record of shares of the top-k passages."""
    from probe._plots import plot_precision

    note = (" Low precision means the passages in the prompt are often about something else, so wrong "
            "answers with retrieval can be copies of the wrong fact rather than missing knowledge.")
    if precision is None:
        return ""
    if _num(precision) is not None:
        return f"<p>Retrieval precision: <b>{_num(precision):.2f}</b>.{note}</p>"
    if not isinstance(precision, Mapping):
        return _kv_table({"precision": precision})
    parts, known = [], set()
    k = precision.get("k")
    of = f"top-{k}" if k is not None else "retrieved"
    sentences = []
    if _num(precision.get("answer")) is not None:
        sentences.append(f"{precision['answer']:.1%} of the {of} passages contain an answer alias")
        known.add("answer")
    if _num(precision.get("answer_and_question_entity")) is not None:
        sentences.append(f"{precision['answer_and_question_entity']:.1%} contain an answer alias and the "
                         f"question's entity")
        known.add("answer_and_question_entity")
    if _num(precision.get("questions_without_answer_passage")) is not None:
        sentences.append(f"{precision['questions_without_answer_passage']:.1%} of the questions get no "
                         f"passage with the answer")
        known.add("questions_without_answer_passage")
    known |= {"k", "passages"}
    if _num(precision.get("overall")) is not None:
        parts.append(f"<p>Retrieval precision: <b>{precision['overall']:.2f}</b> overall.</p>")
        known.add("overall")
    if sentences:
        text = "; ".join(sentences)
        parts.append(f"<p>Retrieval precision: {html.escape(text)}.{note}</p>")
    frame = buckets_frame(precision.get("buckets") or [], value="precision")
    if not frame.empty and frame["precision"].notna().any():
        parts.append(_figure(plot_precision(frame), plots_dir, "retrieval_precision",
                             "Retrieval precision per count bucket."))
        known.add("buckets")
    rest = {key: v for key, v in precision.items() if key not in known and v is not None}
    if rest:
        parts.append(_kv_table(rest))
    return "".join(parts)


def _adaptive_html(adaptive: Any) -> str:
    if not isinstance(adaptive, Mapping):
        return _kv_table({"adaptive_retrieval": adaptive})
    rows = []
    for policy, what in (("adaptive", "retrieve below the threshold"), ("always", "always retrieve"),
                         ("never", "never retrieve (closed-book)")):
        entry = adaptive.get(policy)
        acc = _num(entry.get("accuracy")) if isinstance(entry, Mapping) else _num(entry)
        if acc is None:
            continue
        ci = _pair(entry.get("ci")) if isinstance(entry, Mapping) else None
        rows.append([policy, what, _fmt_pct(acc), f"[{ci[0]:.1%}, {ci[1]:.1%}]" if ci else "–"])
    if isinstance(adaptive.get("accuracy"), Mapping):  # {"accuracy": {"adaptive": x, ...}}
        rows += [[k, "", _fmt_pct(v), "–"] for k, v in adaptive["accuracy"].items() if _num(v) is not None]
    out = _table(["policy", "", "accuracy", "95% interval"], rows) if rows else ""
    facts = []
    if "threshold" in adaptive:
        t = adaptive["threshold"]
        facts.append("threshold: retrieve when count < " + (_fmt_int(t) if _num(t) is not None else
                                                           "∞ (always)" if "thresholds" not in adaptive or
                                                           not adaptive.get("thresholds") else "per relation"))
    if _num(adaptive.get("retrieved_share")) is not None:
        facts.append(f"share of questions that retrieved: {adaptive['retrieved_share']:.1%}")
    if _num(adaptive.get("n_fit")) is not None:
        facts.append(f"questions to choose the threshold: {int(adaptive['n_fit']):,}, to report: "
                     f"{_fmt_int(adaptive.get('n_report'))}")
    if facts:
        out += "<p>" + html.escape("; ".join(facts)) + ".</p>"
    if isinstance(adaptive.get("thresholds"), Mapping) and adaptive["thresholds"]:
        out += _table(["relation", "retrieve when count <"],
                      [[k, _fmt_int(v) if _num(v) is not None else "∞"] for k, v in adaptive["thresholds"].items()])
    return out


def _scaling_points(scaling: Mapping[str, Any]) -> pd.DataFrame:
    models = scaling.get("models", scaling.get("points"))
    if isinstance(models, Mapping):
        models = [dict(v, model=k) for k, v in models.items() if isinstance(v, Mapping)]
    rows = []
    for m in models or []:
        if not isinstance(m, Mapping):
            continue
        params = _first_num(m, ("params", "n_params", "parameters", "size"))
        acc = _first_num(m, ("low_count_accuracy", "accuracy_low_count", "low_accuracy", "accuracy"))
        if params is not None and acc is not None and params > 0:
            ci = _pair(m.get("ci")) or (math.nan, math.nan)
            rows.append({"model": m.get("model", m.get("name", "")), "params": params, "accuracy": acc,
                         "n": m.get("n"), "ci_low": ci[0], "ci_high": ci[1]})
    return pd.DataFrame(rows, columns=["model", "params", "accuracy", "n", "ci_low", "ci_high"])


def _section_scaling(run: Run, plots_dir: Path) -> str | None:
    from probe._plots import plot_scaling

    scaling = run.summary.get("scaling")
    if scaling is None:
        return None
    if not isinstance(scaling, Mapping):
        return _kv_table({"scaling": scaling})
    points = _scaling_points(scaling)
    fit = scaling.get("fit") if isinstance(scaling.get("fit"), Mapping) else \
        {k: scaling.get(k) for k in ("slope", "intercept", "r2")}
    target = _first_num(scaling, ("target_accuracy", "target"))
    extrapolated = _first_num(scaling, ("parameters_for_target", "extrapolated_params", "params_needed"))
    max_count = _num(scaling.get("max_count"))
    low = f"questions with fewer than {int(max_count):,} relevant documents" if max_count else "low-count questions"
    parts = []
    if len(points) >= 1:
        parts.append(_figure(plot_scaling(points, fit, target, extrapolated), plots_dir, "scaling",
                             f"Accuracy on {low} against model size, with the linear fit on "
                             "log10(parameters) extrapolated to the target accuracy."))
        parts.append(_table(["model", "parameters", "questions", "low-count accuracy", "95% interval"],
                            [[str(r.model), f"{r.params:.3g}", _fmt_int(r.n), _fmt_pct(r.accuracy),
                              f"[{r.ci_low:.1%}, {r.ci_high:.1%}]" if _num(r.ci_low) is not None else "–"]
                             for r in points.itertuples()]))
    if len(points) < 2:
        parts.append("<p class='note'>The extrapolation needs at least two model sizes.</p>")
    if extrapolated is not None:
        parts.append(f"<p>Extrapolating the fit, a model of about <b>{extrapolated:.2g}</b> parameters would "
                     f"reach" + (f" {target:.0%}" if target is not None else " the target") +
                     f" accuracy on {low} (the original study found about 10<sup>18</sup> for "
                     "BLOOM on TriviaQA).</p>")
    slope, intercept, r2 = (_num(fit.get(k)) for k in ("slope", "intercept", "r2"))
    if slope is not None and intercept is not None:
        parts.append(f"<p>Fit: accuracy = {intercept:.3f} + {slope:.3f} × log10(parameters)"
                     + (f", R² = {r2:.2f}" if r2 is not None else "")
                     + (f" over {len(points)} models" if len(points) else "")
                     + (f" ({html.escape(str(scaling['setting']))})" if scaling.get("setting") else "") + ".</p>")
    known = {"models", "points", "fit", "slope", "intercept", "r2", "target_accuracy", "target", "max_count",
             "setting", "parameters_for_target", "extrapolated_params", "params_needed"}
    rest = {k: v for k, v in scaling.items() if k not in known and v is not None}
    if rest:
        parts.append(_kv_table(rest))
    return "\n".join(parts)


def _section_truth(run: Run, plots_dir: Path) -> str | None:
    truth = run.summary.get("truth_agreement")
    has_world = run.truth is not None and not run.truth.empty and not run.counts.empty
    if truth is None and not has_world:
        return None
    parts = []
    if truth is not None and not isinstance(truth, Mapping):
        parts.append(_kv_table({"truth_agreement": truth}))
        truth = {}
    truth = truth or {}
    share = _first_num(truth, ("share", "share_equal", "agreement", "equal_share"))
    n = _first_num(truth, ("n", "n_questions"))
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
            parts.append(f"<h3>{html.escape(key.replace('_', ' '))}</h3>" + _records_table(value))
    rest = {k: v for k, v in truth.items() if k not in ("share", "share_equal", "n", "equal")
            and not (isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v))}
    if rest:
        parts.append(_kv_table(rest))
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
    out = ["<h3>Why they differ</h3>", _table(["counts", "QA pairs", "share", "what it means"], why)]
    from probe._load import bucket_bounds

    labels = [bucket_label(*bucket_bounds(c)) if bucket_bounds(c) else "?" for c in merged["true_count"]]
    lows = [bucket_bounds(c)[0] if bucket_bounds(c) else -1 for c in merged["true_count"]]
    where = (pd.DataFrame({"lo": lows, "label": labels, "equal": equal, "above": above, "below": below,
                           "unlinked": unlinked})
             .groupby(["lo", "label"]).agg(n=("equal", "size"), equal=("equal", "mean"), above=("above", "sum"),
                                            below=("below", "sum"), unlinked=("unlinked", "sum")))
    out.append("<h3>Where: by true count</h3>" + _table(
        ["true relevant documents", "QA pairs", "equal", "higher", "lower", "no count"],
        [[label, f"{int(r.n):,}", f"{r.equal:.1%}", int(r.above), int(r.below), int(r.unlinked)]
         for (lo, label), r in where.iterrows()]))
    differ = merged[~equal]
    if len(differ):
        questions = run.questions.set_index("id")["question"] if "question" in run.questions else pd.Series(dtype=str)
        rows = [[r.id, _short(questions.get(r.id, ""), 90), _fmt_int(r.count), _fmt_int(r.true_count),
                 _cell(getattr(r, "status", ""))] for r in differ.head(15).itertuples()]
        out.append(f"<h3>Examples ({len(differ):,} differ{'; first 15' if len(differ) > 15 else ''})</h3>"
                   + _table(["id", "question", "count", "true count", "status"], rows))
    return "".join(out)


def _section_counterfactual(run: Run, plots_dir: Path) -> str | None:
    from probe._plots import plot_counterfactual

    cf = run.counterfactual
    if not cf:
        return None
    parts = [_figure(plot_counterfactual(cf), plots_dir, "counterfactual",
                     "Accuracy of the original model and of a model retrained with the relevant documents "
                     "of the sampled questions removed (left); the drop with its 95% interval (right).")]
    parts.append("<p>If the count causes the knowledge, removing a question's relevant documents should "
                 "lower accuracy on it, more so the more documents there were; the control questions kept "
                 "their documents, so their drop should be near zero.</p>")
    rows = []
    for b in cf.get("buckets") or []:
        ci = _pair(b.get("drop_ci"))
        rows.append([bucket_label(b["lo"], b["hi"]), _fmt_int(b.get("n")), _fmt_int(b.get("docs_removed")),
                     _fmt_pct(b.get("before")), _fmt_pct(b.get("after")), _fmt(b.get("drop"), "+.2f"),
                     f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "–"])
    control = cf.get("control")
    if isinstance(control, Mapping):
        ci = _pair(control.get("drop_ci"))
        rows.append(["control (kept)", _fmt_int(control.get("n")), "0", _fmt_pct(control.get("before")),
                     _fmt_pct(control.get("after")), _fmt(control.get("drop"), "+.2f"),
                     f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "–"])
    parts.append(_table(["original count", "questions", "documents removed", "before", "after", "drop",
                         "95% interval"], rows))
    rest = {k: v for k, v in cf.items() if k not in ("buckets", "control") and v is not None}
    if rest:
        parts.append(_kv_table(rest))
    return "\n".join(parts)


def _section_link(gen: Run | None, plots_dir: Path) -> str | None:
    from probe._plots import plot_link

    if gen is None:
        return None
    parts = []
    st = gen.statements
    rule_col = next((c for c in ("rule", "rule_id", "rule_name") if st is not None and c in st), None)
    if st is not None and not st.empty and rule_col and "beam" in st and "loglik" in st:
        parts.append(_figure(plot_link(st, rule_col), plots_dir, "link_head_tail",
                             "Head and tail beams per rule: mean token log-likelihood under the oracle model"
                             " (and corpus counts when an index was given)."))
        rows = []
        for rule, part in st.groupby(st[rule_col].astype(str), sort=False):
            head, tail = part[part["beam"] == "head"], part[part["beam"] == "tail"]
            hl = pd.to_numeric(head["loglik"], errors="coerce").mean()
            tl = pd.to_numeric(tail["loglik"], errors="coerce").mean()
            row = [rule, str(len(head)), str(len(tail)), _fmt(hl, ".2f"), _fmt(tl, ".2f"), _fmt(hl - tl, "+.2f")]
            if "count" in st:
                row += [_fmt(pd.to_numeric(head["count"], errors="coerce").median(), ".3g"),
                        _fmt(pd.to_numeric(tail["count"], errors="coerce").median(), ".3g")]
            rows.append(row)
        head_cols = ["rule", "head n", "tail n", "head log-lik", "tail log-lik", "gap (head - tail)"]
        if "count" in st:
            head_cols += ["head median count", "tail median count"]
        parts.append(_table(head_cols, rows))
        parts.append("<p>A positive gap means the tail beam found statements the oracle model finds less "
                     "likely: LINK reported 0.48 for its own search against -0.14 for direct prompting of "
                     "ChatGPT.</p>")
        text_col = next((c for c in ("statement", "succinct", "text") if c in st), None)
        if text_col:
            sample = st.groupby("beam", sort=False).head(3)
            parts.append("<h3>Examples</h3>" + _table(
                ["rule", "beam", "statement", "log-lik"],
                [[str(r[rule_col]), str(r["beam"]), _short(r[text_col]), _fmt(r["loglik"], ".2f")]
                 for _, r in sample.iterrows()]))
    if gen.generation_summary:
        parts.append(_generation_summary_html(gen.generation_summary))
    return "\n".join(parts) or None


def _generation_summary_html(gs: Mapping[str, Any]) -> str:
    """`generation_summary.json` of `ltprobe generate`: per-rule gaps, probing head vs tail, warnings."""
    parts = []
    facts = []
    if _num(gs.get("mean_loglik_gap")) is not None:
        facts.append(f"mean head - tail log-likelihood gap over rules: {gs['mean_loglik_gap']:+.2f}")
    if gs.get("reranker"):
        facts.append(f"reranker: {gs['reranker']}")
    if _num(gs.get("n_statements")) is not None:
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

            rows.append([str(rule), str(r.get("status", "")), f"{_fmt_int(n.get('head'))} / {_fmt_int(n.get('tail'))}",
                         _fmt(mean(ll, "head"), ".2f"), _fmt(mean(ll, "tail"), ".2f"), _fmt(ll.get("gap"), "+.2f"),
                         _fmt(cnt.get("gap_log10"), "+.2f"),
                         _fmt_pct(mean(probing, "head", "accuracy")), _fmt_pct(mean(probing, "tail", "accuracy"))])
        parts.append("<h3>Per rule (generation_summary.json)</h3>" + _table(
            ["rule", "status", "head / tail", "head log-lik", "tail log-lik", "gap", "count gap (log10)",
             "probing head", "probing tail"], rows))
    probing = gs.get("probing")
    if isinstance(probing, Mapping):
        rows = []
        for name, block in [("all templates", probing), *((f"template {k}", v) for k, v in
                                                          (probing.get("by_template") or {}).items()),
                            *((k, v) for k, v in (probing.get("by_polarity") or {}).items())]:
            if isinstance(block, Mapping):
                head, tail = block.get("head") or {}, block.get("tail") or {}
                h, t = _num(head.get("accuracy")), _num(tail.get("accuracy"))
                rows.append([name, _fmt_pct(h), _fmt_pct(t), _fmt(h - t, "+.2f") if h is not None and t is not None
                             else "–", f"{_fmt_int(head.get('n'))} / {_fmt_int(tail.get('n'))}"])
        parts.append("<h3>Probing: does the model judge the statements correctly?</h3><p>Each statement asked "
                     "in several templates (yes/no, true/false, entails/contradicts, with negated variants). "
                     "LINK found accuracy about 3 points lower on the tail.</p>"
                     + _table(["", "head accuracy", "tail accuracy", "gap", "questions head / tail"], rows))
    if isinstance(gs.get("config"), Mapping):
        parts.append("<details><summary>Search configuration</summary><pre>"
                     + html.escape(json.dumps(gs["config"], indent=2, default=str)) + "</pre></details>")
    return "\n".join(parts)


def _section_other(run: Run, plots_dir: Path) -> str | None:
    rest = {k: v for k, v in run.summary.items() if k not in _RENDERED_KEYS}
    return _kv_table(rest) if rest else None


def _section_manifest(run: Run, plots_dir: Path) -> str | None:
    m = run.manifest
    if not m:
        return "<p class='note'>No manifest.json in this run folder.</p>"
    parts = []
    simple = {k: v for k, v in m.items() if k != "config"}
    if simple:
        parts.append(_kv_table(simple))
    if "config" in m:
        parts.append("<h3>Configuration</h3><pre>" + html.escape(json.dumps(m["config"], indent=2, default=str))
                     + "</pre>")
    return "\n".join(parts)


# ---- comparing runs -----------------------------------------------------------------------------

def compare_table(runs: Sequence[Run], labels: Sequence[str]) -> pd.DataFrame:
    """One row per run: model, index, questions, accuracy / slope / interval / Spearman per setting,
    the reduction and recall@k overall."""
    settings = sorted({s for r in runs for s in (r.summary.get("settings") or {})}, key=_setting_key)
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
            ci = _pair(e.get("slope_ci")) or (None, None)
            row.update({f"{name}_accuracy": _num(e.get("accuracy")),
                        f"{name}_slope": _num(e.get("slope_per_decade")),
                        f"{name}_slope_ci_low": ci[0], f"{name}_slope_ci_high": ci[1],
                        f"{name}_spearman": _num(e.get("spearman"))})
        rci = _pair(s.get("count_dependence_reduction_ci")) or (None, None)
        row.update({"count_dependence_reduction": _num(s.get("count_dependence_reduction")),
                    "reduction_ci_low": rci[0], "reduction_ci_high": rci[1]})
        for k in ks:
            values = recall.loc[recall["k"].astype(str) == k, "overall"]
            row[f"recall_at_{k}"] = _num(values.iloc[0]) if len(values) else None
        rows.append(row)
    return pd.DataFrame(rows)


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, *, labels: Sequence[str] | None = None,
                 on_error: OnError = "fail") -> Path:
    """Put several runs side by side: `OUT/compare.html` (one accuracy figure per setting with a
    line per run, the table, each run's headline), `OUT/compare.csv`, `OUT/compare.md` and
    `OUT/plots/compare_*.png|svg`. Returns the HTML's path."""
    from probe._plots import plot_accuracy_vs_count, plot_slopes_compare

    if len(run_dirs) < 1:
        raise InputError("compare: give at least one run folder")
    runs = [load_run(d, on_error=on_error) for d in run_dirs]
    for run in runs:
        if run.skipped.skipped:
            print(f"ltprobe compare: {run.path}: {run.skipped.summary()}", file=sys.stderr)
    if labels is not None and len(labels) != len(runs):
        raise InputError(f"compare: {len(labels)} label(s) for {len(runs)} run(s); give one per run")
    labels = list(labels) if labels is not None else _unique_labels([r.path for r in runs])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots_dir = out_dir / "plots"
    table = compare_table(runs, labels)
    _write_csv(table, out_dir / "compare.csv")
    settings = sorted({s for r in runs for s in (r.summary.get("settings") or {})}, key=_setting_key)
    readable = _readable_compare(table, settings)
    with atomic_write(out_dir / "compare.md") as handle:
        handle.write(markdown_table(readable))

    body = ["<section><h2>Runs</h2>" + _table(list(readable.columns), readable.itertuples(index=False))
            + "<p class='meta'>All figures with full precision: compare.csv.</p></section>"]
    for setting in settings:
        series = {label: run.buckets(setting) for run, label in zip(runs, labels)}
        series = {k: v for k, v in series.items() if not v.empty}
        if not series:
            continue
        fig = plot_accuracy_vs_count(series, hist=series, title=f"{SETTING_NAMES.get(setting, setting)}: "
                                     "accuracy against relevant-document count", names={k: k for k in series})
        body.append(f"<section><h2>{html.escape(SETTING_NAMES.get(setting, setting))}</h2>"
                    + _figure(fig, plots_dir, f"compare_{setting}", "One line per run; questions per "
                              "bucket of each run underneath.") + "</section>")
    entries = {label: {k: v for k, v in (run.summary.get("settings") or {}).items() if isinstance(v, Mapping)}
               for run, label in zip(runs, labels)}
    if any(_num(e.get("slope_per_decade")) is not None for es in entries.values() for e in es.values()):
        body.append("<section><h2>Count dependence</h2>" + _figure(
            plot_slopes_compare(entries), plots_dir, "compare_slopes",
            "Slope of accuracy per tenfold increase of the count, with 95% intervals, per run and setting.")
            + "</section>")
    findings = "".join(f"<h3>{html.escape(label)}</h3>{_paragraphs(headline(run.summary))}"
                       for run, label in zip(runs, labels))
    body.append(f"<section><h2>Findings per run</h2>{findings}</section>")
    meta = {"runs": ", ".join(labels)}
    out = out_dir / "compare.html"
    with atomic_write(out) as handle:
        handle.write(_page("ltprobe comparison", meta, "\n".join(body)))
    return out


def _readable_compare(table: pd.DataFrame, settings: Sequence[str]) -> pd.DataFrame:
    """The comparison table with intervals folded into one cell, for HTML and markdown."""
    out = pd.DataFrame({"run": table["run"], "model": table["model"].map(_cell),
                        "index": table["index"].map(_cell), "questions": table["n_questions"].map(_fmt_int)})
    for name in settings:
        short = SETTING_NAMES.get(name, name)
        if f"{name}_accuracy" not in table:
            continue
        out[f"{short} accuracy"] = table[f"{name}_accuracy"].map(_fmt_pct)
        out[f"{short} slope [95% CI]"] = [
            _fmt(sl, "+.3f") + (f" [{lo:+.3f}, {hi:+.3f}]" if _num(lo) is not None and _num(hi) is not None else "")
            for sl, lo, hi in zip(table[f"{name}_slope"], table[f"{name}_slope_ci_low"],
                                  table[f"{name}_slope_ci_high"])]
    out["reduction [95% CI]"] = [
        _fmt_pct(r) + (f" [{lo:.0%}, {hi:.0%}]" if _num(lo) is not None and _num(hi) is not None else "")
        for r, lo, hi in zip(table["count_dependence_reduction"], table["reduction_ci_low"],
                             table["reduction_ci_high"])]
    for col in table.columns:
        if col.startswith("recall_at_"):
            out[col.replace("recall_at_", "recall@")] = table[col].map(lambda v: _fmt(v, ".2f"))
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
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_write(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(frame.columns)
        for row in frame.itertuples(index=False):
            writer.writerow(["" if _missing(v) else v for v in row])


# ---- HTML helpers -------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#666;font-size:.9em}.warning{color:#8b0000;background:#fdecea;padding:.5em .7em;border-radius:4px}
.note{color:#8a5a00;background:#fff7e6;padding:.4em .6em;border-radius:4px}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}th,td{border:1px solid #ddd;padding:.25em .55em;
text-align:right;vertical-align:top}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%}figcaption{color:#555;font-size:.88em}
pre{background:#f6f6f6;padding:.7em;overflow:auto;font-size:.82em}.finding p{font-size:1.05em}
details{margin:.6em 0}
"""


def _page(title: str, meta: Mapping[str, Any], body: str) -> str:
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta_html = " · ".join(f"{html.escape(str(k))}: <b>{html.escape(str(v))}</b>" for k, v in meta.items())
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1><p class='meta'>{meta_html} · written {when}</p>\n{body}\n"
            f"</body></html>\n")


def _how_to_read() -> str:
    return ("<details><summary>How to read this report</summary><p>Each question's <i>relevant-document "
            "count</i> is the number of pretraining documents that mention both the question's entity and "
            "the answer's entity (found by entity linking). Questions are grouped into decade buckets of the "
            "count (0, 1-9, 10-99, ...); for each bucket the report shows the share answered correctly with a "
            "95% interval. <i>Closed-book</i>: the model answers from memory; <i>retrieval</i>: passages found "
            "by BM25 are put before the question; <i>oracle</i>: a passage that states the answer. The "
            "<i>slope per decade</i> is how much accuracy changes when the count grows tenfold; the "
            "<i>reduction</i> is how much smaller that slope is with retrieval. Buckets with too few "
            "questions are flagged (open markers) and should not be read too closely.</p></details>")


def _paragraphs(sentences: Iterable[str]) -> str:
    return "<div class='finding'>" + "".join(f"<p>{html.escape(s)}</p>" for s in sentences) + "</div>"


def _figure(fig: Any, plots_dir: Path, name: str, caption: str) -> str:
    from probe._plots import save_figure

    saved = save_figure(fig, plots_dir, name)
    return (f"<figure><img alt='{html.escape(caption)}' src='{saved['data_uri']}'>"
            f"<figcaption>{html.escape(caption)} (plots/{name}.png, .svg)</figcaption></figure>")


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = ["<table><thead><tr>", *(f"<th>{html.escape(str(h))}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _kv_table(obj: Any, limit: int = 60) -> str:
    """Any JSON value as a two-column table of dotted keys (lists of records as sub-tables)."""
    rows: list[tuple[str, str]] = []
    tables: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            tables.append(f"<h4>{html.escape(prefix)}</h4>" + _records_table(value))
        else:
            rows.append((prefix or "value", _cell(value)))

    walk("", obj)
    more = f"<p class='note'>{len(rows) - limit} more entries not shown.</p>" if len(rows) > limit else ""
    return (_table(["key", "value"], rows[:limit]) if rows else "") + more + "".join(tables)


def _records_table(records: Sequence[Mapping[str, Any]], limit: int = 20) -> str:
    cols = list(dict.fromkeys(k for r in records[:limit] for k in r))
    body = [[_cell(r.get(c)) for c in cols] for r in records[:limit]]
    more = f"<p class='note'>{len(records) - limit} more rows not shown.</p>" if len(records) > limit else ""
    return _table(cols, body) + more


def _cell(value: Any) -> str:
    if _missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return _short(json.dumps(value, default=str), 120)
    return _short(str(value), 160)


def _logistic_text(fit: Any) -> str:
    if not isinstance(fit, Mapping) or _num(fit.get("slope")) is None:
        return _compact(fit)
    text = f"{fit['slope']:+.2f} log-odds per decade"
    half = _num(fit.get("count_at_half"))
    if half is not None:
        text += f"; 50% accuracy at count ≈ {half:.3g}"
    elif fit.get("above_half_at_zero"):
        text += "; above 50% already at count 0"
    if fit.get("converged") is False:
        text += " (not converged)"
    return text


def _compact(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items() if not isinstance(v, (list, dict)))
    return _cell(value)


def _short(text: Any, n: int = 160) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value)) if not isinstance(value, (list, dict, tuple, str)) else False
    except (TypeError, ValueError):
        return False


def _fmt(value: Any, spec: str = ".3g") -> str:
    v = _num(value)
    return "–" if v is None else f"{v:{spec}}"


def _fmt_pct(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.1%}"


def _fmt_int(value: Any) -> str:
    v = _num(value)
    return "–" if v is None else f"{int(v):,}"


def _first_num(mapping: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        v = _num(mapping.get(key))
        if v is not None:
            return v
    return None


def _setting_key(name: str) -> tuple[int, str]:
    return (SETTINGS_ORDER.index(name) if name in SETTINGS_ORDER else len(SETTINGS_ORDER), name)
