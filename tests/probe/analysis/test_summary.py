"""The summary record: `build_summary` writes what the run and `ltprobe eval`/`rag` wrote before the
record existed (same keys, same order, same numbers), and `Summary` reads and writes it unchanged."""

from __future__ import annotations

import json
import random

import pytest

from entity_linking.io import write_jsonl
from probe.analysis import Summary, add_learning_views, build_summary, diagnose, summarize_models, truth_agreement
from probe.evaluation import adaptive_retrieval, adaptive_retrieval_by_relation


def _world(n=120, seed=0):
    rng = random.Random(seed)
    counts, qa = [], []
    for i in range(n):
        count = int(10 ** rng.uniform(0, 3)) if i % 7 else 0
        counts.append({"id": str(i), "count": count, "status": "ok" if i % 11 else "no_a_entity",
                       "q_count": count + 1, "a_count": count + 2, "pair": ["Q1", "Q2"]})
        qa.append({"id": str(i), "question": f"q{i}?", "answers": ["a"], "relation": ["born", "works"][i % 2],
                   "q_popularity": rng.randint(1, 1000)})
    return counts, qa


def _predictions(models, settings, counts, seed=0):
    rng = random.Random(seed)
    out = []
    for m, model in enumerate(models):
        for s, setting in enumerate(settings):
            for c in counts:
                p = min(0.95, 0.1 + 0.2 * s + 0.1 * m + 0.1 * (c["count"] or 0) ** 0.3)
                out.append({"id": c["id"], "setting": setting, "model": model, "prompt": "", "completion": "",
                            "correct": rng.random() < p, "gold_logprob": -rng.random() * 5})
    return out


def _before(predictions, counts, *, model, index, parameters=None, retrieval=None, qa=None, truth=None,
            diagnostics=False, seed=0, n_boot=200):
    """How the run (probe/pipeline/_run.py write_summary) built summary.json before `Summary`."""
    predictions = list(predictions)
    models = list(dict.fromkeys(str(p["model"]) for p in predictions))
    if model in models:
        models.remove(model)
        models.insert(0, model)
        predictions.sort(key=lambda p: models.index(str(p["model"])))
    primary = [p for p in predictions if str(p["model"]) == models[0]] if predictions else []
    summary = {"model": model, "index": index, "n_questions": len({p["id"] for p in primary})}
    summary.update(summarize_models(predictions, counts, parameters=parameters if len(models) > 1 else None,
                                    min_bucket=20, n_boot=n_boot, seed=seed, max_count=100, target_accuracy=0.5))
    if retrieval is not None:
        summary["retrieval"] = retrieval
    by_setting = {s: [p for p in primary if p["setting"] == s] for s in ("closed_book", "rag")}
    if all(by_setting.values()):
        summary["adaptive_retrieval"] = adaptive_retrieval(by_setting["closed_book"], by_setting["rag"], counts,
                                                           seed=seed)
        if qa is not None:
            per_relation = adaptive_retrieval_by_relation(by_setting["closed_book"], by_setting["rag"], counts, qa,
                                                          seed=seed)
            if per_relation is not None:
                summary["adaptive_retrieval_by_relation"] = per_relation
    if truth is not None:
        summary["truth_agreement"] = truth_agreement(counts, truth)
    add_learning_views(summary, predictions, counts, primary=models[0] if models else model, min_bucket=20,
                       n_boot=n_boot, seed=seed)
    if diagnostics:
        summary["diagnostics"] = diagnose(summary, trained_world=True, min_bucket=20)
    return summary


@pytest.mark.parametrize("models, settings", [
    (["m"], ["closed_book"]),
    (["m"], ["closed_book", "rag", "oracle"]),
    (["big", "small"], ["closed_book", "rag"]),
])
def test_build_summary_writes_what_the_stages_wrote(models, settings, tmp_path):
    counts, qa = _world()
    truth = tmp_path / "truth.jsonl"
    write_jsonl(truth, [{"id": c["id"], "count": c["count"] if int(c["id"]) % 5 else -1} for c in counts])
    predictions = _predictions(models, settings, counts)
    parameters = {"big": 2e6, "small": 1e5}
    retrieval = {"recall_at_k": {"overall": {"1": 0.5}}} if "rag" in settings else None
    options = dict(model=models[0], index="embedded", retrieval=retrieval, qa=qa, truth=truth)
    expected = _before(predictions, counts, parameters=parameters, diagnostics=True, **options)
    record = build_summary(predictions, counts, parameters=lambda names: parameters, diagnostics=True,
                           trained_world=True, n_boot=200, target_accuracy=0.5, **options)
    assert isinstance(record, Summary)
    text = json.dumps(expected, ensure_ascii=False, indent=2) + "\n"
    assert record.to_json() == text
    assert list(record.to_dict()) == list(expected)
    assert Summary.from_json(text).to_json() == text
    record.write(tmp_path / "summary.json")
    assert (tmp_path / "summary.json").read_text(encoding="utf-8") == text
    assert Summary.read(tmp_path / "summary.json") == record


def test_summary_keeps_optional_nulls_and_unknown_keys():
    counts, _ = _world(40)
    predictions = _predictions(["a", "b"], ["closed_book", "oracle"], counts)
    data = build_summary(predictions, counts, model="a", n_boot=50).to_dict()
    assert data["index"] is None and "retrieval" not in data and "diagnostics" not in data
    assert "count_dependence_oracle" in data and "count_dependence_reduction_oracle" in data
    data["scaling"] = None  # checkpoints of one model: scaling is written as null
    data["note_from_elsewhere"] = {"x": 1}
    assert Summary.from_dict(data).to_dict() == data
    assert list(Summary.from_dict(data).to_dict()) == list(data)
