"""Importing the original study's released entity data (Kandpal et al., 2023; methods.md §5).

- An entity map (`nkandpa2/pretraining_entities`, e.g. `the_pile_entity_map.npz`): a `.npz`
  whose members are DBpedia URIs and whose arrays are the corpus's document indices (unsorted,
  may repeat). It becomes an embedded index of document sets with no text, whose document ids
  are the indices as decimal strings (`index.json`: `"doc_ids": "numbers"`), so `ltprobe
  count --index` and `ltprobe docs` work on it as on any other index.
- QA entities (`nkandpa2/qa_entities`): one line per QA pair, `{"q_entities": [...],
  "a_entities": [...]}` of DBpedia Spotlight records (`URI`, `surfaceForm`, `offset`, ...). They
  become `qa_entities.jsonl` records: `q_entities` (question URIs, in order, repeats dropped),
  `a_entities` (the salient answers: the URIs not in the question with the most mentions, ties
  kept) and `a_entity_votes` (mentions per URI over every answer mention, question URIs
  included), which `ltprobe count` turns into the published count, q_count and a_count.

The map is read member by member (a `.npz` is a zip of `.npy` files): memory holds one
entity's array, the entity names and two integers per entity, never the whole map.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import tempfile
import time
import zlib
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from entity_linking.io import InputError, SkipCounter, read_records, write_json, write_jsonl
from entity_linking.records import LinkedQAPair

_MAX_DOC = 2**32 - 2  # document numbers are uint32 in the index's bitmaps


class EntityMap:
    """An entity-map `.npz` opened for reading: `len()` members, iterated as `(entity,
    document indices)` one member at a time, in file order.

    A `.npz` is a zip of `.npy` files. Its central directory is read record by record as the
    members are iterated, never held (Python's `zipfile` keeps an object per member: 650 MB
    for 1,000,000 entities; `numpy.load`'s `NpzFile` also looks keys up in a list, quadratic
    over millions of members). Stored and deflated members (`savez`, `savez_compressed`),
    zip64 and CRC checks are handled here; `.npy` headers are parsed with a pattern for the
    common 1-d case and `ast.literal_eval` otherwise. No pickle is ever read (object arrays
    are refused, as `allow_pickle=False` would).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such entity map")
        self._file = open(self.path, "rb")
        try:
            self._cd_offset, self._entries = _central_directory(self._file)
        except ValueError as exc:
            self._file.close()
            raise InputError(f"{self.path}: not an .npz entity map ({exc})") from None

    def __len__(self) -> int:
        return self._entries

    def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
        handle, position = self._file, self._cd_offset
        for _ in range(self._entries):
            handle.seek(position)
            head = handle.read(46)
            if len(head) < 46 or head[:4] != b"PK\x01\x02":
                raise InputError(f"{self.path}: damaged zip directory at byte {position}")
            (flags, method, crc, csize, usize, name_len, extra_len, comment_len,
             offset) = (*struct.unpack("<HH", head[8:12]), *struct.unpack("<III", head[16:28]),
                        *struct.unpack("<HHH", head[28:34]), struct.unpack("<I", head[42:46])[0])
            raw_name, extra = handle.read(name_len), handle.read(extra_len)
            position += 46 + name_len + extra_len + comment_len
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
            if not name.endswith(".npy"):
                continue
            if 0xFFFFFFFF in (csize, usize, offset):
                usize, csize, offset = _zip64_sizes(extra, usize, csize, offset)
            try:
                values = _read_npy(io.BytesIO(self._member(offset, method, csize, crc)))
            except (ValueError, SyntaxError, OSError, EOFError, zlib.error) as exc:
                raise InputError(f"{self.path}: member {name!r}: not a readable integer array ({exc})") from None
            yield name[:-4], values

    def _member(self, offset: int, method: int, csize: int, crc: int) -> bytes:
        handle = self._file
        handle.seek(offset)
        local = handle.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise ValueError("damaged local header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        handle.seek(offset + 30 + name_len + extra_len)
        data = handle.read(csize)
        if len(data) != csize:
            raise ValueError("member data is truncated")
        if method == 8:
            data = zlib.decompress(data, -15)
        elif method != 0:
            raise ValueError(f"zip compression method {method} (only stored and deflated are read)")
        if zlib.crc32(data) != crc:
            raise ValueError("CRC check failed: the file is damaged")
        return data

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EntityMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _central_directory(handle: Any) -> tuple[int, int]:
    """Offset of a zip file's central directory and its number of records (zip64 too)."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    tail_size = min(size, 22 + 65535 + 20)  # the end record, its comment, a zip64 locator
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise ValueError("no zip end-of-directory record")
    entries, cd_size, cd_offset = struct.unpack("<HII", tail[at + 10:at + 20])
    if 0xFFFF == entries or 0xFFFFFFFF in (cd_size, cd_offset):
        locator = tail[at - 20:at] if at >= 20 else b""
        if locator[:4] != b"PK\x06\x07":
            raise ValueError("zip64 directory locator missing")
        (record_offset,) = struct.unpack("<Q", locator[8:16])
        handle.seek(record_offset)
        record = handle.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            raise ValueError("damaged zip64 end-of-directory record")
        entries, cd_size, cd_offset = struct.unpack("<QQQ", record[32:56])
    return cd_offset, entries


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset from a central-directory record's zip64 extra field."""
    i = 0
    while i + 4 <= len(extra):
        kind, length = struct.unpack("<HH", extra[i:i + 4])
        if kind == 1:
            values = list(struct.unpack(f"<{length // 8}Q", extra[i + 4:i + 4 + length // 8 * 8]))
            if usize == 0xFFFFFFFF:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF:
                csize = values.pop(0)
            if offset == 0xFFFFFFFF:
                offset = values.pop(0)
            break
        i += 4 + length
    return usize, csize, offset


_HEADER = re.compile(r"\{'descr': '([<>|=]?[iu][1248])', 'fortran_order': (?:False|True), "
                     r"'shape': \((\d+),?\), *\}")


def _read_npy(handle: Any) -> np.ndarray:
    """One `.npy` array from a file object (format versions 1-3), never unpickling."""
    magic = handle.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise ValueError("not a .npy array")
    size_bytes = 2 if magic[6] == 1 else 4
    (length,) = struct.unpack("<H" if size_bytes == 2 else "<I", handle.read(size_bytes))
    header = handle.read(length).decode("latin1" if magic[6] < 3 else "utf-8").strip()
    match = _HEADER.fullmatch(header)
    if match:
        dtype, shape, fortran = np.dtype(match.group(1)), (int(match.group(2)),), False
    else:
        import ast

        fields = ast.literal_eval(header)
        if not isinstance(fields, dict) or not {"descr", "shape", "fortran_order"} <= set(fields):
            raise ValueError("damaged .npy header")
        dtype, shape, fortran = np.dtype(fields["descr"]), tuple(fields["shape"]), fields["fortran_order"]
    if dtype.hasobject:
        raise ValueError("object arrays are not read (they would need pickle)")
    count = int(np.prod(shape, dtype=np.int64))
    data = handle.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError("array data is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def iter_entity_map(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
    """`(entity, document indices)` of an entity-map `.npz`, one member at a time, in file order."""
    with EntityMap(path) as entity_map:
        yield from entity_map


def _documents(path: Path, name: str, values: np.ndarray) -> np.ndarray:
    """The sorted distinct document numbers of one map entry, checked."""
    if values.dtype.kind not in "iu":
        raise InputError(f"{path}: entity {name!r}: document indices must be integers, not {values.dtype}")
    values = values.reshape(-1)
    if not len(values):
        return values.astype(np.uint32)
    docs = np.unique(values)
    if docs[0] < 0 or docs[-1] > _MAX_DOC:
        bad = docs[0] if docs[0] < 0 else docs[-1]
        raise InputError(f"{path}: entity {name!r}: document index {int(bad)} is outside 0..{_MAX_DOC}")
    return docs.astype(np.uint32)


def import_entity_map(entity_map: str | os.PathLike, out: str | os.PathLike, *,
                      progress: bool = True) -> dict[str, Any]:
    """Write the embedded index folder `out` from an entity-map `.npz`; return its description.

    Written to a temporary folder beside `out` and moved into place at the end.
    """
    from pyroaring import BitMap

    from entity_linking.logs import progress_bar
    from indexes._base import INDEX_INFO
    from indexes.embedded import FORMAT_VERSION, RAW_POSTINGS_BELOW, write_strings

    entity_map, out = Path(entity_map), Path(out)
    if out.exists() and any(out.iterdir()) and not (out / INDEX_INFO).exists():
        raise InputError(f"{out}: exists and is not an ltprobe index; choose another --out folder")
    started = time.perf_counter()
    entries = EntityMap(entity_map)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        names: list[str] = []
        offsets = array("Q", [0])
        df = array("I")
        n_docs = n_mentions = n_indices = 0
        with open(tmp / "postings.bin", "wb") as postings:
            for name, values in progress_bar(entries, total=len(entries), desc="import entity map", unit=" entities",
                                             enabled=progress):
                docs = _documents(entity_map, name, values)
                n_indices += values.size
                if len(docs) < RAW_POSTINGS_BELOW:  # as EmbeddedWriter: small sets as plain arrays
                    data = docs.astype("<u4").tobytes()
                else:
                    bitmap = BitMap(docs)
                    bitmap.run_optimize()
                    data = bitmap.serialize()
                postings.write(data)
                offsets.append(offsets[-1] + len(data))
                df.append(len(docs))
                names.append(name)
                n_mentions += len(docs)
                if len(docs):
                    n_docs = max(n_docs, int(docs[-1]) + 1)
        duplicates = write_strings(tmp, "entities", names)
        if duplicates:
            raise InputError(f"{entity_map}: entity {duplicates[0]!r} occurs more than once in the map")
        np.save(tmp / "postings.off.npy", np.frombuffer(offsets, dtype=np.uint64))
        np.save(tmp / "df.npy", np.frombuffer(df, dtype=np.uint32))
        info = {
            "backend": "embedded", "version": FORMAT_VERSION,
            "n_docs": n_docs, "n_entities": len(names), "n_mentions": n_mentions,
            "has_text": False, "doc_ids": "numbers",
            "raw_postings_below": RAW_POSTINGS_BELOW, "n_passages": 0,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "imported_from": {"format": "kandpal-entity-map", "path": str(entity_map),
                              "document_indices": n_indices},
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        write_json(tmp / INDEX_INFO, info)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        entries.close()
    return info


def _uris(value: Any, key: str) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"field {key!r} must be a list of DBpedia Spotlight records")
    uris = []
    for item in value:
        uri = item.get("URI") if isinstance(item, dict) else item if isinstance(item, str) else None
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"field {key!r}: every entity needs a 'URI' string")
        uris.append(uri)
    return uris


def convert_qa_record(record: dict[str, Any]) -> dict[str, Any]:
    """One released QA-entities line -> `{"q_entities", "a_entities", "a_entity_votes"}`.

    Every answer mention votes (methods.md §5); the salient answers are computed here without a
    stop-list, and again by `ltprobe count` from the votes when a stop-list is given.
    """
    q = list(dict.fromkeys(_uris(record.get("q_entities"), "q_entities")))
    votes: dict[str, int] = {}
    for uri in _uris(record.get("a_entities"), "a_entities"):
        votes[uri] = votes.get(uri, 0) + 1
    in_q = set(q)
    answers = {e: n for e, n in votes.items() if e not in in_q}
    top = max(answers.values(), default=0)
    return {"q_entities": q, "a_entities": [e for e, n in answers.items() if n == top],
            "a_entity_votes": votes}


def import_qa_entities(qa_entities: str | os.PathLike, out: str | os.PathLike, *,
                       ids: Sequence[str] | None = None, on_error: str = "fail",
                       progress: bool = True) -> dict[str, Any]:
    """Write `qa_entities.jsonl` from a released QA-entities file; return `{"n", "skipped"}`.

    Ids are the 0-based line numbers as strings, or `ids[line]` when the QA set the file
    follows is given (its length must equal the file's number of lines).
    """
    from entity_linking.logs import progress_bar

    qa_entities = Path(qa_entities)
    skips = SkipCounter()
    lines = [0]

    def check(record: dict[str, Any]) -> None:
        _uris(record.get("q_entities"), "q_entities")
        _uris(record.get("a_entities"), "a_entities")

    def rows() -> Iterator[dict[str, Any]]:
        records = read_records(qa_entities, on_error=on_error, skips=skips, check=check)  # type: ignore[arg-type]
        for line, record in progress_bar(records, desc="import QA entities", unit=" questions", enabled=progress):
            lines[0] = line
            if ids is not None and line > len(ids):
                raise InputError(f"{qa_entities}:{line}: more lines than the {len(ids)} questions of the "
                                 "QA set named; is it the right set and split?")
            qa_id = str(ids[line - 1]) if ids is not None else str(line - 1)
            yield LinkedQAPair(qa_id, **convert_qa_record(record)).to_json()

    n = write_jsonl(out, rows())
    if ids is not None and lines[0] != len(ids):
        Path(out).unlink(missing_ok=True)
        raise InputError(f"{qa_entities}: {lines[0]} lines, but the QA set named has {len(ids)} questions; "
                         "the file must follow the QA set line by line (same set and split)")
    result: dict[str, Any] = {"n": n, "skipped": skips.skipped}
    if skips.skipped:
        result["skipped_summary"] = skips.summary()
    return result


def import_kandpal(out: str | os.PathLike, *, entity_map: str | os.PathLike | None = None,
                   qa_entities: str | os.PathLike | None = None, ids: Sequence[str] | None = None,
                   on_error: str = "fail", progress: bool = True) -> dict[str, Any]:
    """Import the released data into `out`: `out/index/` from `entity_map`, and
    `out/qa_entities.jsonl` from `qa_entities` (either or both). Returns what was written."""
    if entity_map is None and qa_entities is None:
        raise InputError("nothing to import: give --entity-map, --qa-entities or both")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {}
    if qa_entities is not None:  # first: a wrong QA file fails fast, before a long map import
        result["qa_entities"] = {"path": str(out / "qa_entities.jsonl"),
                                 **import_qa_entities(qa_entities, out / "qa_entities.jsonl", ids=ids,
                                                      on_error=on_error, progress=progress)}
    if entity_map is not None:
        result["index"] = {"path": str(out / "index"),
                           **import_entity_map(entity_map, out / "index", progress=progress)}
    return result
