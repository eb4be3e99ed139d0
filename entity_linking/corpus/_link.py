"""Linking whole corpora into sharded per-document entity sets, and reading them back.

Output folder `LINKED_DIR/` (format 1):

- `shard-00000.jsonl`, `shard-00001.jsonl`, ...: `{"id": doc_id, "entities": [ids]}` per
  document, in corpus order; `entities` is the set of linked entity ids in order of first
  mention. Shard k holds corpus records `k * shard_size` to `(k + 1) * shard_size - 1`
  (blank lines are not records; skipped bad records leave no line).
- `shard-00000.json`, ...: the shard's manifest (records read, documents linked, skipped with
  the first reasons, entity links, seconds, documents/s). A shard is complete when its
  manifest exists; each shard file is written atomically, so after a crash a re-run skips the
  complete shards and redoes the rest.
- `manifest.json`: the job (settings, knowledge base, totals, shard list, `complete`).

The corpus is read by `entity_linking.corpus._reader.Corpus`, the reader of every stage, so document
ids are the same everywhere: the record's `id` field as a string when present, else
`"<name>:<line>"` (JSONL) or `"<name>:<row>"` (Parquet and data sets, 1-based), `<name>` the
file name, or the path relative to a folder or glob. `iter_linked` is the one reader of the
shards other packages use.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entity_linking.corpus._reader import DEFAULT_MAX_DOC_CHARS, Corpus
from entity_linking.corpus._shards import (
    WORKER_STATE,
    collect_manifests,
    init_worker,
    is_complete,
    link_batch,
    worker_count,
    write_shards,
)
from entity_linking.io import InputError, OnError, SkipCounter, write_json

FORMAT = "ltprobe-linked"
VERSION = 1
DEFAULT_SHARD_SIZE = 100_000


def iter_linked(linked_dir: str | os.PathLike) -> Iterator[tuple[str, list[str]]]:
    """Yield `(doc_id, entity_ids)` for every linked document, in corpus order.

    Raises `InputError` when the folder is not a complete linked corpus (a job that stopped
    part way: run `ltprobe link-corpus` again with the same arguments to finish it).
    """
    linked_dir = Path(linked_dir)
    manifest = read_manifest(linked_dir)
    if not manifest.get("complete"):
        raise InputError(f"{linked_dir}: linking is incomplete; run `ltprobe link-corpus` again "
                         "with the same arguments to finish it")
    for name in manifest["shards"]:
        path = linked_dir / name
        expected = _shard_documents(path)

        def damaged(reason: str) -> InputError:
            return InputError(f"{reason}; the shard is damaged: delete {path.name} and "
                              f"{path.with_suffix('.json').name} in {linked_dir} and run `ltprobe "
                              "link-corpus` (or `ltprobe run`) again with the same arguments: it "
                              "relinks that shard only")

        n = 0
        try:
            with open(path, "rb") as handle:
                for n, line in enumerate(handle, 1):
                    try:
                        record = json.loads(line)
                        doc_id, entities = record["id"], record["entities"]
                    except (ValueError, KeyError, TypeError) as exc:
                        raise damaged(f"{path}:{n}: not a linked record ({type(exc).__name__})") from None
                    if not isinstance(entities, list):
                        raise damaged(f"{path}:{n}: entities is not a list")
                    yield doc_id, entities
        except FileNotFoundError:
            raise damaged(f"{path}: missing") from None
        if expected is not None and n != expected:
            raise damaged(f"{path}: {n} documents, its manifest says {expected} (truncated?)")


def _shard_documents(shard: Path) -> int | None:
    """Documents in a shard according to its manifest (None when it does not say)."""
    try:
        value = json.loads(shard.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    documents = value.get("documents") if isinstance(value, dict) else None
    return documents if isinstance(documents, int) else None


def read_manifest(linked_dir: str | os.PathLike) -> dict[str, Any]:
    """The job manifest of a linked corpus folder (raises `InputError` if there is none)."""
    path = Path(linked_dir) / "manifest.json"
    if not path.exists():
        raise InputError(f"{linked_dir}: not a linked corpus (no manifest.json); "
                         "create it with `ltprobe link-corpus`")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: damaged ({exc}); link the corpus again with `ltprobe link-corpus`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise InputError(f"{path}: unsupported linked-corpus format; link the corpus again")
    return manifest


# -- the job --------------------------------------------------------------------------------

def link_corpus(corpus: Any, kb: Any, out_dir: str | os.PathLike, *, workers: int | None = None,
                on_error: OnError = "fail", text_field: str = "text", id_field: str = "id",
                split: str = "train", shard_size: int = DEFAULT_SHARD_SIZE, batch_size: int = 256,
                max_doc_chars: int = DEFAULT_MAX_DOC_CHARS, linker_options: dict[str, Any] | None = None,
                executor: str = "local", progress: bool = True) -> dict[str, Any]:
    """Link every document of a corpus; write shards and manifests to `out_dir` (see the module
    docstring); return the job manifest.

    `corpus`: a `.jsonl[.gz|.zst]` or `.parquet` file, a folder of them, a folder written by
    `datasets.Dataset.save_to_disk`, `"hf:NAME[:CONFIG]"` (or a bare dataset name) for a
    Hugging Face dataset streamed with `split`, or an in-memory iterable of dicts / dataset.
    `kb`: a `KnowledgeBase`, a saved KB folder or a `kb.jsonl`. `workers`: processes (default:
    all cores; 1 links in this process). The knowledge base is built once in this process and
    shared with the workers by fork (copy-on-write), never pickled per document.
    `on_error="skip"` skips bad records (non-UTF-8, broken JSON, missing/non-string/empty text,
    a document longer than `max_doc_chars`, a truncated compressed file) and counts them in
    the manifests; `"fail"` raises `InputError("FILE:LINE: reason")`. A re-run with the same
    settings resumes after the last complete shard. `executor="ray"` runs the same linking on
    Ray Data (see `entity_linking.corpus._ray`).
    """
    from entity_linking._linker import Linker
    from entity_linking.kb import KnowledgeBase

    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    if shard_size < 1 or batch_size < 1:
        raise ValueError("shard_size and batch_size must be positive")
    out_dir = Path(out_dir)
    kb_path = None
    if not isinstance(kb, KnowledgeBase):
        kb_path = str(kb)
        kb = KnowledgeBase.load(kb)
    elif kb.source and Path(kb.source).is_dir():
        kb_path = kb.source
    options = dict(linker_options or {})
    linker = Linker(kb.prepare(), **options)
    skips = SkipCounter()
    source = Corpus(corpus, split=split, on_error=on_error, skips=skips, text_field=text_field,
                    id_field=id_field, max_doc_chars=max_doc_chars)
    settings = source.settings
    config = {"corpus": source.describe(), "split": split, "text_field": text_field, "id_field": id_field,
              "shard_size": shard_size, "max_doc_chars": max_doc_chars,
              "kb": {"entities": len(kb)}, "linker": linker.options()}
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists():
        try:
            previous = json.loads(manifest_path.read_text())
        except ValueError:
            raise InputError(f"{manifest_path}: damaged; delete the folder {out_dir} and link again") from None
        if previous.get("config") != config:
            raise InputError(f"{out_dir}: holds a linked corpus made with other settings or inputs; "
                             "choose another --out or delete the folder")
        if previous.get("complete") and all((out_dir / name).exists() and (out_dir / name).with_suffix(".json").exists()
                                            for name in previous.get("shards", [])):
            return previous  # done in an earlier run
    manifest = {"format": FORMAT, "version": VERSION, "complete": False, "config": config,
                "kb_source": kb.source, "shards": [], "executor": executor}
    write_json(manifest_path, manifest)
    if executor == "ray":
        from entity_linking.corpus._ray import run_ray

        shard_manifests, linked_now = run_ray(
            source, linker, out_dir, settings=settings, shard_size=shard_size, batch_size=batch_size,
            workers=workers, kb_path=kb_path, on_error=on_error, progress=progress)
    elif executor == "local":
        shard_manifests, linked_now = _run_local(
            source, linker, out_dir, settings=settings, shard_size=shard_size, batch_size=batch_size,
            workers=workers, kb_path=kb_path, on_error=on_error, progress=progress)
    else:
        raise ValueError(f"executor must be 'local' or 'ray', not {executor!r}")
    return _finish(manifest_path, manifest, shard_manifests, skips, linked_now)


def _finish(manifest_path: Path, manifest: dict[str, Any], shards: list[dict[str, Any]],
            skips: SkipCounter, linked_now: int) -> dict[str, Any]:
    examples = [e for s in shards for e in s["skip_examples"]] + skips.examples
    manifest.update(
        complete=True,
        shards=[s["file"] for s in shards],
        records_read=sum(s["records"] for s in shards),
        documents_linked=sum(s["documents"] for s in shards),
        skipped=sum(s["skipped"] for s in shards) + skips.skipped,
        skip_examples=examples[:5],
        entity_links=sum(s["entity_links"] for s in shards),
        seconds=round(sum(s["seconds"] for s in shards), 3),
        records_linked_this_run=linked_now,  # less than records_read when a re-run resumed
    )
    write_json(manifest_path, manifest)
    return manifest


def _batches(source: Corpus, out_dir: Path, shard_size: int, batch_size: int
             ) -> Iterator[tuple[int, bool, list]]:
    """Yield `(shard, done, batch)`; items of complete shards come with done=True (not linked)."""
    shard = 0
    count = 0
    done = is_complete(out_dir, 0)
    batch: list = []
    for item in source.items():
        if count == shard_size:
            if batch or done:
                yield shard, done, batch
                batch = []
            shard += 1
            count = 0
            done = is_complete(out_dir, shard)
        count += 1
        if done:
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            yield shard, done, batch
            batch = []
    if batch or count:
        yield shard, done, batch


def _run_local(source: Corpus, linker: Any, out_dir: Path, *, settings: dict[str, Any], shard_size: int,
               batch_size: int, workers: int | None, kb_path: str | None, on_error: OnError,
               progress: bool) -> tuple[list[dict[str, Any]], int]:
    workers = worker_count(workers)
    pool = None
    try:
        if workers == 1:
            WORKER_STATE["linker"] = linker
            WORKER_STATE["settings"] = settings
            results = ((shard, link_batch(batch) if not done else []) for shard, done, batch
                       in _batches(source, out_dir, shard_size, batch_size))
        else:
            pool = _pool(workers, linker, kb_path, settings)
            results = ((shard, linked) for shard, _, linked
                       in _ordered(pool, _batches(source, out_dir, shard_size, batch_size), workers))
        seen, linked_now = write_shards(results, out_dir, on_error=on_error, skips=source.skips,
                                        progress=progress, desc="linking")
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
            import gc

            gc.unfreeze()  # frozen by _pool before forking its workers
        WORKER_STATE.pop("linker", None)
    return collect_manifests(out_dir, seen), linked_now


def _pool(workers: int, linker: Any, kb_path: str | None, settings: dict[str, Any]):
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods:
        # the children inherit the linker (automaton and entity arrays) as shared pages
        WORKER_STATE["linker"] = linker
        # the parent's objects leave the garbage collector's generations, so that a worker's
        # collections do not write to (and so copy) every page of the inherited heap
        import gc

        gc.collect()
        gc.freeze()
        context = multiprocessing.get_context("fork")
        return context.Pool(workers, init_worker, (None, linker.options(), settings))
    if kb_path is None:
        import tempfile

        kb_path = tempfile.mkdtemp(prefix="ltprobe-kb-")
        linker.kb.save(kb_path)
    context = multiprocessing.get_context("spawn")
    return context.Pool(workers, init_worker, (kb_path, linker.options(), settings))


def _ordered(pool, batches: Iterator[tuple[int, bool, list]], workers: int) -> Iterator[tuple[int, bool, list]]:
    """Like `pool.imap` but with a bounded number of batches in flight, so memory does not grow
    with the corpus (imap reads its whole input ahead)."""
    window: deque = deque()
    limit = 4 * workers
    for shard, done, batch in batches:
        if done:
            window.append((shard, done, None))
        else:
            window.append((shard, done, pool.apply_async(link_batch, (batch,))))
        while len(window) > limit or (window and window[0][2] is None):
            shard0, done0, result = window.popleft()
            yield shard0, done0, result.get() if result is not None else []
    while window:
        shard0, done0, result = window.popleft()
        yield shard0, done0, result.get() if result is not None else []
