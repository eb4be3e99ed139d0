"""The `ltprobe` command.

Every command lives here, one module per group (`_link` for the linking commands, `_index` for
the index and count commands, `_eval`, `_run`, ...), each registering its subcommands and importing
nothing heavy at module level; a command's handler imports what it needs when it runs, so that
`ltprobe --help` is instant and never starts torch or vLLM. Errors the user can fix
(`InputError`) are printed as one line on stderr with exit status 2, no traceback.

A command's result goes to stdout; its messages go through `logging` and are shown here, on
stderr: the message alone at INFO, `ltprobe: warning: ...` and `ltprobe: error: ...` above it.
`--log-level` (debug, info, warning, error; default info) and `--quiet` (warning, and no progress
bars) are accepted before or after the command name.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from entity_linking.io import InputError
from entity_linking.logs import PACKAGES, quiet_progress

logger = logging.getLogger(__name__)

# Modules whose `register(commands)` adds subcommands, in the order `--help` lists them.
_COMMAND_MODULES = [
    "probe.cli._run",
    "probe.cli._world",
    "probe.cli._link",
    "probe.cli._index",
    "probe.cli._import",
    "probe.cli._eval",
    "probe.cli._learning",
    "probe.cli._generate",
    "probe.cli._report",
]


class Commands:
    """What a `register` function receives: adds subcommands and benchmarks."""

    def __init__(self, subparsers: argparse._SubParsersAction, bench: argparse._SubParsersAction):
        self._subparsers = subparsers
        self._bench = bench

    def add(self, name: str, handler: Callable[[argparse.Namespace], int | None], help: str,
            description: str | None = None) -> argparse.ArgumentParser:
        """Add `ltprobe NAME`; `handler(args)` runs it and returns an exit status (None = 0)."""
        parser = self._subparsers.add_parser(
            name, help=help, description=description or help, parents=[_output_options()],
            formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(handler=handler)
        return parser

    def add_bench(self, name: str, handler: Callable[[argparse.Namespace], int | None], help: str,
                  description: str | None = None) -> argparse.ArgumentParser:
        """Add `ltprobe bench NAME`. A benchmark prints one JSON object on its last line."""
        parser = self._bench.add_parser(
            name, help=help, description=description or help, parents=[_output_options()],
            formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(handler=handler)
        return parser


def add_on_error(parser: argparse.ArgumentParser) -> None:
    """The contract's `--on-error` option, shared by every command that reads records."""
    parser.add_argument(
        "--on-error", choices=["fail", "skip"], default="fail",
        help="on a bad input record: stop with FILE:LINE: reason (fail, the default), or skip "
             "it, count it and report the count at the end (skip)")


LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _output_options() -> argparse.ArgumentParser:
    """`--log-level` and `--quiet`, for the main parser and every command (the defaults are left
    out, so that a command's parser does not overwrite what was given before its name)."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--log-level", choices=list(LOG_LEVELS), default=argparse.SUPPRESS,
                         help="the messages shown on stderr: debug, info (default), warning, error")
    options.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                         help="show warnings and errors only, and no progress bars (the results still "
                              "go to stdout, except `ltprobe run`'s headline)")
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ltprobe", parents=[_output_options()],
        description=(
            "Measure how a language model's factual knowledge depends on how often the facts "
            "appear in its pretraining data.\n\n"
            "The main job is `ltprobe run`; every stage is also a command of its own. "
            "`ltprobe COMMAND --help` explains each."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_parser = subparsers.add_parser(
        "bench", help="benchmarks asked for by the issues (each prints one JSON object last)",
        description="Benchmarks. Each compares the toolkit with a baseline in the same run and "
                    "prints one JSON object on its last line of output.")
    bench = bench_parser.add_subparsers(dest="bench", metavar="NAME")
    bench_parser.set_defaults(handler=lambda args: _missing(bench_parser))
    commands = Commands(subparsers, bench)
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def _missing(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
"""A full disk, an exceeded quota, a file larger than the process may write."""


class _Stderr(logging.StreamHandler):
    """A handler writing to the `sys.stderr` of the moment (a test's capture, a redirection)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _Plain(logging.Formatter):
    """The message alone at INFO; `ltprobe: warning: ...` (debug, error) otherwise."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno == logging.INFO else f"ltprobe: {record.levelname.lower()}: {message}"


@contextmanager
def console_logging(level: int) -> Iterator[None]:
    """Within the block the toolkit's messages at `level` and above show on stderr (other
    libraries' at WARNING and above); the previous configuration is restored after."""
    handler = _Stderr()
    handler.setLevel(level)
    handler.setFormatter(_Plain("%(message)s"))
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(name) for name in PACKAGES)]
    before = [each.level for each in loggers]
    root.setLevel(max(level, logging.WARNING))
    for each in loggers[1:]:
        each.setLevel(level)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for each, old in zip(loggers, before):
            each.setLevel(old)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    args.quiet = getattr(args, "quiet", False)
    level = LOG_LEVELS[getattr(args, "log_level", "warning" if args.quiet else "info")]
    with console_logging(level), quiet_progress(args.quiet):
        logger.debug("command: ltprobe %s", shlex.join(sys.argv[1:] if argv is None else argv))
        return _call(args)


def _call(args: argparse.Namespace) -> int:
    try:
        status = args.handler(args)
    except InputError as exc:
        print(f"ltprobe: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _FULL:
            raise
        out = getattr(args, "out", None)
        where = f"{exc.filename}: " if exc.filename else f"writing under {out}: " if out else ""
        print(f"ltprobe: error: {where}{exc.strerror or 'no space left on device'}; free space (or raise the "
              "quota or file-size limit) and run the same command again: finished outputs are kept and "
              "it resumes", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ltprobe: interrupted; completed outputs are kept and a re-run resumes", file=sys.stderr)
        return 130
    return int(status or 0)

