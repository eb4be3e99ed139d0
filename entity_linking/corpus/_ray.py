"""`link_corpus(..., executor="ray")`: the same linking on Ray Data.

Files are streamed inside Ray Data tasks by the common corpus reader
(`entity_linking.corpus._reader.iter_file`: local paths, or object-store URLs through fsspec or
Arrow's filesystems), one task per file emitting blocks of records as it reads, so memory
stays bounded and line numbers, default document ids and error messages are exactly those of
the local executor (Ray's own readers drop the line numbers); a saved Hugging Face dataset goes
through `ray.data.from_huggingface`. Linking runs in actors that
load the saved knowledge base once each (`map_batches` with `concurrency=workers`). Results
come back in corpus order (`preserve_order`) to this process, which writes the same shards and
manifests as the local executor, byte for byte.

Ray connects to the cluster named by `RAY_ADDRESS` when set, else starts a local one with
`workers` CPUs. Resuming leaves the records of complete shards out before linking (a first
pass counts each file's records to place them). Limit: one file is read by one task, so split
large corpora into many files, as The Pile, C4 and Dolma already are.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entity_linking.corpus._reader import Corpus, iter_file
from entity_linking.corpus._shards import (
    WORKER_STATE,
    collect_manifests,
    complete_shards,
    init_worker,
    link_batch,
    record_where,
    worker_count,
    write_shards,
)
from entity_linking.io import InputError, OnError

RECORDS_PER_BLOCK = 4096
"""Records per block that a reading task emits (it streams its file, never holding it whole)."""


def _file_records(path: str, name: str, kind: str, text_field: str, id_field: str
                  ) -> Iterator[tuple[str, str, int, bytes, str]]:
    """One file through the common reader (`entity_linking.corpus._reader.iter_file`), with Parquet
    rows as JSON bytes so that every row's payload has one type."""
    for item_kind, item_name, position, payload, error in iter_file(path, name, kind, text_field=text_field,
                                                                    id_field=id_field):
        if item_kind == "rec":
            yield "raw", item_name, position, _record_bytes(payload), ""
        else:
            yield item_kind, item_name, position, payload, error


def _split_file(batch: dict[str, Any], text_field: str, id_field: str, shard_size: int,
                done: list[int]) -> Iterator[dict[str, list]]:
    """map_batches (a generator, one file per call): the file's records in blocks, with
    `index`, the record's place in the whole corpus when the file's `offset` is known (else
    -1). Records of the shards in `done` (complete in an earlier run) are left out, so they
    are neither sent on nor linked again."""
    path, name, kind = str(batch["path"][0]), str(batch["name"][0]), str(batch["kind"][0])
    offset = int(batch["offset"][0])
    skip = set(done)
    block: dict[str, list] = {key: [] for key in ("kind", "name", "position", "payload", "error", "index")}
    n = 0
    for kind, name, position, payload, error in _file_records(path, name, kind, text_field, id_field):
        index = -1
        if kind == "raw" and offset >= 0:
            index = offset + n
            n += 1
            if index // shard_size in skip:
                continue
        for key, value in zip(block, (kind, name, position, payload, error, index)):
            block[key].append(value)
        if len(block["kind"]) >= RECORDS_PER_BLOCK:
            yield block
            block = {key: [] for key in block}
    if block["kind"]:
        yield block


def _count_records(row: dict[str, Any], text_field: str, id_field: str) -> dict[str, Any]:
    """map: the number of records in a file (what the local executor counts for its shards)."""
    records = sum(1 for kind, *_ in _file_records(row["path"], row["name"], row["kind"], text_field, id_field)
                  if kind == "raw")
    return {"path": row["path"], "records": records}


def start_ray(workers: int | None) -> tuple[Any, int]:
    """Import Ray and connect: to the cluster named by `RAY_ADDRESS` when set, else to a local
    one with `workers` CPUs (default: this machine's cores), unless Ray is already initialized.
    Returns `(ray, workers)`."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'ray[data]'") from None
    workers = worker_count(workers)
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    return ray, workers


class _LinkActor:
    """Loads the knowledge base once per actor and links batches of records."""

    def __init__(self, kb_path: str, options: dict[str, Any], settings: dict[str, Any]):
        WORKER_STATE.pop("linker", None)  # an actor always loads its own (never one left in its process)
        init_worker(kb_path, options, settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        import json

        items = []
        for kind, name, position, payload, error in zip(batch["kind"], batch["name"], batch["position"],
                                                        batch["payload"], batch["error"]):
            items.append((str(kind), str(name), int(position), payload, str(error)))
        ids: list[str] = []
        values: list[str] = []
        kinds: list[str] = []
        linkable = [(k, n, p, bytes(v)) for k, n, p, v, _ in items if k != "error"]
        linked = iter(link_batch(linkable))
        for kind, name, position, _, error in items:
            if kind == "error":
                where = record_where(WORKER_STATE["settings"], name)
                kinds.append("source_error")
                ids.append("whole file" if position == 0 else "")  # position 0: the file itself is unusable
                values.append(f"{where}: {error}" if position == 0 else f"{where}:{position}: {error}")
                continue
            doc_id, value = next(linked)
            if doc_id is None:
                kinds.append("bad")
                ids.append("")
                values.append(value)
            else:
                kinds.append("ok")
                ids.append(doc_id)
                values.append(json.dumps(value, ensure_ascii=False))
        return {"status": kinds, "doc_id": ids, "value": values, "index": [int(i) for i in batch["index"]]}


def _plain(value: Any) -> Any:
    """Numpy batch values back to plain Python objects."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def run_ray(source: Corpus, linker: Any, out_dir: Path, *, settings: dict[str, Any], shard_size: int,
            batch_size: int, workers: int | None, kb_path: str | None, on_error: OnError,
            progress: bool) -> tuple[list[dict[str, Any]], int]:
    """Link on Ray; return the manifests of all shards and the number of records linked now."""
    import json

    ray, workers = start_ray(workers)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    # small blocks, so that the records of one big file are spread over all linking actors
    context.target_max_block_size = 1024 * 1024
    tmp = None
    if kb_path is None:
        tmp = tempfile.TemporaryDirectory(prefix="ltprobe-kb-")
        kb_path = tmp.name
        linker.kb.save(kb_path)

    files = [{"path": str(p.where) if "://" in str(p.where) else str(Path(p.where).resolve()),
              "name": p.name, "kind": p.kind} for p in source.parts if p.kind in ("jsonl", "parquet")]
    # Shards complete in an earlier run: their records are left out before linking, which needs
    # each record's place in the corpus, so a resumed job first counts the records of each file.
    done = complete_shards(out_dir)
    total = None
    if len(files) != len(source.parts):
        hf = [p.where for p in source.parts if p.kind == "hf_disk"]
        if len(hf) != len(source.parts) or len(hf) != 1:
            raise InputError("--executor ray reads .jsonl[.gz|.zst] and .parquet files and saved Hugging Face "
                             "datasets; use --executor local for other corpora")
        dataset, total = _hf_dataset(ray, hf[0], source.split, settings, shard_size, done)
        if not done:
            total = None
    else:
        fields = {"text_field": settings["text_field"], "id_field": settings["id_field"]}
        offsets = [-1] * len(files)
        if done:
            counted = ray.data.from_items(files).map(
                _count_records, fn_kwargs=fields, num_cpus=0.5).take_all()
            total = 0
            for i, row in enumerate(counted):  # in file order (preserve_order)
                offsets[i] = total
                total += int(row["records"])
        # Each task streams one file itself (arrow filesystems: local paths and object-store URIs),
        # uncompressed by us rather than by Ray's readers, so that a truncated file gives the same
        # FILE:LINE error as the local executor; it emits blocks as it reads. Reading takes a small
        # CPU share so the linking actors, holding the other CPUs, never starve it (which stalls
        # the pipeline).
        dataset = ray.data.from_items([{**f, "offset": o} for f, o in zip(files, offsets)]).map_batches(
            _split_file, batch_size=1, fn_kwargs={**fields, "shard_size": shard_size, "done": done},
            num_cpus=0.1)
    # batches of at least 4096 records: Ray's per-batch overhead is milliseconds
    linked = dataset.map_batches(
        _LinkActor, fn_constructor_args=(kb_path, linker.options(), settings), batch_size=max(batch_size, 4096),
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=0.8, batch_format="numpy")

    def results() -> Iterator[tuple[int, list]]:
        count = 0
        for row in _rows(linked):
            status = row["status"]
            if status == "source_error":
                if row["doc_id"] == "whole file" or on_error == "fail":
                    raise InputError(row["value"])
                source.skips.add(row["value"])
                continue
            if row["index"] >= 0:  # resuming: records of complete shards did not come
                count = row["index"]
            shard = count // shard_size
            count += 1
            yield shard, [(row["doc_id"], json.loads(row["value"])) if status == "ok" else (None, row["value"])]

    try:
        seen, linked_now = write_shards(results(), out_dir, on_error=on_error, skips=source.skips,
                                        progress=progress, desc="linking (ray)")
    finally:
        if tmp is not None:
            tmp.cleanup()
    if total is not None:
        seen = list(range(-(-total // shard_size)))
    return collect_manifests(out_dir, seen), linked_now


def _rows(dataset: Any):
    """Rows in order, fetched a batch at a time (much cheaper than `iter_rows`)."""
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        for status, doc_id, value, index in zip(batch["status"], batch["doc_id"], batch["value"], batch["index"]):
            yield {"status": str(status), "doc_id": str(doc_id), "value": str(value), "index": int(index)}


def _hf_dataset(ray: Any, path: Any, split: str, settings: dict[str, Any], shard_size: int,
                done: list[int]) -> tuple[Any, int]:
    """A saved Hugging Face dataset as rows like `_split_file`'s (records of the shards in `done`
    left out); also returns the number of records."""
    import datasets

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise InputError(f"{path}: no split {split!r} (has {', '.join(data)})")
        data = data[split]
    name = Path(path).name
    columns = [c for c in (settings["text_field"], settings["id_field"]) if c in data.column_names]
    data = data.select_columns(columns).add_column("__row", list(range(1, len(data) + 1)))
    skip = set(done)

    def items(batch: dict[str, Any]) -> dict[str, list]:
        keep = [i for i, r in enumerate(batch["__row"]) if (int(r) - 1) // shard_size not in skip]
        payload = [_record_bytes({c: _plain(batch[c][i]) for c in columns}) for i in keep]
        return {"kind": ["raw"] * len(keep), "name": [name] * len(keep),
                "position": [int(batch["__row"][i]) for i in keep], "payload": payload,
                "error": [""] * len(keep), "index": [int(batch["__row"][i]) - 1 for i in keep]}

    return ray.data.from_huggingface(data).map_batches(items, batch_format="numpy", num_cpus=0.1), len(data)


def _record_bytes(record: dict[str, Any]) -> bytes:
    """A record as one JSON line, so every row's payload has one type (bytes)."""
    import json

    return json.dumps(record, ensure_ascii=False, default=str).encode("utf-8")
