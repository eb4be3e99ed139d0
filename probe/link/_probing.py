"""Probing a model with generated rule statements, in several templates and negated variants.

Each statement (a row of `statements.jsonl`) is asked as a yes/no question, as true/false,
and as entailment (do the premises entail or contradict the conclusion?). The negated variant
replaces the conclusion with its negation (the rule's `negated_conclusion_map`, else a rule of
thumb: drop or insert "not" after the first auxiliary verb), which flips the expected answer.
The model's answer is whichever of the template's two answers has the higher log-probability
as the prompt's continuation (`next_token_logprobs`, summed over the answer's tokens); all
items go to the model in one batched call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from probe.link._rules import Rule
from probe.link._templates import join_and, sentence

PROBE_TEMPLATES = ("yes_no", "true_false", "entailment")
"""Probing templates (files `templates/link/probe_<name>.yaml`)."""

_AUX = r"(is|are|was|were|am|do|does|did|can|could|will|would|should|shall|must|may|might|has|have|had)"
_CONTRACTIONS = {"can't": "can", "won't": "will", "shan't": "shall", "isn't": "is", "aren't": "are",
                 "wasn't": "was", "weren't": "were", "doesn't": "does", "don't": "do", "didn't": "did",
                 "couldn't": "could", "wouldn't": "would", "shouldn't": "should", "mustn't": "must",
                 "hasn't": "has", "haven't": "have", "hadn't": "had"}


def negate(text: str) -> str:
    """The negation of a simple sentence: removes a negation if there is one (`is not able` ->
    `is able`, `cannot` -> `can`), else inserts `not` after the first auxiliary verb, else
    prefixes "it is not the case that"."""
    negative = re.compile(r"\b" + _AUX + r"\s+not\b", re.IGNORECASE)
    if negative.search(text):
        return negative.sub(lambda m: m.group(1), text, count=1)
    if re.search(r"\bcannot\b", text, re.IGNORECASE):
        return re.sub(r"\b([Cc])annot\b", lambda m: m.group(1) + "an", text, count=1)
    contraction = re.compile(r"\b(" + "|".join(re.escape(c) for c in _CONTRACTIONS) + r")\b", re.IGNORECASE)
    match = contraction.search(text)
    if match:
        word = _CONTRACTIONS[match.group(1).lower()]
        if match.group(1)[0].isupper():
            word = word.capitalize()
        return text[:match.start()] + word + text[match.end():]
    positive = re.compile(r"\b" + _AUX + r"\b", re.IGNORECASE)
    if positive.search(text):
        return positive.sub(lambda m: m.group(1) + " not", text, count=1)
    return "it is not the case that " + text


def probe_items(rows: Sequence[dict[str, Any]], rules: dict[str, Rule],
                templates: Sequence[str] = PROBE_TEMPLATES, negated: bool = True,
                prompt_templates: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """The probing questions for statement rows: one per row, template and polarity."""
    if prompt_templates is None:
        from probe.link._templates import load_templates

        prompt_templates = load_templates()
    unknown = [t for t in templates if t not in PROBE_TEMPLATES]
    if unknown:
        from entity_linking.io import InputError

        raise InputError(f"unknown probing template {unknown[0]!r}; choose from {', '.join(PROBE_TEMPLATES)}")
    items = []
    for row in rows:
        rule = rules[row["rule"]]
        values = row["values"]
        generic = {v.name for v in rule.generic}
        premises = [p.render(values) for p in rule.premises]
        personal = [p.render(values) for p in rule.premises if generic & set(p.args)] or premises
        conclusion = rule.conclusion.render(values)
        negation = rule.conclusion.render_negated(values) or negate(conclusion)
        for polarity in ((False, True) if negated else (False,)):
            hypothesis = negation if polarity else conclusion
            statement = sentence(f"If {join_and(personal)}, {hypothesis}")
            for name in templates:
                template = prompt_templates[f"probe_{name}"]
                prompt = template["prompt"].format(statement=statement,
                                                   premise=sentence(join_and(premises)),
                                                   hypothesis=sentence(hypothesis))
                items.append({
                    "id": f"{row['id']}:{name}" + (":neg" if polarity else ""),
                    "statement_id": row["id"],
                    "rule": row["rule"],
                    "beam": row["beam"],
                    "template": name,
                    "negated": polarity,
                    "prompt": prompt,
                    "answers": dict(template["answers"]),
                    "expected": "negative" if polarity else "positive",
                })
    return items


def probe_statements(generator: Any, rows: Sequence[dict[str, Any]], rules: dict[str, Rule],
                     templates: Sequence[str] = PROBE_TEMPLATES, negated: bool = True,
                     prompt_templates: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """Ask `generator` every probing question (one `next_token_logprobs` call) and return the
    rows of `probing.jsonl`: the item plus `answer` ("positive"/"negative"), `p_positive` and
    `correct`. Generated statements are taken as true, so the expected answer is positive for
    the statement and negative for its negation."""
    items = probe_items(rows, rules, templates, negated, prompt_templates)
    if not items:
        return []
    candidates = list(dict.fromkeys(a for item in items for a in item["answers"].values()))
    logprobs = generator.next_token_logprobs([item["prompt"] for item in items], candidates)
    out = []
    for item, lp in zip(items, logprobs):
        pos = lp.get(item["answers"]["positive"])
        neg = lp.get(item["answers"]["negative"])
        pos = -math.inf if pos is None else float(pos)
        neg = -math.inf if neg is None else float(neg)
        if pos == neg == -math.inf:
            p = 0.5
        else:
            m = max(pos, neg)
            p = math.exp(pos - m) / (math.exp(pos - m) + math.exp(neg - m))
        answer = "positive" if p > 0.5 else "negative"
        out.append({**item, "answer": answer, "p_positive": p, "correct": answer == item["expected"]})
    return out


def _accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    return {"n": n, "accuracy": (sum(r["correct"] for r in rows) / n) if n else None}


def summarize_probing(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Probing accuracy overall, by beam (head vs tail, and their gap), by template and by
    polarity."""
    rows = list(rows)
    out: dict[str, Any] = {**_accuracy(rows)}
    for beam in ("head", "tail"):
        out[beam] = _accuracy([r for r in rows if r["beam"] == beam])
    head, tail = out["head"]["accuracy"], out["tail"]["accuracy"]
    out["gap"] = head - tail if head is not None and tail is not None else None
    out["by_template"] = {
        name: {beam: _accuracy([r for r in rows if r["template"] == name and r["beam"] == beam])
               for beam in ("head", "tail")}
        for name in dict.fromkeys(r["template"] for r in rows)
    }
    out["by_polarity"] = {
        ("negated" if neg else "original"): {
            beam: _accuracy([r for r in rows if r["negated"] == neg and r["beam"] == beam])
            for beam in ("head", "tail")}
        for neg in dict.fromkeys(r["negated"] for r in rows)
    }
    return out
