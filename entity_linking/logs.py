"""Progress bars and the run log, for all three packages (this is the lowest one).

Messages go through `logging` (one logger per module); the `ltprobe` command decides where they
show (`probe.cli`), library code never configures logging. Progress bars are tqdm bars on stderr
made by `progress_bar`, which shows them only where someone watches: stderr is a terminal,
and the command was not run with `--quiet`. `LTPROBE_PROGRESS=1` forces them on (a log file that
should keep them), `LTPROBE_PROGRESS=0` off.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_quiet = False
"""Set by `quiet_progress` (`ltprobe --quiet`): no bar shows, whatever the terminal."""

PACKAGES = ("entity_linking", "indexes", "probe")
"""The loggers of the toolkit (each module's logger is a child of one of them)."""

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The format of a run folder's `run.log`: time, level, module, message."""


def show_progress() -> bool:
    """Whether progress bars show now: not quiet, and stderr a terminal or LTPROBE_PROGRESS=1."""
    if _quiet:
        return False
    forced = os.environ.get("LTPROBE_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool = True, **options: Any) -> Any:
    """A tqdm bar on stderr (`options` as tqdm's), disabled unless `enabled` (the caller's own
    switch, e.g. a `progress` argument) and `show_progress()`. A disabled bar still counts and
    iterates, so callers use it the same either way."""
    from tqdm import tqdm

    options.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=not (enabled and show_progress()), **options)


@contextmanager
def quiet_progress(quiet: bool = True) -> Iterator[None]:
    """Within the block no progress bar shows (when `quiet`); the previous setting is restored."""
    global _quiet
    before = _quiet
    _quiet = before or quiet
    try:
        yield
    finally:
        _quiet = before


class _LogFile(logging.FileHandler):
    """A log file that falls silent when it cannot be written: a full disk is reported once, by
    the stage that meets it, not buried under the logging module's tracebacks."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed = True


@contextmanager
def log_file(path: str | Path, level: int = logging.INFO, *, header: str | None = None) -> Iterator[Path]:
    """Within the block the toolkit's messages at `level` and above (DEBUG where the toolkit's
    loggers are set to it) are also appended to `path`, with time and level: the log of a batch
    job kept beside its results. The toolkit's loggers are lowered to `level` meanwhile where
    they are set higher; where the messages show on the screen is still up to the caller's
    handlers (the `ltprobe` command filters them by `--log-level`). `header` is written to the
    file alone, first; the reason an exception ends the block last (also to the file alone)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    loggers = [logging.getLogger(name) for name in PACKAGES]
    if any(logger.isEnabledFor(logging.DEBUG) for logger in loggers):
        level = min(level, logging.DEBUG)
    handler = _LogFile(path, mode="a", encoding="utf-8", delay=True)
    handler.setLevel(level)
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime  # UTC, as manifest.json's times
    handler.setFormatter(formatter)
    before = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)

    def note(level: int, message: str) -> None:  # to the file alone
        handler.handle(logging.makeLogRecord({"name": "ltprobe", "levelno": level, "msg": message,
                                              "levelname": logging.getLevelName(level)}))

    if header:
        note(logging.INFO, header)
    root = logging.getLogger()
    root.addHandler(handler)  # on the root: warnings of the libraries the toolkit calls go in too
    try:
        yield path
    except BaseException as exc:  # the reason a job stopped, in its log (not shown twice on stderr)
        note(logging.ERROR, "stopped: " + ("interrupted" if isinstance(exc, KeyboardInterrupt)
                                           else f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        root.removeHandler(handler)
        try:
            handler.close()
        except OSError:  # what a full disk kept in the buffer is lost
            pass
        for logger, old in zip(loggers, before):
            logger.setLevel(old)
