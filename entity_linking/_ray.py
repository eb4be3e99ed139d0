"""`link_corpus(..., executor="ray")`: the same linking on Ray Data.

Files are read inside Ray Data tasks (local paths, or object-store URIs that Arrow's
filesystems understand) and split into records there, so line numbers,
default document ids and error messages are exactly those of the local executor; a saved
Hugging Face dataset goes through `ray.data.from_huggingface`. Linking runs in actors that
load the saved knowledge base once each (`map_batches` with `concurrency=workers`). Results
come back in corpus order (`preserve_order`) to this process, which writes the same shards and
manifests as the local executor, byte for byte.

Ray connects to the cluster named by `RAY_ADDRESS` when set, else starts a local one with
`workers` CPUs. Limits: each input file is read whole by one task (split large corpora into
files of a few hundred MB, as The Pile, C4 and Dolma already are); resuming skips writing the
complete shards but links their documents again.
"""

from __future__ import annotations

import gzip
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from entity_linking._corpus import _link_batch, _ShardWriter, _Source, _STATE, _collect_manifests, _shard_name
from entity_linking.io import InputError, OnError


def _split_file(row: dict[str, Any], text_field: str = "text", id_field: str = "id") -> list[dict[str, Any]]:
    """flat_map: one file's bytes -> one row per record (`kind`, `name`, `position`, `payload`),
    plus an `error` row where a compressed file turns out truncated."""
    from pyarrow import fs

    filesystem, where = fs.FileSystem.from_uri(row["path"]) if "://" in row["path"] \
        else (fs.LocalFileSystem(), row["path"])
    with filesystem.open_input_stream(where, compression=None) as stream:
        data = stream.read()
    path = Path(where)
    name = path.name
    suffixes = path.suffixes
    compression = suffixes[-1] if suffixes and suffixes[-1] in (".gz", ".zst") else ""
    kind = (suffixes[:-1] if compression else suffixes)[-1:] == [".parquet"] and "parquet" or "jsonl"
    out: list[dict[str, Any]] = []
    if kind == "parquet":
        import pyarrow.parquet as pq

        handle = pq.ParquetFile(io.BytesIO(data))
        names = handle.schema_arrow.names
        if text_field not in names:
            return [{"kind": "error", "name": name, "position": 0, "payload": b"",
                     "error": f"no column {text_field!r} (columns: {', '.join(names)}); name the text column "
                              "with --text-field"}]
        table = handle.read(columns=[c for c in (text_field, id_field) if c in names])
        for position, record in enumerate(table.to_pylist(), 1):
            out.append({"kind": "raw", "name": name, "position": position, "payload": _record_bytes(record),
                        "error": ""})
        return out
    if compression == ".gz" and data[:2] == b"\x1f\x8b":
        handle: Any = gzip.GzipFile(fileobj=io.BytesIO(data))
    elif compression == ".zst" and data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        handle = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)))
    else:
        handle = io.BytesIO(data)
    lineno = 0
    while True:
        try:
            raw = handle.readline()
        except Exception as exc:  # same as the local reader: EOFError, BadGzipFile, ZstdError
            out.append({"kind": "error", "name": name, "position": lineno + 1, "payload": b"",
                        "error": f"file is truncated or corrupt ({exc})"})
            break
        if not raw:
            break
        lineno += 1
        if raw.isspace():
            continue
        out.append({"kind": "raw", "name": name, "position": lineno, "payload": raw, "error": ""})
    return out


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
        return {"status": kinds, "doc_id": ids, "value": values}


def _plain(value: Any) -> Any:
    """Numpy batch values back to plain Python objects."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def run_ray(source: _Source, linker: Any, out_dir: Path, *, settings: dict[str, Any], shard_size: int,
            batch_size: int, workers: int | None, kb_path: str | None, on_error: OnError,
            progress: bool) -> list[dict[str, Any]]:
    import json

    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'ray[data]'") from None
    from tqdm import tqdm

    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, int(workers))
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
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
    if len(files) != len(source.parts):
        hf = [where for kind, where in source.parts if kind == "hf_disk"]
        if len(hf) != len(source.parts) or len(hf) != 1:
            raise InputError("--executor ray reads .jsonl[.gz|.zst] and .parquet files and saved Hugging Face "
                             "datasets; use --executor local for other corpora")
        dataset = _hf_dataset(ray, hf[0], source.split, settings)
    else:
        # Each task reads one file itself (arrow filesystems: local paths and object-store URIs),
        # uncompressed by us rather than by Ray's readers, so that a truncated file gives the same
        # FILE:LINE error as the local executor. Reading and splitting take a small CPU share so the
        # linking actors, holding the other CPUs, never starve them (which stalls the pipeline).
        dataset = ray.data.from_items([{"path": f} for f in files]).flat_map(
            _split_file, fn_kwargs={"text_field": settings["text_field"], "id_field": settings["id_field"]},
            num_cpus=0.1)
    # batches of at least 4096 records: Ray's per-batch overhead is milliseconds
    linked = dataset.map_batches(
        _LinkActor, fn_constructor_args=(kb_path, linker.options(), settings), batch_size=max(batch_size, 4096),
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=0.8, batch_format="numpy")

    bar = tqdm(desc="linking (ray)", unit=" docs", unit_scale=True, disable=not progress, dynamic_ncols=True)
    writer = _ShardWriter(out_dir, on_error)
    seen: list[int] = []
    count = 0
    try:
        for row in _rows(linked):
            status = row["status"]
            if status == "source_error":
                if row["doc_id"] == "whole file" or on_error == "fail":
                    raise InputError(row["value"])
                source.skips.add(row["value"])
                continue
            shard = count // shard_size
            count += 1
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
    return _collect_manifests(out_dir, seen)


def _rows(dataset: Any):
    """Rows in order, fetched a batch at a time (much cheaper than `iter_rows`)."""
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
        for status, doc_id, value in zip(batch["status"], batch["doc_id"], batch["value"]):
            yield {"status": str(status), "doc_id": str(doc_id), "value": str(value)}


def _hf_dataset(ray: Any, path: Any, split: str, settings: dict[str, Any]):
    import datasets

    data = datasets.load_from_disk(str(path))
    if isinstance(data, datasets.DatasetDict):
        if split not in data:
            raise InputError(f"{path}: no split {split!r} (has {', '.join(data)})")
        data = data[split]
    name = Path(path).name
    columns = [c for c in (settings["text_field"], settings["id_field"]) if c in data.column_names]
    data = data.select_columns(columns).add_column("__row", list(range(1, len(data) + 1)))

    def items(batch: dict[str, Any]) -> dict[str, list]:
        n = len(batch["__row"])
        payload = [_record_bytes({c: _plain(batch[c][i]) for c in columns}) for i in range(n)]
        return {"kind": ["raw"] * n, "name": [name] * n, "position": [int(r) for r in batch["__row"]],
                "payload": payload, "error": [""] * n}

    return ray.data.from_huggingface(data).map_batches(items, batch_format="numpy", num_cpus=0.1)


def _record_bytes(record: dict[str, Any]) -> bytes:
    """A record as one JSON line, so every row's payload has one type (bytes)."""
    import json

    return json.dumps(record, ensure_ascii=False, default=str).encode("utf-8")
