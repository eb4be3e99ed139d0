"""Reading and writing the JSONL files that every stage exchanges.

This module sits in the lowest package (`entity_linking`) so that `indexes` and `probe` can
share it without import cycles. All stages read input through `read_records`, which gives the
contract's error behaviour: `FILE:LINE: reason` for a bad record, and either a stop
(`on_error="fail"`) or a counted skip (`on_error="skip"`).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from entity_linking import faults as _faults  # the crash tests' hooks; nothing happens without LTPROBE_FAULT

OnError = Literal["fail", "skip"]

_UMASK = os.umask(0)
os.umask(_UMASK)


class InputError(Exception):
    """Bad input that the user can fix. The CLI prints the message alone, no traceback."""


@dataclass
class SkipCounter:
    """Counts the records skipped with `on_error="skip"` and remembers the first reasons."""

    skipped: int = 0
    """How many records were skipped."""
    examples: list[str] = field(default_factory=list)
    """The first few `FILE:LINE: reason` messages, for the final message and manifests."""

    def add(self, message: str) -> None:
        self.skipped += 1
        if len(self.examples) < 5:
            self.examples.append(message)

    def bad_record(self, message: str, on_error: OnError) -> None:
        """A bad record (`message` is `FILE:LINE: reason`): raise `InputError` with
        `on_error="fail"`, else count it."""
        if on_error == "fail":
            raise InputError(message) from None
        self.add(message)

    def summary(self) -> str:
        """One line for the end of a command, empty when nothing was skipped."""
        if not self.skipped:
            return ""
        return f"skipped {self.skipped} bad record(s); first: {self.examples[0]}"


def open_text(path: str | os.PathLike, mode: str = "rt") -> IO[str]:
    """Open a text file, transparently (de)compressing `.gz` and `.zst` by suffix."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8", errors="strict")  # type: ignore[return-value]
    if path.suffix == ".zst":
        import zstandard

        if "r" in mode:
            raw = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
        else:
            raw = zstandard.ZstdCompressor().stream_writer(open(path, "wb"))
        return io.TextIOWrapper(raw, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def read_records(
    path: str | os.PathLike,
    *,
    on_error: OnError = "fail",
    skips: SkipCounter | None = None,
    required: dict[str, type | tuple[type, ...]] | None = None,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, record)` for each JSON object line of a `.jsonl[.gz|.zst]` file.

    `required` maps field names to the types they must have; `check` may raise `ValueError`
    with a reason for further validation. A bad line (undecodable bytes, broken JSON, not an
    object, a missing or mistyped field, a failed check) raises `InputError("FILE:LINE:
    reason")` with `on_error="fail"`, or is counted in `skips` and passed over with
    `on_error="skip"`. A truncated compressed file is reported at the line where it ends.
    Blank lines are ignored.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    skips = skips if skips is not None else SkipCounter()

    def bad(lineno: int, reason: str) -> None:
        skips.bad_record(f"{path}:{lineno}: {reason}", on_error)

    lineno = 0
    with _open_binary(path) as handle:
        while True:
            try:
                raw = handle.readline()
            except Exception as exc:  # EOFError, OSError, BadGzipFile, zstandard.ZstdError
                # A truncated or corrupt compressed stream: nothing after this point is readable.
                skips.bad_record(f"{path}:{lineno + 1}: file is truncated or corrupt ({exc})", on_error)
                return
            if not raw:
                return
            lineno += 1
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad(lineno, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                bad(lineno, f"broken JSON ({exc.msg}, column {exc.colno})")
                continue
            if not isinstance(record, dict):
                bad(lineno, f"expected a JSON object, got {type(record).__name__}")
                continue
            reason = _check_fields(record, required or {})
            if reason is None and check is not None:
                try:
                    check(record)
                except ValueError as exc:
                    reason = str(exc)
            if reason is not None:
                bad(lineno, reason)
                continue
            yield lineno, record


def _check_fields(record: dict[str, Any], required: dict[str, type | tuple[type, ...]]) -> str | None:
    for name, kind in required.items():
        if name not in record:
            return f"missing field {name!r}"
        if not isinstance(record[name], kind) or (kind is int and isinstance(record[name], bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            return f"field {name!r} must be {names}, got {type(record[name]).__name__}"
    return None


@contextmanager
def _open_binary(path: Path) -> Iterator[IO[bytes]]:
    if path.suffix == ".gz":
        handle: IO[bytes] = gzip.open(path, "rb")  # type: ignore[assignment]
    elif path.suffix == ".zst":
        import zstandard

        handle = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb")))  # type: ignore[arg-type]
    else:
        handle = open(path, "rb")
    try:
        yield handle
    finally:
        handle.close()


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write records one JSON object a line, atomically (a temporary file renamed into place).

    A crash never leaves a half-written file under the final name, which is what lets every
    stage treat "the output file exists" as "the stage is complete". Returns the number of
    records written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with atomic_write(path) as handle:
        if _faults.SPEC:  # the crash tests: die after the N-th record of this file
            point = f"write-record:{path.name}"
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
                handle.flush()
                _faults.fault_point(point)
            return n
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write one JSON document (indented) atomically."""
    with atomic_write(Path(path)) as handle:
        json.dump(obj, handle, ensure_ascii=False, indent=2)
        handle.write("\n")


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path` and rename it to `path` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid is in the temporary name, so a later writer can tell the leftovers of a
    # killed one (pid gone) from a live writer's file and remove them.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        _faults.fault_point(f"write:{path.name}")
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file: say which output it was
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    remove_leftovers(path)


def remove_leftovers(path: Path) -> None:
    """Remove `.NAME.PID.*` temporary files or folders beside `path` left by killed writers."""
    import shutil

    prefix = f".{path.name}."
    try:
        siblings = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for sibling in siblings:
        pid = sibling.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        if sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def disk_errors(where: str | os.PathLike) -> Iterator[None]:
    """A full disk (or quota, or file-size limit) inside the block becomes an OSError naming
    `where`: libraries report a failed write without a file name (numpy's savez, a raw
    write), or as their own error type (safetensors)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            code = exc.errno if exc.errno is not None else _full_disk_code(str(exc)) or _disk_is_full(where)
            if code is not None:
                raise OSError(code, os.strerror(code), str(where)) from exc
        raise
    except Exception as exc:
        code = _full_disk_code(str(exc))
        if code is not None:
            raise OSError(code, os.strerror(code), str(where)) from exc
        raise


def _full_disk_code(text: str) -> int | None:
    import errno

    for code, words in ((errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota exceeded"),
                        (errno.EFBIG, "file too large")):
        if words in text.lower():
            return code
    return None


def _disk_is_full(where: str | os.PathLike) -> int | None:
    """ENOSPC when the file system holding `where` has (almost) no space left: numpy's tofile
    reports a short write as "N requested and M written", with no error code."""
    import errno

    path = Path(where)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return errno.ENOSPC if stat.f_bavail * stat.f_frsize < (1 << 16) else None
