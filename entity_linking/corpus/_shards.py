"""What both executors (the local process pool in `_link` and Ray in `_ray`) share: the worker count,
the worker's linker and its batches, the shard files and which of them are complete, and the one
loop that writes linked results into shards and their manifests."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from entity_linking.corpus._reader import document
from entity_linking.faults import fault_point
from entity_linking.io import InputError, OnError, SkipCounter, atomic_write, write_json

WORKER_STATE: dict[str, Any] = {}


def worker_count(workers: int | None) -> int:
    """`workers`, at least 1; None: the cores this process may use."""
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, int(workers))


def init_worker(kb_path: str | None, options: dict[str, Any], settings: dict[str, Any]) -> None:
    """Pool initializer. After a fork the parent's linker is already here (shared pages);
    a spawned worker loads the saved knowledge base once."""
    if "linker" not in WORKER_STATE:
        from entity_linking._linker import Linker
        from entity_linking.kb import KnowledgeBase

        WORKER_STATE["linker"] = Linker(KnowledgeBase.load(kb_path).prepare(), **options)
    WORKER_STATE["settings"] = settings


def link_batch(batch: list[tuple[str, str, int, Any]]) -> list[tuple[str | None, Any]]:
    """Link a batch in a worker: `(doc_id, entities)` per good item, `(None, "where: reason")`
    per bad one."""
    linker = WORKER_STATE["linker"]
    settings = WORKER_STATE["settings"]
    out: list[tuple[str | None, Any]] = []
    for kind, name, position, payload in batch:
        try:
            doc_id, text = document(kind, name, position, payload, settings)
        except ValueError as exc:
            out.append((None, f"{record_where(settings, name)}:{position}: {exc}"))
            continue
        out.append((doc_id, linker.link_ids(text)))
    return out


def record_where(settings: dict[str, Any], name: str) -> str:
    """The path a bad record's file is named by in errors (`settings["paths"]`, else its name)."""
    return settings["paths"].get(name, name)


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.jsonl"


def is_complete(out_dir: Path, shard: int) -> bool:
    """True when shard `shard` was completed (its manifest is written last)."""
    return (out_dir / shard_name(shard)).with_suffix(".json").exists()


def complete_shards(out_dir: Path) -> list[int]:
    """The shards of `out_dir` that are complete (a re-run leaves their records out), in order."""
    return sorted(int(p.name[6:11]) for p in out_dir.glob("shard-?????.json"))


class _ShardWriter:
    def __init__(self, out_dir: Path, on_error: OnError):
        self.out_dir = out_dir
        self.on_error = on_error
        self.shard: int | None = None
        self.manifests: list[dict[str, Any]] = []
        self._ctx = None

    def open(self, shard: int) -> None:
        self.close()
        self.shard = shard
        self.records = self.documents = self.links = 0
        self.skips = SkipCounter()
        self.started = time.perf_counter()
        self._ctx = atomic_write(self.out_dir / shard_name(shard))
        self.handle = self._ctx.__enter__()

    def write(self, results: list[tuple[str | None, Any]]) -> int:
        lines = []
        for doc_id, value in results:
            self.records += 1
            if doc_id is None:
                if self.on_error == "fail":
                    raise InputError(value)
                self.skips.add(value)
                continue
            self.documents += 1
            self.links += len(value)
            lines.append(json.dumps({"id": doc_id, "entities": value}, ensure_ascii=False))
        if lines:
            self.handle.write("\n".join(lines) + "\n")
            fault_point("link-corpus:batch")  # the crash tests: killed inside a shard
        return len(results)

    def close(self) -> None:
        if self._ctx is None:
            return
        self._ctx.__exit__(None, None, None)
        self._ctx = None
        seconds = time.perf_counter() - self.started
        manifest = {"shard": self.shard, "file": shard_name(self.shard), "records": self.records,
                    "documents": self.documents, "skipped": self.skips.skipped,
                    "skip_examples": self.skips.examples, "entity_links": self.links,
                    "seconds": round(seconds, 3),
                    "docs_per_s": round(self.documents / seconds, 1) if seconds > 0 else None}
        write_json((self.out_dir / shard_name(self.shard)).with_suffix(".json"), manifest)

    def abort(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(InputError, InputError("aborted"), None)
            self._ctx = None


def collect_manifests(out_dir: Path, shards: Iterable[int]) -> list[dict[str, Any]]:
    return [json.loads((out_dir / shard_name(k)).with_suffix(".json").read_text()) for k in sorted(set(shards))]


def write_shards(results: Iterable[tuple[int, list[tuple[str | None, Any]]]], out_dir: Path, *,
                 on_error: OnError, skips: SkipCounter, progress: bool, desc: str) -> tuple[list[int], int]:
    """Write `(shard, [(doc_id, entities) or (None, "FILE:LINE: reason")])` results, in corpus
    order, into shards and their manifests (both executors). Results for a shard that was
    complete before this run are dropped. Returns the shards seen and the records linked now."""
    from entity_linking.logs import progress_bar

    bar = progress_bar(desc=desc, unit=" docs", unit_scale=True, enabled=progress, dynamic_ncols=True)
    writer = _ShardWriter(out_dir, on_error)
    seen: list[int] = []
    linked_now = 0
    try:
        for shard, linked in results:
            if not seen or seen[-1] != shard:
                seen.append(shard)
            if writer.shard != shard:
                if is_complete(out_dir, shard):
                    continue  # complete in an earlier run
                writer.open(shard)
            linked_now += len(linked)
            bar.update(writer.write(linked))
            if writer.skips.skipped or skips.skipped:
                bar.set_postfix(skipped=writer.skips.skipped + skips.skipped, refresh=False)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    return seen, linked_now
