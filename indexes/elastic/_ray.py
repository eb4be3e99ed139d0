"""`build_index(..., backend="elasticsearch", executor="ray")`: bulk ingestion from Ray workers.

One Ray Data task reads the corpus joined with its linked shards (`ingestion_source`, the same
reader as the single-process path, so ids, `seq`, skipped records and errors are the same) and
emits blocks of documents; a pool of `workers` actors, each with its own client (credentials
from the environment or config file *of the worker*, exactly as `connect` reads them in one
process), turns each block into bulk actions with `BulkActions` and sends them with
`bulk_index` (parallel bulk streams, retries with backoff). Documents are keyed by id, so a
re-run after a failure completes the index without duplicates. Throughput grows with the
actors until the cluster's shards or the one reading task (JSON parsing only) are the limit;
this is not benchmarked here, where the only server is a single-process stand-in.

Errors travel back as rows rather than exceptions, so the driver raises the same `InputError`
as the single-process path instead of a Ray traceback.

An actor on the driver's machine ends itself within a second of the driver's death: in Ray's
local mode a SIGKILLed driver takes the GCS with it, nobody is left to stop the actors, and an
actor in the middle of its block went on sending bulk requests for the killed command
(tests/faults/test_ray_kill_resume.py).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from itertools import chain
from typing import Any

from entity_linking.io import InputError, SkipCounter

BLOCK = 2000
"""Documents per block handed to one actor (a few bulk requests)."""

_COLUMNS = ("kind", "seq", "doc_id", "entities", "text")


def _block(rows: list[tuple]) -> dict[str, list]:
    return {name: [row[i] for row in rows] for i, name in enumerate(_COLUMNS)}


def _read(batch: dict[str, Any], *, corpus: str, linked_dir: str | None, passages: str | None,
          on_error: str, block: int, fields: dict[str, Any] | None) -> Iterator[dict[str, list]]:
    """map_batches (a generator): the corpus as blocks of rows. kind "doc" is a document whose
    passages come from a separate collection, "doc+passages" one whose text is also cut into
    passages, "passages" a record of that collection; the last row ("skips", or "error" on a
    bad record with on_error="fail") carries the reader's skip counts or the error."""
    from indexes.elastic._client import ingestion_source

    skips = SkipCounter()
    rows: list[tuple] = []
    try:
        documents, texts = ingestion_source(corpus, linked_dir, passages, on_error=on_error, skips=skips,
                                            fields=fields)
        kind = "doc" if passages is not None else "doc+passages"
        for seq, doc_id, entities, text in documents:
            rows.append((kind, seq, doc_id, json.dumps(entities, ensure_ascii=False), text))
            if len(rows) >= block:
                yield _block(rows)
                rows = []
        if passages is not None:
            for doc_id, text in texts:
                rows.append(("passages", -1, doc_id, "[]", text))
                if len(rows) >= block:
                    yield _block(rows)
                    rows = []
    except InputError as exc:
        rows.append(("error", -1, "", "[]", str(exc)))
    else:
        rows.append(("skips", -1, "", "[]", json.dumps({"skipped": skips.skipped, "examples": skips.examples})))
    yield _block(rows)


def _shared_path(value: Any) -> str | None:
    """A local path made absolute; URLs, globs' patterns and `hf:` names as given."""
    if value is None:
        return None
    text = str(value)
    if "://" in text or text.startswith("hf:"):
        return text
    return os.path.abspath(text)


def _exit_with_driver(pid: int, host: str, every: float = 0.5) -> None:
    """On the driver's machine: end this process (`os._exit`) soon after process `pid` is gone."""
    if socket.gethostname() != host or pid == os.getpid():
        return

    def watch() -> None:
        while True:
            time.sleep(every)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # alive, under another user
                pass

    threading.Thread(target=watch, name="ltprobe-driver-watch", daemon=True).start()


class _IndexActor:
    """One Elasticsearch client per actor; bulk-indexes the blocks it is given."""

    def __init__(self, es_url: str, config: str | None, es_index: str, passage_words: int, bulk_workers: int,
                 driver: tuple[int, str] | None = None):
        from indexes.elastic._client import connect

        if driver is not None:
            _exit_with_driver(*driver)
        self.error = ""
        try:
            self.client = connect(es_url, config)
        except InputError as exc:
            self.client, self.error = None, str(exc)
        self.es_index = es_index
        self.passage_words = passage_words
        self.bulk_workers = bulk_workers

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from indexes.elastic._client import BulkActions, bulk_index

        rows = list(zip(*(batch[name].tolist() for name in _COLUMNS)))
        notes = [text for kind, _, _, _, text in rows if kind in ("skips", "error")]
        errors = [text for kind, _, _, _, text in rows if kind == "error"]
        actions = BulkActions(self.es_index, self.passage_words)
        documents = [(int(seq), doc_id, json.loads(entities), text)
                     for kind, seq, doc_id, entities, text in rows if kind.startswith("doc")]
        texts = [(doc_id, text) for kind, _, doc_id, _, text in rows if kind in ("doc+passages", "passages")]
        failed: list[tuple[str, str]] = []
        if self.error:
            errors.append(self.error)
        elif not errors and (documents or texts):
            try:
                _, failed = bulk_index(self.client, chain(actions.documents(documents), actions.passages(texts)),
                                       workers=self.bulk_workers)
            except InputError as exc:
                errors.append(str(exc))
        return {**{key: [value] for key, value in actions.counts.items()},
                "failed": [json.dumps(failed, ensure_ascii=False)],
                "skips": [json.dumps([json.loads(n) for n in notes if n.startswith("{")])],
                "error": [errors[0] if errors else ""]}

    def __del__(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()


def ingest_ray(corpus: Any, linked_dir: Any, passages: Any, *, es_url: str, es_index: str,
               config: Any, passage_words: int, on_error: str, skips: SkipCounter, bulk_workers: int,
               workers: int | None, progress: bool, fields: dict[str, Any] | None = None
               ) -> tuple[dict[str, int], list[tuple[str, str]], int]:
    """Send the corpus to `es_index` from `workers` Ray actors (into indices that exist);
    return `(counts, failed ids with reasons, workers)`. Bad records are added to `skips`."""
    from entity_linking import start_ray
    from entity_linking.logs import progress_bar

    ray, workers = start_ray(workers)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    # paths as seen from the workers: absolute (a cluster needs them on shared storage)
    where = {name: _shared_path(value)
             for name, value in (("corpus", corpus), ("linked_dir", linked_dir), ("passages", passages))}
    config = str(os.path.abspath(config)) if config is not None else None
    # the reader takes a small CPU share so that the actors, holding the other CPUs, never starve it
    blocks = ray.data.from_items([{"part": 0}]).map_batches(
        _read, batch_size=1, fn_kwargs={**where, "on_error": on_error, "block": BLOCK, "fields": fields},
        num_cpus=0.1)
    results = blocks.map_batches(
        _IndexActor, fn_constructor_args=(es_url, config, es_index, passage_words, bulk_workers,
                                          (os.getpid(), socket.gethostname())),
        batch_size=None, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=0.8,
        batch_format="numpy")
    counts = {"n_docs": 0, "n_mentions": 0, "n_passages": 0}
    failed: list[tuple[str, str]] = []
    error = ""
    with progress_bar(desc="index (ray)", unit=" docs", enabled=progress) as bar:
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            for i in range(len(batch["error"])):
                for key in counts:
                    counts[key] += int(batch[key][i])
                bar.update(int(batch["n_docs"][i]))
                failed.extend(tuple(f) for f in json.loads(str(batch["failed"][i])))
                for note in json.loads(str(batch["skips"][i])):
                    for message in note["examples"]:
                        skips.add(message)
                    skips.skipped += note["skipped"] - len(note["examples"])
                error = error or str(batch["error"][i])
    if error:
        raise InputError(error)
    return counts, failed, workers
