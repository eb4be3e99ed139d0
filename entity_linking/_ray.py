"""`link_corpus(..., executor="ray")`: the same linking on Ray Data.

Files are streamed inside Ray Data tasks (local paths, or object-store URIs that Arrow's
filesystems understand), one task per file emitting blocks of records as it reads, so memory
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

import gzip
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entity_linking._corpus import _link_batch, _ShardWriter, _Source, _STATE, _collect_manifests, _shard_name
from entity_linking.io import InputError, OnError


RECORDS_PER_BLOCK = 4096
"""Records per block that a reading task emits (it streams its file, never holding it whole)."""


def _file_records(path: str, text_field: str, id_field: str) -> Iterator[tuple[str, str, int, bytes, str]]:
    """One file (a local path or an object-store URI), streamed: `(kind, name, position,
    payload, error)` per record, kind "raw"; or kind "error" where the file turns out unusable
    (position 0) or truncated (then nothing follows)."""
    from pyarrow import fs

    filesystem, where = fs.FileSystem.from_uri(path) if "://" in path else (fs.LocalFileSystem(), path)
    name = Path(where).name
    suffixes = Path(where).suffixes
    compression = suffixes[-1] if suffixes and suffixes[-1] in (".gz", ".zst") else ""
    if (suffixes[:-1] if compression else suffixes)[-1:] == [".parquet"]:
        import pyarrow.parquet as pq

        with filesystem.open_input_file(where) as stream:
            handle = pq.ParquetFile(stream)
            names = handle.schema_arrow.names
            if text_field not in names:
                yield ("error", name, 0, b"", f"no column {text_field!r} (columns: {', '.join(names)}); name the "
                                              "text column with --text-field")
                return
            position = 0
            for batch in handle.iter_batches(batch_size=RECORDS_PER_BLOCK,
                                             columns=[c for c in (text_field, id_field) if c in names]):
                for record in batch.to_pylist():
                    position += 1
                    yield "raw", name, position, _record_bytes(record), ""
        return
    with filesystem.open_input_stream(where, compression=None) as stream:
        handle: Any = io.BufferedReader(stream, buffer_size=1 << 20)
        magic = handle.peek(4)[:4]
        if compression == ".gz" and magic[:2] == b"\x1f\x8b":
            handle = gzip.GzipFile(fileobj=handle)
        elif compression == ".zst" and magic == b"\x28\xb5\x2f\xfd":
            import zstandard

            handle = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(handle))
        lineno = 0
        while True:
            try:
                raw = handle.readline()
            except Exception as exc:  # same as the local reader: EOFError, BadGzipFile, ZstdError
                yield "error", name, lineno + 1, b"", f"file is truncated or corrupt ({exc})"
                return
            if not raw:
                return
            lineno += 1
            if raw.isspace():
                continue
            yield "raw", name, lineno, raw, ""


def _split_file(batch: dict[str, Any], text_field: str, id_field: str, shard_size: int,
                done: list[int]) -> Iterator[dict[str, list]]:
    """map_batches (a generator, one file per call): the file's records in blocks, with
    `index`, the record's place in the whole corpus when the file's `offset` is known (else
    -1). Records of the shards in `done` (complete in an earlier run) are left out, so they
    are neither sent on nor linked again."""
    path = str(batch["path"][0])
    offset = int(batch["offset"][0])
    skip = set(done)
    block: dict[str, list] = {key: [] for key in ("kind", "name", "position", "payload", "error", "index")}
    n = 0
    for kind, name, position, payload, error in _file_records(path, text_field, id_field):
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
    records = sum(1 for kind, *_ in _file_records(row["path"], text_field, id_field) if kind == "raw")
    return {"path": row["path"], "records": records}


def start_ray(workers: int | None) -> tuple[Any, int]:
    """Import Ray and connect: to the cluster named by `RAY_ADDRESS` when set, else to a local
    one with `workers` CPUs (default: this machine's cores), unless Ray is already initialized.
    Returns `(ray, workers)`."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'ray[data]'") from None
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, int(workers))
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
        from entity_linking._kb import KnowledgeBase
        from entity_linking._linker import Linker

        _STATE["linker"] = Linker(KnowledgeBase.load(kb_path).prepare(), **options)
        _STATE["settings"] = settings

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
        linked = iter(_link_batch(linkable))
        for kind, name, position, _, error in items:
            if kind == "error":
                where = _STATE["settings"]["paths"].get(name, name)
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


def run_ray(source: _Source, linker: Any, out_dir: Path, *, settings: dict[str, Any], shard_size: int,
            batch_size: int, workers: int | None, kb_path: str | None, on_error: OnError,
            progress: bool) -> tuple[list[dict[str, Any]], int]:
    """Link on Ray; return the manifests of all shards and the number of records linked now."""
    import json

    from tqdm import tqdm

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

    files = [str(where) if "://" in str(where) else str(Path(where).resolve())
             for kind, where in source.parts if kind in ("jsonl", "parquet")]
    # Shards complete in an earlier run: their records are left out before linking, which needs
    # each record's place in the corpus, so a resumed job first counts the records of each file.
    done = sorted(int(p.name[6:11]) for p in out_dir.glob("shard-?????.json"))
    total = None
    if len(files) != len(source.parts):
        hf = [where for kind, where in source.parts if kind == "hf_disk"]
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
            counted = ray.data.from_items([{"path": f} for f in files]).map(
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
        dataset = ray.data.from_items([{"path": f, "offset": o} for f, o in zip(files, offsets)]).map_batches(
            _split_file, batch_size=1, fn_kwargs={**fields, "shard_size": shard_size, "done": done},
            num_cpus=0.1)
    # batches of at least 4096 records: Ray's per-batch overhead is milliseconds
    linked = dataset.map_batches(
        _LinkActor, fn_constructor_args=(kb_path, linker.options(), settings), batch_size=max(batch_size, 4096),
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=0.8, batch_format="numpy")

    bar = tqdm(desc="linking (ray)", unit=" docs", unit_scale=True, disable=not progress, dynamic_ncols=True)
    writer = _ShardWriter(out_dir, on_error)
    seen: list[int] = []
    count = linked_now = 0
    try:
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
            linked_now += 1
            if shard not in seen:
                seen.append(shard)
            if (out_dir / _shard_name(shard)).with_suffix(".json").exists() and writer.shard != shard:
                continue  # complete in an earlier run
            if writer.shard != shard:
                writer.open(shard)
            if status == "ok":
                bar.update(writer.write([(row["doc_id"], json.loads(row["value"]))]))
            else:
                bar.update(writer.write([(None, row["value"])]))
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
        if tmp is not None:
            tmp.cleanup()
    if total is not None:
        seen = list(range(-(-total // shard_size)))
    return _collect_manifests(out_dir, seen), linked_now


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
