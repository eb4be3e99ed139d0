"""`ltprobe run`: the main job."""

from __future__ import annotations

import argparse

RUN_HELP = """\
Run the whole job: (generate a controlled world and train a model on it,) link the QA pairs
and the corpus, index the corpus, count the relevant documents of each QA pair, evaluate the
model closed-book, with retrieved passages and with oracle passages, and write summary.json,
report.html and plots/ into --out.

Without CONFIG the embedded default (configs/demo.yaml) runs: a generated world, a small model
trained on it on the CPU, the embedded index and vLLM. Each stage skips work whose output is
complete, so running again on the same folder resumes where a killed job stopped.

Examples:
  ltprobe run --out runs/demo
  ltprobe run my_job.yaml --out runs/triviaqa --set model.options.tensor_parallel_size=4
"""


def register(commands) -> None:
    parser = commands.add("run", _run, help="the main job: link, count, evaluate, report",
                          description=RUN_HELP)
    parser.add_argument("config", nargs="?", help="YAML config (default: the embedded configs/demo.yaml)")
    parser.add_argument("--out", required=True, help="run folder to write (resumed when it exists)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config setting, e.g. --set eval.shots=4 (repeatable; "
                             "VALUE is read as YAML)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _run(args: argparse.Namespace) -> int:
    from probe._config import load_config
    from probe._run import run

    run(load_config(args.config, args.overrides), args.out, quiet=args.quiet)
    return 0
