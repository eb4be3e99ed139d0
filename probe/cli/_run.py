"""`ltprobe run`: the main job."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

RUN_HELP = """\
Run the whole job: (generate a controlled world and train a model on it,) link the QA pairs
and the corpus, index the corpus, count the relevant documents of each QA pair, evaluate the
model closed-book, with retrieved passages and with oracle passages, and write summary.json,
report.html and plots/ into --out.

Without CONFIG the embedded default (`demo`, probe/configs/demo.yaml, shipped in the package)
runs: a generated world, a small model trained on it (GPU where present, else every CPU core),
the embedded index and vLLM (transformers where vLLM is not installed). CONFIG may also name a
packaged config: `demo`, `study` (the full-size world and model: about an hour on 2 CPU cores,
minutes on a GPU) or `smoke` (a few minutes; it learns little).

Each stage records what it was computed from (the settings that reach it, the size and time of
its input files, the stages before it) in manifest.json: running again on the same folder skips
the stages whose inputs did not change, recomputes the others and every stage after them (and
says why), and resumes where a killed job stopped. Another job's outputs can stand in for stages
(data.linked, data.qa_entities, data.counts, index.path): N evaluation jobs or M models then
share one linking and one index.

Examples:
  ltprobe run --out runs/demo
  ltprobe run study --out runs/study
  ltprobe run my_job.yaml --out runs/triviaqa --set model.options.tensor_parallel_size=4
  ltprobe run my_job.yaml --out runs/triviaqa --set eval.shots=5     # recomputes eval, summary, report
  ltprobe run my_job.yaml --out runs/model-b --set model.path=B --set index.path=runs/triviaqa/index \
      --set data.qa_entities=runs/triviaqa/qa_entities.jsonl
"""


def register(commands) -> None:
    parser = commands.add("run", _run, help="the main job: link, count, evaluate, report",
                          description=RUN_HELP)
    parser.add_argument("config", nargs="?", help="YAML config, or demo|study|smoke for a packaged one (default: demo)")
    parser.add_argument("--out", required=True, help="run folder to write (resumed when it exists)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config setting, e.g. --set eval.shots=4 (repeatable; "
                             "VALUE is read as YAML)")
    parser.add_argument("--force", action="append", default=[], metavar="STAGE",
                        help="recompute this stage (and the stages after it) even when nothing it depends "
                             "on changed; repeatable. Stages: world, qa, link-qa, link-corpus, index, count, "
                             "eval, summary, report")
    _register_more(commands)


def _run(args: argparse.Namespace) -> int:
    from probe.pipeline import load_config, run

    run(load_config(args.config, args.overrides), args.out, quiet=args.quiet, force=args.force)
    return 0


COUNTERFACTUAL_HELP = """\
The causal check of the original study, on a finished run of a generated world: sample
--per-bucket questions from each count bucket, remove every corpus document the index says is
relevant to them, retrain the model with the run's recipe and seed on the reduced corpus (same
tokenizer, every kept document in the same row at the same step, so the removal is the only
difference), and evaluate both models on the sampled questions and on a control sample, matched
by count bucket, whose documents were all kept. Writes RUN/counterfactual.json (accuracy before and after per bucket, the drop with a
95% interval, documents removed; the control's drop) and adds a section to RUN/report.html.
If knowledge comes from the relevant documents, the drop grows with the original count and the
control's drop stays near zero. Retraining costs as much as the run's training.
"""

MERGE_HELP = """\
Join the run folders of a job evaluated in shards (each run with --set eval.shard=i/n, e.g. one
per GPU node or job-array task) into one run folder with the summary and report of the whole
job. The shards must share their config (but for eval.shard) and counts, and cover every shard
exactly once.
"""


def _register_more(commands) -> None:
    parser = commands.add("counterfactual", _counterfactual, help="remove relevant documents, retrain, "
                          "measure the accuracy drop per count bucket", description=COUNTERFACTUAL_HELP)
    parser.add_argument("--run", required=True, help="a finished run folder of a generated world")
    parser.add_argument("--per-bucket", type=int, default=30, help="questions sampled per count bucket")
    parser.add_argument("--control", type=int, default=None,
                        help="control questions per count bucket (default: --per-bucket)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling and the bootstrap")

    parser = commands.add("merge", _merge, help="join the shards of a sharded evaluation into one run",
                          description=MERGE_HELP)
    parser.add_argument("shards", nargs="+", help="run folders of the shards")
    parser.add_argument("--out", required=True, help="run folder to write (may be a new folder)")


def _counterfactual(args: argparse.Namespace) -> int:
    from entity_linking.logs import log_file
    from probe.pipeline import counterfactual

    with log_file(Path(args.run) / "run.log", header=f"ltprobe counterfactual on {args.run}"):
        result = counterfactual(args.run, per_bucket=args.per_bucket, control=args.control, seed=args.seed)
    for b in result["buckets"]:
        print(f"count {b['lo']}-{b['hi'] - 1}: n={b['n']}, removed {b['docs_removed']} docs, "
              f"accuracy {_fmt(b['before'])} -> {_fmt(b['after'])}, drop {_fmt(b['drop'])} {_ci(b['drop_ci'])}")
    c = result["control"]
    print(f"control: n={c['n']}, accuracy {_fmt(c['before'])} -> {_fmt(c['after'])}, "
          f"drop {_fmt(c['drop'])} {_ci(c['drop_ci'])}")
    logger.info(f"written: {args.run}/counterfactual.json and the report's counterfactual section")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from entity_linking.logs import log_file
    from probe.pipeline import merge

    with log_file(Path(args.out) / "run.log", header=f"ltprobe merge {' '.join(args.shards)} into {args.out}"):
        summary = merge(args.shards, args.out)
    print(f"merged {len(args.shards)} shards: {summary['n_questions']} questions; report: {args.out}/report.html")
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(ci) -> str:
    return "" if not ci else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"
