"""Relevant documents seen by training step: counts along a training order (issue 19).

A training order says which corpus documents a model was trained on at each optimizer step.
Two inputs:

- the `train_order.npz` that `ltprobe train` writes into its model folder (`ids`: document
  ids; `positions`: indices into `ids` in training order; `step_offsets`: the documents of
  step s are `positions[step_offsets[s]:step_offsets[s + 1]]`);
- a `.npy` of document numbers by position (the n-th document of the index, i.e. of the
  corpus in the order it was indexed), as Pythia and OLMo publish their orders, with
  `docs_per_step` documents (or fixed-length instances) per optimizer step.

`count_by_step` gives, per QA pair and for each requested step S, the relevant documents
(those holding the counted question/answer entity pair, as `ltprobe count`) trained on
*before* step S, i.e. in steps 0..S-1: what a checkpoint saved after S steps has seen.
`seen` counts distinct documents, `exposures` every time one was trained on (repeats across
epochs included; a document split over several rows counts once per row).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from entity_linking.io import InputError, SkipCounter, write_jsonl


def parse_steps(text: str | Sequence[int], option: str = "--steps") -> list[int]:
    """`"100,200,300"` (or a list) -> `[100, 200, 300]`: non-negative, sorted, without repeats."""
    try:
        items = str(text).split(",") if isinstance(text, str) else list(text)
        steps = sorted({int(x) for x in items if str(x).strip()})
    except ValueError:
        raise InputError(f"{option} {text!r}: expected step numbers separated by commas, e.g. 500,1000") from None
    if not steps or steps[0] < 0:
        raise InputError(f"{option} {text!r}: expected step numbers >= 0 separated by commas, e.g. 500,1000")
    return steps


@dataclass
class TrainingOrder:
    """Which documents were trained on at which step (see the module docstring)."""

    positions: np.ndarray
    """Document indices in training order (into `ids`, or index document numbers when `ids` is None)."""
    step_offsets: np.ndarray
    """`positions[step_offsets[s]:step_offsets[s + 1]]` are step s's documents; length steps + 1."""
    ids: np.ndarray | None = None
    """Document ids the positions index, or None: positions are the index's document numbers."""

    @property
    def steps(self) -> int:
        return len(self.step_offsets) - 1

    def _by_document(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(steps sorted by document then step, start offset of each document in it, documents)."""
        cached = getattr(self, "_cache", None)
        if cached is None:
            step_of = np.repeat(np.arange(self.steps, dtype=np.int64), np.diff(self.step_offsets))
            n_docs = len(self.ids) if self.ids is not None else int(self.positions.max(initial=-1)) + 1
            order = np.lexsort((step_of, self.positions))
            starts = np.searchsorted(self.positions[order], np.arange(n_docs + 1))
            cached = self._cache = (step_of[order], starts, n_docs)
        return cached


def load_order(path: str | os.PathLike, *, docs_per_step: int | None = None) -> TrainingOrder:
    """A training order from `train_order.npz` (or a model folder holding one) or from a `.npy`
    of document numbers with `docs_per_step`."""
    path = Path(path)
    if path.is_dir():
        path = path / "train_order.npz"
    if not path.exists():
        raise InputError(f"{path}: no such training-order file (models trained by `ltprobe train` write "
                         "train_order.npz into their folder)")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a .npy/.npz training order ({exc})") from None
    if isinstance(data, np.ndarray):  # a .npy of document numbers by position
        if docs_per_step is None or docs_per_step < 1:
            raise InputError(f"{path}: a .npy order needs the documents per step (--docs-per-step N)")
        if data.ndim != 1 or not np.issubdtype(data.dtype, np.integer) or (data.size and data.min() < 0):
            raise InputError(f"{path}: expected a 1-d array of non-negative document numbers, "
                             f"got shape {data.shape} of {data.dtype}")
        offsets = np.arange(0, len(data) + docs_per_step, docs_per_step, dtype=np.int64)
        offsets[-1] = min(offsets[-1], len(data))
        return TrainingOrder(data.astype(np.int64), offsets)
    missing = {"positions", "step_offsets", "ids"} - set(data.files)
    if missing:
        raise InputError(f"{path}: a training-order .npz needs positions, step_offsets and ids "
                         f"(missing: {', '.join(sorted(missing))})")
    order = TrainingOrder(data["positions"].astype(np.int64), data["step_offsets"].astype(np.int64),
                          data["ids"].astype(str))
    if len(order.step_offsets) < 1 or order.step_offsets[-1] != len(order.positions) or \
            (order.positions.size and (order.positions.min() < 0 or order.positions.max() >= len(order.ids))):
        raise InputError(f"{path}: positions, step_offsets and ids do not fit together (damaged file?)")
    return order


def count_by_step(index: Any, qa_entities: Iterable[dict[str, Any]] | str | os.PathLike,
                  order: TrainingOrder, steps: Sequence[int], *,
                  stoplist: Iterable[str] | str | os.PathLike | None = None, on_error: str = "fail",
                  skips: SkipCounter | None = None, progress: bool = False) -> Iterator[dict[str, Any]]:
    """Per QA pair: `{"id", "status", "pair", "count", "steps", "seen", "exposures"}`.

    `count` and `pair` are `ltprobe count`'s (the whole index); `seen[i]` / `exposures[i]` the
    relevant documents trained on before step `steps[i]` (the maximum over the QA pair's
    (question, answer) entity pairs at that step). Steps past the end of the order count
    everything trained on. Documents of the index that the order never names were not trained on.
    """
    from entity_linking.logs import progress_bar
    from indexes._counts import _count_batch, linked, load_stoplist, read_qa_entities

    steps = parse_steps(list(steps))
    if isinstance(qa_entities, (str, os.PathLike)):
        qa_entities = read_qa_entities(qa_entities, on_error=on_error, skips=skips)
    if isinstance(stoplist, (str, os.PathLike)):
        stoplist = load_stoplist(stoplist)
    stop = frozenset(stoplist or ())
    sorted_steps, starts, n_docs = order._by_document()
    lookup = {str(d): i for i, d in enumerate(order.ids)} if order.ids is not None else None
    if lookup is None and not hasattr(index, "doc_numbers"):
        raise InputError("a .npy training order names documents by number: it needs an embedded index")
    bounds = np.minimum(np.asarray(steps, dtype=np.int64), order.steps)

    def tally(doc_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if lookup is not None:
            numbers = [lookup.get(d) for d in doc_ids]
        else:
            numbers = index.doc_numbers(doc_ids)
        seen = np.zeros(len(steps), dtype=np.int64)
        exposures = np.zeros(len(steps), dtype=np.int64)
        for d in numbers:
            if d is None or d >= n_docs:
                continue
            hits = np.searchsorted(sorted_steps[starts[d]:starts[d + 1]], bounds, side="left")
            exposures += hits
            seen += hits > 0
        return seen, exposures

    bar = progress_bar(desc="count by step", unit=" qa", enabled=progress)
    try:
        for record in map(linked, qa_entities):
            counted = _count_batch(index, [record], stop)[0]
            result = {"id": counted.id, "status": counted.status, "pair": counted.pair,
                      "count": counted.count, "steps": steps, "seen": None, "exposures": None}
            if counted.status == "ok":
                q = [e for e in dict.fromkeys(record.q_entities) if e not in stop]
                a = [e for e in dict.fromkeys(record.a_entities) if e not in stop]
                best_seen = np.zeros(len(steps), dtype=np.int64)
                best_exp = np.zeros(len(steps), dtype=np.int64)
                for qe in q:
                    for ae in a:
                        seen, exposures = tally(index.docs_with([qe, ae], limit=None) if qe != ae
                                                else index.docs_with([qe], limit=None))
                        best_seen = np.maximum(best_seen, seen)
                        best_exp = np.maximum(best_exp, exposures)
                result["seen"] = best_seen.tolist()
                result["exposures"] = best_exp.tolist()
            bar.update(1)
            yield result
    finally:
        bar.close()


def write_counts_by_step(index: Any, qa_entities: str | os.PathLike, order: TrainingOrder,
                         steps: Sequence[int], out: str | os.PathLike, *,
                         stoplist: Iterable[str] | str | os.PathLike | None = None,
                         on_error: str = "fail", progress: bool = True) -> dict[str, Any]:
    """Write `count_by_step`'s records to `out` (JSONL, atomically); return `{"n", "skipped"}`."""
    skips = SkipCounter()
    n = write_jsonl(out, count_by_step(index, qa_entities, order, steps, stoplist=stoplist, on_error=on_error,
                                       skips=skips, progress=progress))
    return {"n": n, "skipped": skips.skipped, "skipped_summary": skips.summary() if skips.skipped else None}


def seen_table(path: str | os.PathLike) -> dict[str, dict[int, int]]:
    """`counts_by_step.jsonl` -> {qa id: {step: relevant documents seen before it}} (linked pairs only)."""
    from entity_linking.io import read_records

    table: dict[str, dict[int, int]] = {}
    for _, record in read_records(path, required={"id": (str, int)}):
        if record.get("seen") is not None:
            table[str(record["id"])] = dict(zip((int(s) for s in record["steps"]), (int(v) for v in record["seen"])))
    return table
