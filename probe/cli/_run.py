"""`ltprobe run`: the main job; `ltprobe counterfactual`, `ltprobe merge` and `ltprobe bench pipeline`
(its scale rehearsal)."""

from __future__ import annotations

import argparse
import json
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

    p = commands.add_bench("pipeline", _bench_pipeline, help="scale rehearsal: link -> index -> count on a "
                           "generated Pile-like corpus, projected to The Pile", description=BENCH_PIPELINE_HELP)
    p.add_argument("--docs", type=int, default=1_000_000, help="documents (default 1000000)")
    p.add_argument("--shards", type=int, default=16, help=".jsonl.zst files of the corpus (default 16)")
    p.add_argument("--words", type=int, default=650, help="words per document, about (default 650)")
    p.add_argument("--entities", type=int, default=2_000_000, help="entities in the knowledge base (default 2000000)")
    p.add_argument("--aliases", type=int, default=6_000_000, help="names in all (default 6000000)")
    p.add_argument("--qa", type=int, default=10_000, help="QA pairs (default 10000)")
    p.add_argument("--workers", type=int, default=None, help="linking processes (default: all cores)")
    p.add_argument("--work-dir", default=None,
                   help="keep the generated inputs here and reuse them when the settings match (default: a "
                        "temporary folder, removed at the end); keep it out of the repository")
    p.add_argument("--keep", action="store_true",
                   help="keep the stage outputs (linked shards, index, counts) in WORK_DIR/run")
    p.add_argument("--node-cores", type=int, default=64, help="cores of one node in the projection (64)")
    p.add_argument("--ray-nodes", type=int, default=8, help="nodes of the Ray cluster in the projection (8)")
    p.add_argument("--ray-efficiency", type=float, default=0.8,
                   help="scale-out efficiency of linking on the Ray cluster (0.8, as `bench scale` measured)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


BENCH_PIPELINE_HELP = """\
A scale rehearsal on this machine: a knowledge base of --entities entities and --aliases names
(as `bench kb` generates it), a corpus of --docs documents of about --words words in --shards
.jsonl.zst files that mention its entities, and --qa QA pairs about its people, through
link-qa -> link-corpus -> index (embedded) -> count, each stage a fresh process calling the public
function. Prints per stage the wall and CPU seconds, items per second (and per CPU second), peak
resident memory (the stage's process and its largest worker) and bytes written per document, then
The Pile (211M documents) projected on one --node-cores node and on a Ray cluster of --ray-nodes
such nodes; the last line is one JSON object. Inputs are generated again unless --work-dir holds
those of the same settings. A million 650-word documents are about 4 GB of JSONL (0.6 GB
compressed); the index keeps their text and BM25 passages too (about 12 KB a document).
"""


def _bench_pipeline(args: argparse.Namespace) -> int:
    from probe.pipeline import bench_pipeline

    result = bench_pipeline(docs=args.docs, shards=args.shards, words=args.words, entities=args.entities,
                            aliases=args.aliases, qa=args.qa, workers=args.workers, work_dir=args.work_dir,
                            keep=args.keep, seed=args.seed, node_cores=args.node_cores, ray_nodes=args.ray_nodes,
                            ray_efficiency=args.ray_efficiency, progress=not args.quiet)
    print(json.dumps(result))
    return 0


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
