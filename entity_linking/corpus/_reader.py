"""The one corpus reader of every stage that reads documents: corpus linking (both executors),
the index (documents and BM25 passages), Elasticsearch ingestion (both executors) and the run's
fingerprints.

A corpus is any of:

- a file: `.jsonl` (also `.json`, `.ndjson` when named), optionally `.gz` or `.zst`
  compressed, or `.parquet`;
- a folder: every such file below it (recursively; hidden files left out), in sorted order of
  their relative paths; a folder written by `datasets.Dataset.save_to_disk` is a data set;
- a glob (`data/*.jsonl.zst`, `pile/**/*.parquet`), in sorted order;
- `hf:NAME[:CONFIG]`: a Hugging Face data set, streamed (`split`), or `hf:FOLDER` for a
  `save_to_disk` folder; a bare data set name without a dot or slash also works;
- an object-store URL (`s3://bucket/pile/`, `gs://...`, `file:///...`, `memory://...`), read
  through fsspec (or pyarrow's filesystems where fsspec has no implementation for the
  protocol): a file, a prefix (a folder) or a glob;
- in Python, also an iterable of dicts or a `datasets` data set.

Document ids are the record's id field (`id_field`) as a string when present, else
`"<name>:<line>"` (JSONL, 1-based line) or `"<name>:<row>"` (Parquet and data sets, 1-based),
where `<name>` is the file name for a single file and the path relative to the folder (or the
glob's fixed prefix) for a folder or glob, so ids are unambiguous and the same in every stage.
Bad input is `FILE:LINE: reason` (`FILE:ROW: reason` for Parquet), raised as `InputError` with
`on_error="fail"` or counted with `on_error="skip"`; a file that cannot be read at all is
always an error.
"""

from __future__ import annotations

import glob as _glob
import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from entity_linking.io import InputError, OnError, SkipCounter

DEFAULT_MAX_DOC_CHARS = 5_000_000
"""Longer documents are bad records (a runaway file, not a document)."""

RECORDS_PER_BLOCK = 4096
"""Parquet rows read per batch."""

_JSONL = (".jsonl", ".ndjson")
_JSONL_NAMED = (*_JSONL, ".json")  # a .json file counts when named explicitly, not in a folder
_COMPRESSED = (".gz", ".zst")
_GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class Part:
    """One piece of a corpus, read in order."""

    kind: str
    """`"jsonl"`, `"parquet"`, `"hf_disk"` (a save_to_disk folder), `"hf"` (a data set streamed
    from the hub) or `"records"` (an in-memory iterable)."""
    where: Any
    """A local `Path`, a URL string, a data set name, or the iterable itself."""
    name: str
    """Prefix of the default document ids (`"<name>:<line>"`)."""
    shown: str
    """How messages name it: the full path or URL."""


def _is_url(text: str) -> bool:
    return "://" in text


def _is_glob(text: str) -> bool:
    return any(c in text for c in _GLOB_CHARS)


def kind_of(name: str, *, named: bool = True) -> str:
    """`"jsonl"`, `"parquet"` or `""` by the file name's suffixes (`.gz`/`.zst` looked through);
    `named=False` (files found in a folder) accepts `.jsonl` and `.ndjson` but not `.json`."""
    suffixes = PurePosixPath(name).suffixes
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] == ".parquet":
        return "parquet"
    if suffixes and suffixes[-1] in (_JSONL_NAMED if named else _JSONL):
        return "jsonl"
    return ""


def _hidden(relative: str) -> bool:
    return any(piece.startswith((".", "_")) for piece in PurePosixPath(relative).parts)


# -- object stores --------------------------------------------------------------------------

def _url_fs(url: str) -> tuple[Any, str, str]:
    """`(filesystem, path, library)` for a URL: fsspec when it knows the protocol, else pyarrow."""
    try:
        import fsspec

        filesystem, path = fsspec.core.url_to_fs(url)
        return filesystem, path, "fsspec"
    except (ImportError, ValueError) as first:
        try:
            from pyarrow import fs

            filesystem, path = fs.FileSystem.from_uri(url)
            return filesystem, path, "pyarrow"
        except Exception:
            raise InputError(f"{url}: cannot open this URL ({first}); install the fsspec implementation "
                             "of its protocol (s3fs for s3://, gcsfs for gs://)") from None


def _url_join(url: str, path: str) -> str:
    protocol = url.split("://", 1)[0]
    return f"{protocol}:///{path.lstrip('/')}" if protocol == "file" else f"{protocol}://{path.lstrip('/')}"


def _resolve_url(text: str) -> list[tuple[str, str, str]]:
    """`(url, name, kind)` of the corpus files a URL names (a file, a prefix or a glob)."""
    filesystem, path, library = _url_fs(text)
    try:
        if library == "fsspec":
            if _is_glob(path):
                prefix = path[:min(path.find(c) for c in _GLOB_CHARS if c in path)]
                base = prefix.rstrip("/") if prefix.endswith("/") else prefix.rsplit("/", 1)[0]
                found = [p for p in filesystem.glob(path) if filesystem.isfile(p)]
            elif filesystem.isdir(path):
                base, found = path.rstrip("/"), filesystem.find(path)
            elif filesystem.isfile(path):
                return [(text, PurePosixPath(path).name, _checked_kind(text, PurePosixPath(path).name))]
            else:
                raise InputError(f"{text}: no such file or folder")
        else:
            from pyarrow import fs

            info = filesystem.get_file_info(path)
            if info.type == fs.FileType.File:
                return [(text, PurePosixPath(path).name, _checked_kind(text, PurePosixPath(path).name))]
            if info.type != fs.FileType.Directory:
                raise InputError(f"{text}: no such file or folder")
            base = path.rstrip("/")
            found = [i.path for i in filesystem.get_file_info(fs.FileSelector(path, recursive=True))
                     if i.type == fs.FileType.File]
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{text}: cannot list ({exc})") from None
    parts = []
    for p in sorted(found):
        relative = p[len(base):].lstrip("/") if p.startswith(base) else PurePosixPath(p).name
        if relative and not _hidden(relative) and kind_of(relative, named=False):
            url = filesystem.unstrip_protocol(p) if library == "fsspec" else _url_join(text, p)
            parts.append((url, relative, kind_of(relative, named=False)))
    if not parts:
        raise InputError(f"{text}: no .jsonl[.gz|.zst] or .parquet files there")
    return parts


def _checked_kind(shown: str, name: str) -> str:
    kind = kind_of(name)
    if not kind:
        raise InputError(f"{shown}: unknown corpus format (expected .jsonl, .jsonl.gz, .jsonl.zst or .parquet)")
    return kind


def open_binary(where: str | os.PathLike) -> IO[bytes]:
    """A local path or a URL opened for binary reading (compressed bytes as stored)."""
    text = str(where)
    if not _is_url(text):
        return open(text, "rb")
    filesystem, path, library = _url_fs(text)
    if library == "fsspec":
        return filesystem.open(path, "rb")
    return filesystem.open_input_file(path)


# -- reading one file -----------------------------------------------------------------------

def iter_file(where: str | os.PathLike, name: str, kind: str, *, text_field: str = "text",
              id_field: str = "id") -> Iterator[tuple[str, str, int, Any, str]]:
    """One corpus file (a local path or a URL), streamed: `(kind, name, position, payload,
    error)` per item. kind `"raw"`: payload is one JSONL line as bytes (parsed by `document`);
    `"rec"`: a Parquet row as a dict; `"error"`: the file is unusable (position 0) or ends in a
    truncated or corrupt stream (then nothing follows). Used in this process and in Ray tasks."""
    shown = str(where)
    if kind == "parquet":
        yield from _parquet(where, name, text_field, id_field)
        return
    try:
        raw = open_binary(where)
    except FileNotFoundError:
        yield "error", name, 0, b"", "no such file"
        return
    except InputError as exc:
        yield "error", name, 0, b"", str(exc).removeprefix(f"{shown}: ")
        return
    handle: Any = raw
    if shown.endswith(".gz"):
        handle = gzip.GzipFile(fileobj=raw)
    elif shown.endswith(".zst"):
        import zstandard

        handle = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))  # type: ignore[arg-type]
    elif not isinstance(raw, io.BufferedReader):
        handle = io.BufferedReader(raw, buffer_size=1 << 20)  # type: ignore[arg-type]
    lineno = 0
    try:
        while True:
            try:
                line = handle.readline()
            except Exception as exc:  # EOFError, BadGzipFile, zstandard.ZstdError, OSError
                yield "error", name, lineno + 1, b"", f"file is truncated or corrupt ({exc})"
                return
            if not line:
                return
            lineno += 1
            if line.isspace():
                continue
            yield "raw", name, lineno, line, ""
    finally:
        handle.close()
        raw.close()


def _parquet(where: Any, name: str, text_field: str, id_field: str) -> Iterator[tuple[str, str, int, Any, str]]:
    import pyarrow.parquet as pq

    try:
        stream = open_binary(where)
    except FileNotFoundError:
        yield "error", name, 0, b"", "no such file"
        return
    with stream:
        try:
            handle = pq.ParquetFile(stream)
        except Exception as exc:
            yield "error", name, 0, b"", f"not a readable Parquet file ({exc})"
            return
        names = handle.schema_arrow.names
        if text_field not in names:
            yield ("error", name, 0, b"", f"no column {text_field!r} (columns: {', '.join(names)}); name the "
                                          "text column with --text-field")
            return
        row = 0
        try:
            for batch in handle.iter_batches(batch_size=RECORDS_PER_BLOCK,
                                             columns=[c for c in (text_field, id_field) if c in names]):
                for record in batch.to_pylist():
                    row += 1
                    yield "rec", name, row, record, ""
        except Exception as exc:  # a damaged row group
            yield "error", name, row + 1, b"", f"file is truncated or corrupt ({exc})"


def document(kind: str, name: str, position: int, payload: Any, settings: dict[str, Any]) -> tuple[str, str]:
    """`(doc_id, text)` of one item of `iter_file`, or `ValueError(reason)` for a bad record.

    `settings`: `text_field`, `id_field`, `max_doc_chars`. The checks are the same in every
    stage, so that the documents the linker skipped are the ones the index skips."""
    if kind == "raw":
        try:
            line = payload.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"broken JSON ({exc.msg}, column {exc.colno})") from None
    else:
        record = payload
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    field = settings["text_field"]
    if field not in record or record[field] is None:
        raise ValueError(f"missing field {field!r} (name the text field with --text-field)")
    text = record[field]
    if not isinstance(text, str):
        raise ValueError(f"field {field!r} must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"empty document (field {field!r} is blank)")
    if len(text) > settings["max_doc_chars"]:
        raise ValueError(f"document too long ({len(text):,} characters; the limit is "
                         f"{settings['max_doc_chars']:,}, raise it with --max-doc-chars)")
    doc_id = record.get(settings["id_field"])
    if doc_id is None:
        doc_id = f"{name}:{position}"
    elif isinstance(doc_id, (str, int)) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    else:
        raise ValueError(f"field {settings['id_field']!r} must be a string or an integer, "
                         f"got {type(doc_id).__name__}")
    return doc_id, text


# -- a whole corpus -------------------------------------------------------------------------

class Corpus:
    """A corpus (see the module docstring) read in order.

    `items()` yields `(kind, name, position, payload)` for the corpus linker's workers (JSONL
    lines stay bytes, parsed in the workers); `documents()` yields checked `(doc_id, text)`.
    """

    def __init__(self, corpus: Any, *, text_field: str = "text", id_field: str = "id", split: str = "train",
                 on_error: OnError = "fail", skips: SkipCounter | None = None,
                 max_doc_chars: int = DEFAULT_MAX_DOC_CHARS):
        if on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
        self.corpus = corpus
        self.text_field = text_field
        self.id_field = id_field
        self.split = split
        self.on_error = on_error
        self.skips = skips if skips is not None else SkipCounter()
        self.max_doc_chars = max_doc_chars
        self.parts = resolve(corpus)

    @property
    def settings(self) -> dict[str, Any]:
        """What `document` needs, and how errors name each part (picklable, for workers)."""
        return {"text_field": self.text_field, "id_field": self.id_field, "max_doc_chars": self.max_doc_chars,
                "paths": {p.name: p.shown for p in self.parts}}

    def describe(self) -> list[str]:
        """The parts as absolute paths, URLs or data set names."""
        return [p.shown if p.kind != "records" else "<records>" for p in self.parts]

    def identity(self) -> list[dict[str, Any]]:
        """What the corpus is made of, for fingerprints: each file's path, size and
        modification time (an object store's etag or time where it gives one)."""
        return [identity(p) for p in self.parts]

    def items(self) -> Iterator[tuple[str, str, int, Any]]:
        for part in self.parts:
            if part.kind in ("jsonl", "parquet"):
                for kind, name, position, payload, error in iter_file(
                        part.where, part.name, part.kind, text_field=self.text_field, id_field=self.id_field):
                    if kind == "error":
                        if position == 0:  # the whole file is unusable: always an error
                            raise InputError(f"{part.shown}: {error}")
                        self.skips.bad_record(f"{part.shown}:{position}: {error}", self.on_error)
                        break
                    yield kind, name, position, payload
            else:
                for row, record in enumerate(self._dataset(part), 1):
                    yield "rec", part.name, row, record

    def documents(self) -> Iterator[tuple[str, str]]:
        """`(doc_id, text)` of every good record, in corpus order."""
        settings = self.settings
        for kind, name, position, payload in self.items():
            try:
                yield document(kind, name, position, payload, settings)
            except ValueError as exc:
                self.skips.bad_record(f"{settings['paths'].get(name, name)}:{position}: {exc}", self.on_error)

    def _dataset(self, part: Part) -> Iterable[Any]:
        if part.kind == "records":
            return part.where
        import datasets

        if part.kind == "hf_disk":
            data = datasets.load_from_disk(str(part.where))
            if isinstance(data, datasets.DatasetDict):
                if self.split not in data:
                    raise InputError(f"{part.shown}: no split {self.split!r} (has {', '.join(data)})")
                data = data[self.split]
            return data
        name, _, config = part.where.partition(":")
        try:
            return datasets.load_dataset(name, config or None, split=self.split, streaming=True)
        except Exception as exc:  # offline, unknown name, ...: the user can fix these
            raise InputError(f"hf:{part.where}: cannot open the Hugging Face dataset ({exc})") from None


def _saved_dataset(path: Path) -> bool:
    return any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json"))


def resolve(corpus: Any) -> list[Part]:
    """The parts of a corpus, in reading order (see the module docstring)."""
    if isinstance(corpus, (list, tuple)) and all(isinstance(c, (str, os.PathLike)) for c in corpus):
        parts = [p for c in corpus for p in resolve(c)]
        names = [p.name for p in parts]
        if len(set(names)) < len(names):
            raise InputError(f"corpus parts share a name ({sorted(n for n in names if names.count(n) > 1)[0]}); "
                             "give one folder or glob instead, so ids stay unambiguous")
        return parts
    if not isinstance(corpus, (str, os.PathLike)):
        return [Part("records", corpus, "records", "<records>")]
    text = str(corpus)
    if text.startswith("hf:"):
        target = text[3:]
        if Path(target).is_dir():
            path = Path(target)
            return [Part("hf_disk", path, path.resolve().name, str(path.resolve()))]
        return [Part("hf", target, target.partition(":")[0].rsplit("/", 1)[-1], text)]
    if _is_url(text):
        return [Part(kind, url, name, url) for url, name, kind in _resolve_url(text)]
    path = Path(text)
    if path.is_file():
        return [Part(_checked_kind(text, path.name), path, path.name, str(path.resolve()))]
    if path.is_dir():
        if _saved_dataset(path):
            return [Part("hf_disk", path, path.resolve().name, str(path.resolve()))]
        files = []
        for p in path.rglob("*"):
            relative = p.relative_to(path).as_posix()
            if p.is_file() and not _hidden(relative) and kind_of(relative, named=False):
                files.append((relative, p))
        if not files:
            raise InputError(f"{path}: no .jsonl[.gz|.zst] or .parquet files in this folder")
        return [Part(kind_of(r, named=False), p, r, str(p.resolve())) for r, p in sorted(files)]
    if _is_glob(text):
        prefix = text[:min(text.find(c) for c in _GLOB_CHARS if c in text)]
        base = Path(prefix) if prefix.endswith(os.sep) else Path(prefix).parent  # ids relative to it
        found = sorted(Path(p) for p in _glob.glob(text, recursive=True) if Path(p).is_file())
        parts = []
        for p in found:
            relative = os.path.relpath(p, base).replace(os.sep, "/")
            kind = kind_of(relative)
            if kind and not _hidden(relative):
                parts.append(Part(kind, p, relative, str(p.resolve())))
        if not parts:
            raise InputError(f"{text}: matches no .jsonl[.gz|.zst] or .parquet files")
        return sorted(parts, key=lambda part: part.name)
    if os.sep in text or "." in Path(text).name:
        raise InputError(f"{corpus}: no such file or folder")
    return [Part("hf", text, text.rsplit("/", 1)[-1], f"hf:{text}")]  # a bare Hugging Face dataset name


def identity(part: Part) -> dict[str, Any]:
    """A part's identity for fingerprints (see `Corpus.identity`)."""
    if part.kind == "records":
        return {"records": "in memory (no identity)"}
    if part.kind == "hf":
        return {"hf": part.where}
    if part.kind == "hf_disk":
        return {"hf_disk": str(Path(part.where).resolve()),
                "files": [file_identity(p) for p in sorted(Path(part.where).rglob("*")) if p.is_file()]}
    return {"name": part.name, **file_identity(part.where)}


def file_identity(where: str | os.PathLike) -> dict[str, Any]:
    """`{"path", "size", "mtime_ns"}` of a local file (or an object's size, time and etag)."""
    text = str(where)
    if _is_url(text):
        filesystem, path, library = _url_fs(text)
        try:
            info = filesystem.info(path) if library == "fsspec" else filesystem.get_file_info(path)
        except Exception as exc:
            raise InputError(f"{text}: cannot read its details ({exc})") from None
        if library == "pyarrow":
            return {"path": text, "size": info.size, "mtime": str(info.mtime)}
        keep = ("size", "mtime", "created", "LastModified", "last_modified", "ETag", "etag", "md5", "generation")
        return {"path": text, **{k: str(info[k]) if k != "size" else info[k] for k in keep if k in info}}
    stat = os.stat(text)
    return {"path": str(Path(text).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
