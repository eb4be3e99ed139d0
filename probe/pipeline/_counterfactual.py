"""The causal check of Kandpal et al. (2023), on a controlled world: remove the relevant
documents of sampled questions from the corpus, retrain the model with the same recipe, and
see how much its accuracy on those questions falls, bucket by original count.

A control sample (questions none of whose relevant documents were removed) measures how much
accuracy moves from retraining alone. Everything reuses the run's own stages: the index says
which documents are relevant, `train_model` retrains with the run's TrainConfig and seed, and
`evaluate_model` evaluates with the run's evaluation settings, so both models see the same
prompts.

The retraining keeps everything but the removed documents: the same tokenizer (trained on the
whole corpus, as the original study kept its tokenizer) and every kept document in the same row
at the same step. A retrain from a reshuffled reduced corpus was tried first: on the demo the
small model then lost its question-answering skill on kept facts too (control drop +0.23),
because that skill emerges late in training and a different data order can miss it; pairing
the two runs this closely leaves the removal as the only difference.

Output: `RUN/counterfactual/` (removed_docs.txt, model, predictions) and
`RUN/counterfactual.json`.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from entity_linking.io import InputError, read_records, write_json, write_jsonl

logger = logging.getLogger(__name__)


def counterfactual(run_dir: str | Path, *, per_bucket: int = 30, control: int | None = None,
                   seed: int = 0, n_boot: int = 1000) -> dict[str, Any]:
    """Run the experiment on a finished run of a controlled world and return (and write)
    `counterfactual.json`:

    `{"buckets": [{"lo", "hi", "n", "docs_removed", "before", "after", "drop", "drop_ci"}],
    "control": {"n", "before", "after", "drop", "drop_ci"}, ...}` with drop = before - after
    (closed-book accuracy of the original and the retrained model on the same questions) and a
    paired bootstrap 95% interval. `per_bucket` questions are sampled from each count bucket
    (fewer where a bucket is smaller); the control takes `control` questions (default
    `per_bucket`) from each bucket with documents, among the questions whose relevant documents
    all stay in the corpus (a bucket where none do adds none: on the demo, every 100+ question
    shares documents with a sampled one).
    """
    from indexes import open_index
    from probe.analysis import bucket_of
    from probe.pipeline._run import evaluate_model, index_dir_of
    from probe.report import write_report
    from probe.world import TRAIN_MARKER, TrainConfig, train_model, world_training_files

    run = Path(run_dir)
    manifest = run / "manifest.json"
    if not manifest.exists() or not (run / "predictions.jsonl").exists():
        raise InputError(f"{run}: not a finished run folder (run `ltprobe run` first)")
    config = json.loads(manifest.read_text(encoding="utf-8"))["config"]
    world = run / "world"
    if config.get("world") is None or config["model"].get("train") is None or not world.is_dir():
        raise InputError(f"{run}: the counterfactual needs a run on a generated world with a model "
                         "trained by the run (config keys world and model.train)")
    if per_bucket < 1:
        raise InputError("counterfactual: --per-bucket must be at least 1")
    control = per_bucket if control is None else control

    counts = {r["id"]: r for _, r in read_records(run / "counts.jsonl")}
    before = {p["id"]: bool(p["correct"]) for _, p in read_records(run / "predictions.jsonl")
              if p["setting"] == "closed_book"}
    eligible = sorted(i for i in before if counts.get(i, {}).get("status") == "ok")
    rng = random.Random(seed)
    by_bucket: dict[tuple[int, int], list[str]] = {}
    for qid in eligible:
        by_bucket.setdefault(bucket_of(counts[qid]["count"]), []).append(qid)
    sampled = {b: rng.sample(ids, min(per_bucket, len(ids))) for b, ids in sorted(by_bucket.items())}

    index = open_index(index_dir_of(run, config))
    try:
        relevant = {qid: set(index.docs_with(counts[qid]["pair"])) for qid in eligible}
    finally:
        index.close()
    removed_by_bucket = {b: set().union(*(relevant[q] for q in ids)) if ids else set()
                         for b, ids in sampled.items()}
    removed = set().union(*removed_by_bucket.values())
    chosen = {q for ids in sampled.values() for q in ids}
    # The control is matched by count bucket: `control` questions from each bucket with
    # documents, among those none of whose relevant documents was removed.
    controls: list[str] = []
    for _, ids in sorted(by_bucket.items()):
        kept = [q for q in ids if q not in chosen and counts[q]["count"] > 0 and not relevant[q] & removed]
        if kept:
            controls += rng.sample(kept, min(control, len(kept)))
    if not controls:
        logger.warning("no question keeps all its documents: the control is empty")

    out = run / "counterfactual"
    out.mkdir(parents=True, exist_ok=True)
    (out / "removed_docs.txt").write_text("".join(f"{d}\n" for d in sorted(removed)), encoding="utf-8")
    # The same recipe, seed, tokenizer and row order as the run's model: only the removed
    # documents differ (see train_model's `drop`).
    model = train_model(out / "model", world_training_files(world),
                        TrainConfig(**config["model"]["train"]), drop=removed)
    qa = [r for _, r in read_records(run / "qa.jsonl")]
    after_path = out / "predictions.jsonl"
    # The completion cache is keyed by the model's path: a model trained after the predictions
    # (another --per-bucket or --seed) makes them and the cache stale.
    if after_path.exists() and after_path.stat().st_mtime < (model / TRAIN_MARKER).stat().st_mtime:
        after_path.unlink()
        shutil.rmtree(out / "cache", ignore_errors=True)
    if not after_path.exists():
        write_jsonl(after_path, evaluate_model(config, str(model), qa, cache_dir=out / "cache",
                                               settings=["closed_book"]))
    after = {p["id"]: bool(p["correct"]) for _, p in read_records(after_path)}

    result = {
        "buckets": [dict(lo=b[0], hi=b[1], docs_removed=len(removed_by_bucket[b]),
                         **_paired(ids, before, after, n_boot, seed)) for b, ids in sampled.items()],
        "control": _paired(controls, before, after, n_boot, seed),
        "docs_removed": len(removed),
        "per_bucket": per_bucket,
        "seed": seed,
        "sampled": {f"{b[0]}-{b[1]}": ids for b, ids in sampled.items()},
        "control_ids": controls,
    }
    write_json(run / "counterfactual.json", result)
    write_report(run)
    return result


def _paired(ids: list[str], before: dict[str, bool], after: dict[str, bool], n_boot: int,
            seed: int) -> dict[str, Any]:
    """Accuracy before and after on the same questions, the drop and its paired bootstrap CI."""
    b = np.array([before[i] for i in ids], dtype=float)
    a = np.array([after[i] for i in ids], dtype=float)
    if not len(ids):
        return {"n": 0, "before": None, "after": None, "drop": None, "drop_ci": None}
    diff = b - a
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    return {"n": len(ids), "before": float(b.mean()), "after": float(a.mean()), "drop": float(diff.mean()),
            "drop_ci": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]}

