"""Beyond final counts (issue 19): learning curves over checkpoints, error attribution, and
the gold answer's log-probability.

- **Learning** (`learning`): every model of a job with a known training step (a checkpoint
  folder written by `ltprobe train --save-steps`, the trained model itself, or a hub revision
  such as `EleutherAI/pythia-160m@step3000`) is scored against the relevant documents it had
  seen by that step (`counts_by_step.jsonl`, `ltprobe count --order`): per checkpoint the
  accuracy per decade bucket of documents seen so far, with Wilson intervals, and the count
  at which half the facts are known (the logistic fit of correctness on log10(seen + 1)
  crossing 0.5).
- **Error attribution** (`attribute_errors`, `error_attribution`): each wrong answer is linked
  against the knowledge base as the gold answers are (the question as context,
  `entity_linking.link_qa_records`), and the documents holding both the question entity and
  the predicted entity are counted in the index. An error is *attributed to a frequent
  distractor* when its predicted entity co-occurs with the question entity in more documents
  than the gold answer does (Kang and Choi, 2023). Reported by bucket of the gold count.
- **Gold log-probability** (`gold_logprob_summary`): the slope of the gold answer's
  log-probability (summed over its tokens, best alias; `probe.evaluation._evaluate.gold_logprobs`) per
  decade of count, with a bootstrap interval, beside the accuracy slope.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from entity_linking.io import InputError, read_records, write_jsonl

# -- models and their steps -------------------------------------------------------------------

def split_revision(spec: str) -> tuple[str, str | None]:
    """`"NAME@REVISION"` -> `(NAME, REVISION)`; a local path (even one holding `@`) or a name
    without `@` -> `(spec, None)`."""
    spec = str(spec)
    if "@" not in spec or Path(spec).exists():
        return spec, None
    name, _, revision = spec.rpartition("@")
    if not name or not revision or "/" in revision:
        raise InputError(f"model {spec!r}: expected NAME@REVISION, e.g. EleutherAI/pythia-160m@step3000")
    return name, revision


_STEP = re.compile(r"(?:^|[^a-z])step[-_]?(\d+)$", re.IGNORECASE)


def model_step(spec: str) -> int | None:
    """The training step of a model: from a checkpoint folder's `ltprobe_checkpoint.json`, a
    trained model's `ltprobe_train.json` (its last step), or a name / revision ending in
    `step-N`, `step_N` or `stepN` (Pythia's revisions). None when unknown."""
    name, revision = split_revision(spec)
    folder = Path(name)
    if revision is None and folder.is_dir():
        for marker, key in (("ltprobe_checkpoint.json", "step"), ("ltprobe_train.json", None)):
            if (folder / marker).exists():
                data = json.loads((folder / marker).read_text(encoding="utf-8"))
                return int(data["step"]) if key else int(data["config"]["steps"])
    match = _STEP.search(revision if revision is not None else folder.name)
    return int(match.group(1)) if match else None


def checkpoint_folders(model_dir: str | os.PathLike) -> list[Path]:
    """A trained model's checkpoint folders (`checkpoints/step-N` with a checkpoint marker), by step."""
    root = Path(model_dir) / "checkpoints"
    found = [p for p in root.glob("step-*") if (p / "ltprobe_checkpoint.json").exists()] if root.is_dir() else []
    return sorted(found, key=lambda p: model_step(str(p)) or 0)


# -- learning -----------------------------------------------------------------------------------

def learning_summary(predictions: Sequence[Mapping[str, Any]], seen: Mapping[str, Mapping[int, int]],
                     steps: Mapping[str, int | None], *, setting: str = "closed_book",
                     min_bucket: int = 20) -> dict[str, Any] | None:
    """`learning` of summary.json: per model with a known step (in step order) its accuracy by
    bucket of relevant documents seen before that step. `seen`: {qa id: {step: documents}}
    (`indexes._order.seen_table`); `steps`: {model name: step}. None when no model qualifies."""
    from probe.analysis._analysis import buckets, decade_edges, logistic_fit, wilson_interval

    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for p in predictions:
        if p.get("setting") == setting:
            by_model.setdefault(str(p["model"]), []).append(p)
    rows = []
    for model, preds in by_model.items():
        step = steps.get(model)
        if step is None:
            continue
        xs, ys = [], []
        for p in preds:
            at = seen.get(str(p["id"]))
            if at is not None and step in at:
                xs.append(at[step])
                ys.append(bool(p["correct"]))
        if not xs:
            continue
        fit = logistic_fit(xs, ys)
        rows.append({"model": model, "step": step, "n": len(xs), "accuracy": sum(ys) / len(ys),
                     "accuracy_ci": wilson_interval(sum(ys), len(ys)), "xs": xs, "ys": ys,
                     "count_at_half": None if fit is None else fit["count_at_half"],
                     "logistic_slope": None if fit is None else fit["slope"]})
    if not rows:
        return None
    edges = decade_edges(max(max(r["xs"]) for r in rows))
    checkpoints = []
    for r in sorted(rows, key=lambda r: r["step"]):
        xs, ys = r.pop("xs"), r.pop("ys")
        checkpoints.append({**r, "buckets": buckets(xs, ys, min_bucket=min_bucket, edges=edges)})
    return {"setting": setting, "count": "relevant documents seen before the checkpoint's step",
            "checkpoints": checkpoints}


# -- gold log-probability ---------------------------------------------------------------------

def gold_logprob_summary(predictions: Sequence[Mapping[str, Any]], counts: Iterable[Mapping[str, Any]], *,
                         n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per setting whose predictions carry `gold_logprob`: `gold_logprob_mean`,
    `gold_logprob_slope` (least squares on log10(count + 1), nats per decade) and
    `gold_logprob_slope_ci` (bootstrap 95%), over the linked questions."""
    from probe.analysis._analysis import _boot_indices, _slope

    table = {str(c["id"]): c for c in counts}
    by_setting: dict[str, list[tuple[float, float]]] = {}
    for p in predictions:
        value = p.get("gold_logprob")
        c = table.get(str(p["id"]))
        if value is None or c is None or c.get("status", "ok") != "ok" or c.get("count") is None:
            continue
        by_setting.setdefault(p["setting"], []).append((math.log10(int(c["count"]) + 1), float(value)))
    result = {}
    for setting, pairs in by_setting.items():
        x = np.array([a for a, _ in pairs])
        y = np.array([b for _, b in pairs])
        slope = float(_slope(x, y)) if len(x) > 1 else math.nan
        ci = None
        if len(x) > 1 and n_boot > 0:
            rng = np.random.default_rng(seed)
            boot = np.concatenate([_slope(x[i], y[i]) for i in _boot_indices(len(x), n_boot, rng)])
            boot = boot[~np.isnan(boot)]
            if boot.size:
                ci = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
        result[setting] = {"gold_logprob_n": len(x), "gold_logprob_mean": float(y.mean()),
                           "gold_logprob_slope": None if math.isnan(slope) else slope,
                           "gold_logprob_slope_ci": ci}
    return result


# -- error attribution --------------------------------------------------------------------------

def attribute_errors(predictions: Iterable[Mapping[str, Any]], qa: Iterable[Mapping[str, Any]],
                     qa_entities: Iterable[Mapping[str, Any]], counts: Iterable[Mapping[str, Any]],
                     index: Any, kb: Any, *, linker_options: Mapping[str, Any] | None = None
                     ) -> list[dict[str, Any]]:
    """One record per wrong prediction: `{"id", "setting", "model", "completion", "status",
    "pred_entities", "pred_pair", "pred_count", "gold_count", "more_frequent"}`.

    `status`: `ok`; `unlinked` (no KB entity in the answer); `gold_entity` (the wrong answer
    links to a gold answer entity: a surface error, not a distractor); `no_q_entity`, `no_count`
    (the gold count is undefined). `pred_count`: documents holding both a question entity and
    the predicted entity (maximum over pairs, as counts); `more_frequent`: pred_count > gold_count.
    """
    from entity_linking import link_qa_records

    questions = {str(r["id"]): r for r in qa}
    entities = {str(r["id"]): r for r in qa_entities}
    gold = {str(c["id"]): c for c in counts}
    wrong = [p for p in predictions if not p.get("correct") and str(p["id"]) in questions]
    to_link = [{"id": n, "question": questions[str(p["id"])]["question"], "answers": [p["completion"]]}
               for n, p in enumerate(wrong) if str(p.get("completion") or "").strip()]
    linked = {r["id"]: r for r in link_qa_records(to_link, kb, **dict(linker_options or {}))} if to_link else {}
    records, pairs, slots = [], [], []
    for n, p in enumerate(wrong):
        qid = str(p["id"])
        q_entities = list((entities.get(qid) or {}).get("q_entities") or [])
        gold_entities = set((entities.get(qid) or {}).get("a_entities") or [])
        predicted = [e for e in (linked.get(n) or {}).get("a_entities", []) if e not in q_entities]
        c = gold.get(qid) or {}
        record: dict[str, Any] = {"id": qid, "setting": p.get("setting"), "model": p.get("model"),
                                  "completion": p.get("completion"), "pred_entities": predicted,
                                  "pred_pair": None, "pred_count": None, "gold_count": c.get("count"),
                                  "more_frequent": None}
        if not q_entities:
            record["status"] = "no_q_entity"
        elif not predicted:
            record["status"] = "unlinked"
        elif gold_entities & set(predicted):
            record["status"] = "gold_entity"
        elif c.get("count") is None:
            record["status"] = "no_count"
        else:
            record["status"] = "ok"
            slots.append((len(records), len(pairs), [(q, a) for q in q_entities for a in predicted]))
            pairs.extend(slots[-1][2])
        records.append(record)
    values = index.count_cooccurrence(pairs) if pairs else []
    for at, start, own in slots:
        own_counts = values[start:start + len(own)]
        best = max(range(len(own)), key=own_counts.__getitem__)
        record = records[at]
        record.update(pred_pair=list(own[best]), pred_count=int(own_counts[best]),
                      more_frequent=int(own_counts[best]) > int(record["gold_count"]))
    return records


def write_errors(predictions_path: str | os.PathLike, qa_path: str | os.PathLike,
                 qa_entities_path: str | os.PathLike, counts_path: str | os.PathLike, index: Any, kb: Any,
                 out: str | os.PathLike, *, model: str | None = None) -> dict[str, Any]:
    """`attribute_errors` over files; writes `out` (errors.jsonl). `model`: only that model's
    predictions (default: the first model in the file). `index`: an open index or its folder."""
    from indexes import DocumentIndex, open_index

    predictions = [r for _, r in read_records(predictions_path)]
    if model is None and predictions:
        model = str(predictions[0]["model"])
    predictions = [p for p in predictions if str(p["model"]) == model]
    own = not isinstance(index, DocumentIndex)
    opened = open_index(index) if own else index
    try:
        records = attribute_errors(predictions, (r for _, r in read_records(qa_path)),
                                   (r for _, r in read_records(qa_entities_path)),
                                   (r for _, r in read_records(counts_path)), opened, kb)
    finally:
        if own:
            opened.close()
    write_jsonl(out, records)
    return error_attribution_summary(records)


def error_attribution_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`error_attribution` of summary.json: per setting, the wrong answers by status and, over
    those with a predicted entity and a gold count (`ok`), the share whose predicted answer
    co-occurs with the question entity more often than the gold answer: overall and per decade
    bucket of the gold count (Wilson intervals)."""
    from probe.analysis._analysis import bucket_of, decade_edges, wilson_interval

    result: dict[str, Any] = {"definition": "share of wrong answers (linked to a KB entity other than the "
                                            "gold answer) whose predicted entity co-occurs with the question "
                                            "entity in more documents than the gold answer entity",
                              "settings": {}}
    by_setting: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        by_setting.setdefault(str(r["setting"]), []).append(r)
    for setting, rows in by_setting.items():
        status: dict[str, int] = {}
        for r in rows:
            status[r["status"]] = status.get(r["status"], 0) + 1
        ok = [r for r in rows if r["status"] == "ok"]
        k = sum(bool(r["more_frequent"]) for r in ok)
        edges = decade_edges(max((int(r["gold_count"]) for r in ok), default=0))
        tally = {edge: [0, 0] for edge in edges}
        for r in ok:
            t = tally[bucket_of(int(r["gold_count"]))]
            t[0] += 1
            t[1] += bool(r["more_frequent"])
        result["settings"][setting] = {
            "n_errors": len(rows), "status": status, "n_attributed": len(ok), "n_more_frequent": k,
            "share_more_frequent": k / len(ok) if ok else None, "ci": wilson_interval(k, len(ok)),
            "buckets": [{"lo": lo, "hi": hi, "n": n, "more_frequent": m, "share": m / n if n else None,
                         "ci": wilson_interval(m, n)} for (lo, hi), (n, m) in sorted(tally.items())],
        }
    return result


# -- the summary's views --------------------------------------------------------------------------

def add_learning_views(summary: dict[str, Any], predictions: Sequence[Mapping[str, Any]],
                       counts: Sequence[Mapping[str, Any]], *, primary: str,
                       counts_by_step: str | os.PathLike | None = None, errors: str | os.PathLike | None = None,
                       min_bucket: int = 20, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Add issue 19's views to `summary` (in place; returned): per setting
    `gold_logprob_slope`/`_ci` (when predictions carry `gold_logprob`), `learning` (given
    `counts_by_step.jsonl`), `error_attribution` (given `errors.jsonl`); files that do not exist
    are ignored."""
    own = [p for p in predictions if str(p["model"]) == primary]
    for setting, values in gold_logprob_summary(own, counts, n_boot=n_boot, seed=seed).items():
        if setting in summary.get("settings", {}):
            summary["settings"][setting].update(values)
    for entry in summary.get("models") or []:
        mine = [p for p in predictions if str(p["model"]) == entry["model"]]
        for setting, values in gold_logprob_summary(mine, counts, n_boot=n_boot, seed=seed).items():
            if setting in entry.get("settings", {}):
                entry["settings"][setting].update(values)
    if counts_by_step is not None and Path(counts_by_step).exists():
        from indexes import seen_table

        models = list(dict.fromkeys(str(p["model"]) for p in predictions))
        learning = learning_summary(predictions, seen_table(counts_by_step),
                                    {m: model_step(m) for m in models}, min_bucket=min_bucket)
        if learning is not None:
            summary["learning"] = learning
            scaling = summary.get("scaling")
            if scaling and len({p["parameters"] for p in scaling.get("points", [])}) <= 1:
                summary["scaling"] = None  # checkpoints of one model: no sizes to scale across
    if errors is not None and Path(errors).exists():
        summary["error_attribution"] = error_attribution_summary([r for _, r in read_records(errors)])
    return summary


def error_docs(errors: str | os.PathLike, qa_id: str, index: Any, *, setting: str = "closed_book",
               limit: int | None = None) -> dict[str, Any]:
    """The record of `errors.jsonl` (`write_errors`) for the wrong `setting` answer to QA pair
    `qa_id`, with `docs`: the documents of the open `index` holding both the question entity and
    the predicted answer entity (`{"id", "text"}`, at most `limit`; none where the prediction
    was not linked). `ltprobe docs QA_ID --errors FILE` shows them."""
    error = next((r for _, r in read_records(errors) if str(r["id"]) == str(qa_id)
                  and r.get("setting") == setting), None)
    if error is None:
        raise InputError(f"{errors}: no wrong {setting} answer to QA pair {qa_id!r}")
    docs = []
    if error.get("pred_pair"):
        docs = [{"id": d, "text": index.get_text(d)} for d in index.docs_with(error["pred_pair"], limit=limit)]
    return {**error, "docs": docs}
