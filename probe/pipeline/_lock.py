"""One job per run folder: a lock file that names its holder.

`ltprobe run` (and `merge`) hold `DIR/.ltprobe.lock` while they write into `DIR`. The lock is a
POSIX record lock (`fcntl.lockf`): the kernel drops it when the holding process dies, however it
dies (SIGKILL included), so a lock file left behind by a killed job is never mistaken for a
live one and the next job takes it over. Record locks, unlike `flock` locks, are not inherited
by forked children, so a vLLM engine or linking worker that outlives a killed parent does not
keep the folder locked. The file holds the holder's pid, host, start time and command line, so
a second job can say who holds the folder.

A lock on a network file system is only as good as that file system's `fcntl` support (NFSv4
and Lustre with `flock`/`localflock` mount options honour it).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from entity_linking.io import InputError

LOCK_NAME = ".ltprobe.lock"
"""The lock file's name inside a run folder."""


class FolderInUse(InputError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """Exclusive lock on a run folder for the life of a job (a context manager).

    `acquire()` returns at once: it raises `FolderInUse` naming the other process when the folder
    is held, and otherwise records this process. `previous` is the record of a killed job whose
    lock was taken over (None when the folder was free).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.previous: dict | None = None
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise FolderInUse(f"{self.folder}: in use by another ltprobe job ({describe(holder)}); "
                              "wait for it to finish or stop it, or use another --out") from None
        # Read through the locked descriptor: closing any other descriptor of this file would
        # drop the process's record lock (POSIX semantics).
        previous = _read_holder(fd)
        self.previous = previous or None
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "command": " ".join(_safe_argv())}
        data = (json.dumps(record) + "\n").encode("utf-8")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as exc:
            os.close(fd)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # an empty lock file: the folder was left cleanly
        except OSError:
            pass
        os.close(self._fd)  # closing drops the record lock
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def describe(holder: dict) -> str:
    """'pid 123 on host h, started 2026-...' from a lock record (what is known of it)."""
    if not holder:
        return "holder unknown: the lock file is empty"
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host"):
        parts.append(f"on host {holder['host']}")
    if holder.get("started"):
        parts.append(f"started {holder['started']}")
    return " ".join(parts[:2]) + (", " + parts[2] if len(parts) > 2 else "")


def _read_holder(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8").strip()
        record = json.loads(text) if text else {}
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return {}


def _safe_argv() -> list[str]:
    """The command line, with values of options that may carry secrets left out."""
    argv = [os.path.basename(sys.argv[0])] + sys.argv[1:] if sys.argv else []
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("***")
            hide = False
            continue
        lowered = arg.lower()
        if any(word in lowered for word in ("key", "password", "token", "secret", "auth")):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=***")
            else:
                out.append(arg)
                hide = arg.startswith("-")
            continue
        out.append(arg)
    return out
