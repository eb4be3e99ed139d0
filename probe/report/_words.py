"""The run's finding in plain sentences, written from `summary.json` (the report's headline)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from probe.evaluation import SETTINGS
from probe.report._frames import SETTING_NAMES, buckets_frame, num, pair

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
    if isinstance(rag, Mapping) and num(rag.get("accuracy")) in (0.0, 1.0):
        sentence, _, _ = _trend_sentence("Accuracy with retrieval augmentation", rag)
        sentences.append(sentence)
    elif isinstance(rag, Mapping):
        slope, ci = num(rag.get("slope_per_decade")), pair(rag.get("slope_ci"))
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
    reduction = num(summary.get("count_dependence_reduction"))
    dependence = summary.get("count_dependence")
    if isinstance(dependence, Mapping) and dependence.get("reduction") is None \
            and num(dependence.get("slope_difference")) is not None:
        # the ratio is undefined here (issue 16): say what the difference of slopes shows instead
        diff, dci = num(dependence.get("slope_difference")), pair(dependence.get("slope_difference_ci"))
        sentences.append(f"Retrieval changes the slope by {-diff:+.3f} accuracy per tenfold increase"
                         f"{_ci_text(dci and (-dci[1], -dci[0]), '+.3f')}; no reduction ratio is "
                         f"reported because {dependence.get('note') or 'it is undefined'}.")
        reduction = None
    if reduction is not None:
        ci = pair(summary.get("count_dependence_reduction_ci"))
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
    if isinstance(oracle, Mapping) and num(oracle.get("accuracy")) is not None:
        slope = num(oracle.get("slope_per_decade"))
        source = oracle.get("passage_source")
        if oracle.get("pseudo_oracle"):
            given = (f"Given a pseudo-oracle passage (no gold passage in the data set: "
                     f"{_SOURCE_WORDS.get(source, source)} that contain an answer)")
        else:
            given = "Given a passage known to state the answer (oracle)"
        text = (f"{given}, accuracy is {oracle['accuracy']:.0%}"
                + (f" with a slope of {slope:+.3f}" if slope is not None else ""))
        others = {k: v for k, v in (oracle.get("by_passage_source") or {}).items() if k != source}
        if others:
            text += "; questions with other passages, not in that curve: " + ", ".join(
                f"{_SOURCE_WORDS.get(k, k)} {v['accuracy']:.0%} (n = {v['n']})" for k, v in others.items())
        sentences.append(text + ".")
    for name, entry in settings.items():
        if name not in SETTINGS and isinstance(entry, Mapping):
            sentence, _, _ = _trend_sentence(f"Accuracy ({name})", entry)
            if sentence:
                sentences.append(sentence)
    unlinked = num(summary.get("n_unlinked"))
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
    slope, ci = num(entry.get("slope_per_decade")), pair(entry.get("slope_ci"))
    frame = _usable_buckets(entry)
    if slope is None and frame.empty:
        return None, None, math.nan
    accuracy = num(entry.get("accuracy"))
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


_SOURCE_WORDS = {"gold": "gold passages", "linked": "documents linked to both entities",
                 "search": "retrieved passages", "none": "no passage found"}
