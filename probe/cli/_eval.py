"""`ltprobe eval`, `ltprobe rag` and `ltprobe bench eval`.

Handlers import what they need when they run, so `ltprobe --help` never starts torch or vLLM.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)

EVAL_HELP = """\
Evaluate a model on a QA set closed-book (k-shot `Q: ...\\nA: ...` prompts, greedy until a
newline) and write OUT/predictions.jsonl; with --counts also OUT/summary.json (accuracy per
decade bucket of the relevant-document count, slope per decade with a bootstrap interval,
Spearman correlation). Completions are cached in OUT/cache, so a killed job resumes where it
stopped; --shard I/N evaluates one shard of a job array (OUT/predictions.I-of-N.jsonl).

Several --model values evaluate each model in turn on the same prompts (predictions.jsonl rows
carry `model`). summary.json keeps the first model's results in its usual keys and adds
`models` (each model's results and parameter count) and `scaling`, the original study's
analysis across sizes: accuracy on questions with fewer than --scaling-max-count relevant
documents against log10(parameters), the linear fit, its R^2 and, with --target-accuracy, the
parameter count the fit needs to reach that accuracy. Parameter counts are read from the
models' safetensors headers, or given with --params MODEL=N.

Examples:
  ltprobe eval --qa runs/demo/qa.jsonl --model runs/demo/model --counts runs/demo/counts.jsonl --out runs/eval
  ltprobe eval --qa trivia_qa --preset trivia_qa --model EleutherAI/gpt-neo-125m EleutherAI/gpt-neo-1.3B \
      EleutherAI/gpt-neo-2.7B --counts counts.jsonl --target-accuracy 0.5 --out runs/scaling
  ltprobe eval --qa trivia_qa --preset trivia_qa --model EleutherAI/gpt-neo-1.3B --out runs/tqa \\
      --option tensor_parallel_size=2 --shard 0/8
  ltprobe eval --qa qa.jsonl --model served-name --backend openai --base-url http://127.0.0.1:8000/v1 --out runs/x
"""

RAG_HELP = """\
Evaluate a model with retrieved passages: the top --k BM25 passages of INDEX_DIR (built with
`ltprobe index`) as lines before each question, in the --shots in-context examples too (each
with its own passages): by default the original study's 4-shot `Q: ...\\nA: ...` prompt with
the top-3 passages prepended, so that with --closed-book the two settings' prompts differ
only by the passages (--prompt-format rag for `Passage: ...\\nQuestion: ...\\nAnswer:`).
Writes OUT/predictions.jsonl (setting rag; with --oracle also setting oracle, from gold passages
or passages of documents linked to both the question and answer entity, see --qa-entities;
with --closed-book also the closed-book setting) and OUT/retrieval.json (recall@1,3,5,10,20
overall and per count bucket, retrieval precision). With --counts also OUT/summary.json, with
count_dependence_reduction when --closed-book is given, and adaptive retrieval.

Example:
  ltprobe rag --qa runs/demo/qa.jsonl --model runs/demo/model --index runs/demo/index \\
      --qa-entities runs/demo/qa_entities.jsonl --counts runs/demo/counts.jsonl --oracle --closed-book --out runs/rag
"""

BENCH_HELP = """\
The same local model and the same prompts (4-shot QA prompts, greedy until a newline) through
vLLM in this process and through transformers' batched generate. Prints tokens per second of
each, their ratio, and the share of identical greedy completions; the last line is one JSON
object. Without --model a small Llama is trained on synthetic facts first (about a minute on a
CPU, kept in --model-dir for the next run).
"""


def _common(parser: argparse.ArgumentParser) -> None:
    from probe.cli import add_on_error

    parser.add_argument("--qa", required=True, help="QA set: JSONL/CSV/TSV/Parquet file, a data-set "
                        "folder, or a Hugging Face data set id")
    parser.add_argument("--preset", choices=["trivia_qa", "nq_open", "popqa"],
                        help="field mapping of a known data set (with --qa set to the preset's name, its hub id)")
    parser.add_argument("--split", help="data-set split (Hugging Face data sets)")
    parser.add_argument("--mapping", action="append", default=[], metavar="OURS=THEIRS",
                        help="field mapping, e.g. --mapping answers=answer.aliases (repeatable)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N questions")
    parser.add_argument("--model", required=True, nargs="+", action="extend", metavar="MODEL",
                        help="model folder or hub id (openai: the served name); several (--model A B, or "
                             "--model repeated) evaluate each in turn, the first being the primary model")
    parser.add_argument("--params", action="append", default=[], metavar="MODEL=N",
                        help="parameter count of a model for the scaling analysis, e.g. --params "
                             "served-name=1.3e9 (default: read from its safetensors weights; repeatable)")
    parser.add_argument("--scaling-max-count", type=int, default=100,
                        help="scaling analysis over questions with fewer relevant documents than this (100)")
    parser.add_argument("--target-accuracy", type=float,
                        help="scaling analysis: extrapolate the parameters needed for this accuracy (0-1)")
    parser.add_argument("--backend", choices=["vllm", "openai", "transformers"], default="vllm",
                        help="generation backend (default: vllm in this process)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="backend option, VALUE read as YAML, e.g. --option dtype=float32 "
                             "--option max_model_len=2048 --option tensor_parallel_size=4 (repeatable)")
    parser.add_argument("--base-url", help="openai backend: the server's /v1 URL (API key from $OPENAI_API_KEY)")
    parser.add_argument("--serve", action="store_true",
                        help="openai backend: start a vLLM server for --model on 127.0.0.1 for this job and "
                             "stop it at the end (--option values become server flags, e.g. max_model_len=2048)")
    parser.add_argument("--counts", help="counts.jsonl of `ltprobe count`: also write summary.json")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--max-tokens", type=int, default=16, help="tokens to generate at most (16)")
    parser.add_argument("--scoring", choices=["em", "contains"], default=None,
                        help="which score is `correct`: SQuAD exact match (em) or alias containment "
                             "(contains); default: the QA set's own (contains for --preset popqa, as "
                             "PopQA scored, else em)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shot pool and shot choice (0)")
    parser.add_argument("--pool-size", type=int, default=16,
                        help="questions set aside as the in-context example pool, never scored (16)")
    parser.add_argument("--chat", action="store_true", help="wrap prompts in the model's chat template")
    parser.add_argument("--shard", help="evaluate shard I of N (0 <= I < N), e.g. 0/8")
    parser.add_argument("--chunk-size", type=int, default=1024,
                        help="prompts handed to the backend at once and cached together (1024)")
    parser.add_argument("--min-bucket", type=int, default=20, help="flag buckets with fewer questions (20)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (1000)")
    parser.add_argument("--gold-logprob", action="store_true",
                        help="also score each question's gold answer log-probability (summed over its tokens, "
                             "best alias): `gold_logprob` in predictions, its slope per decade in summary.json")
    parser.add_argument("--counts-by-step", metavar="FILE",
                        help="with --counts and checkpoints as --model (folders of `ltprobe train --save-steps`, "
                             "or NAME@stepN revisions): relevant documents seen by step from `ltprobe count "
                             "--order`; summary.json adds `learning`")
    add_on_error(parser)


def _one_line(handler: Any) -> Any:
    """Report a backend failure (a dead server, retries exhausted) as one line, exit status 1;
    the command's messages are also appended to `--out`/run.log."""

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from entity_linking.logs import log_file
        from probe.generation import GenerationError

        try:
            with log_file(Path(args.out) / "run.log", header=f"ltprobe {args.command} into {args.out}"):
                return handler(args)
        except GenerationError as exc:
            print(f"ltprobe: error: {exc}", file=sys.stderr)
            return 1

    return run


def register(commands: Any) -> None:
    p = commands.add("eval", _one_line(_eval), help="evaluate a model closed-book on a QA set", description=EVAL_HELP)
    _common(p)
    p.add_argument("--shots", type=int, default=4, help="in-context examples per prompt (4)")
    p.add_argument("--prompt-format", default="qa",
                   help="prompt format: qa (`Q: ...\\nA: ...`, the original study's; default) or a JSON "
                        "format file (fields shot, query, stop, passage)")

    p = commands.add("rag", _one_line(_rag), help="evaluate a model with retrieved (and oracle) passages",
                     description=RAG_HELP)
    _common(p)
    p.add_argument("--index", required=True, help="index folder written by `ltprobe index`")
    p.add_argument("--es-url", help="Elasticsearch URL (with --es-index) instead of the index folder's")
    p.add_argument("--es-index", help="Elasticsearch index name")
    p.add_argument("--k", type=int, default=3, help="passages per prompt (3)")
    p.add_argument("--shots", type=int, default=4,
                   help="in-context examples per prompt, each with its own retrieved passages (4)")
    p.add_argument("--prompt-format", default="qa",
                   help="prompt format: qa (default: `Q: ...\\nA:` with the passages as lines before "
                        "each question, the original study's; closed-book prompts are the same without "
                        "passages), rag (`Passage: ...\\nQuestion: ...\\nAnswer:`), or a JSON format file")
    p.add_argument("--filter-shots", action="store_true",
                   help="use only shots whose passages contain their answer (default: every shot, as "
                        "the original study)")
    p.add_argument("--oracle", action="store_true", help="also evaluate with oracle passages")
    p.add_argument("--qa-entities", help="qa_entities.jsonl (for oracle passages from entity-linked documents)")
    p.add_argument("--closed-book", action="store_true",
                   help="also evaluate closed-book (--closed-book-shots), for count_dependence_reduction")
    p.add_argument("--closed-book-shots", type=int, default=None,
                   help="shots of the closed-book setting (default: --shots, the same shots)")

    p = commands.add_bench("eval", _bench, help="vLLM vs transformers generate: tokens/s and same answers",
                           description=BENCH_HELP)
    p.add_argument("--model", help="model folder (default: train a small local model)")
    p.add_argument("--model-dir", default=None,
                   help="where the default model is trained and kept (default: a folder in the temp dir)")
    p.add_argument("--prompts", type=int, default=512, help="number of prompts (512)")
    p.add_argument("--max-tokens", type=int, default=16, help="tokens to generate at most (16)")
    p.add_argument("--batch-size", type=int, default=64, help="transformers batch size (64)")
    p.add_argument("--dtype", default="float32", help="dtype of both backends (float32)")
    p.add_argument("--no-stop", action="store_true",
                   help="generate --max-tokens tokens without stopping at the newline (decoding throughput)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="vLLM option, VALUE read as YAML (repeatable)")


def _options(items: list[str]) -> dict[str, Any]:
    import yaml

    from entity_linking.io import InputError

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--option {item!r}: expected KEY=VALUE")
        options[key] = yaml.safe_load(value)
    return options


def _mapping(items: list[str]) -> dict[str, str] | None:
    from entity_linking.io import InputError

    mapping = {}
    for item in items:
        ours, sep, theirs = item.partition("=")
        if not sep or not ours or not theirs:
            raise InputError(f"--mapping {item!r}: expected OURS=THEIRS, e.g. answers=answer.aliases")
        mapping[ours] = theirs
    return mapping or None


def _load(args: argparse.Namespace) -> tuple[list[dict], Any]:
    from entity_linking.io import SkipCounter
    from probe.data import load_qa

    skips = SkipCounter()
    qa = load_qa(args.qa, preset=args.preset, mapping=_mapping(args.mapping), split=args.split,
                 on_error=args.on_error, skips=skips)
    if args.limit is not None:
        qa = qa[: args.limit]
    return qa, skips


def _options_of(args: argparse.Namespace) -> Any:
    """The `EvalOptions` that `ltprobe eval` and `ltprobe rag` share."""
    from probe.pipeline import EvalOptions, parse_params

    return EvalOptions(
        backend=args.backend, options=_options(args.option), base_url=args.base_url, serve=args.serve,
        params=parse_params(args.params), max_tokens=args.max_tokens, scoring=_scoring(args), seed=args.seed,
        pool_size=args.pool_size, chat=args.chat, shard=args.shard, chunk_size=args.chunk_size,
        progress=not args.quiet, gold_logprob=args.gold_logprob, min_bucket=args.min_bucket, n_boot=args.n_boot,
        scaling_max_count=args.scaling_max_count, target_accuracy=args.target_accuracy,
        counts_by_step=args.counts_by_step)


def _read_counts(path: str | None, on_error: str) -> list[dict] | None:
    if not path:
        return None
    from entity_linking.io import read_records

    return [r for _, r in read_records(path, on_error=on_error, required={"id": (str, int)})]


def _invocation(args: argparse.Namespace) -> dict[str, Any]:
    """What the manifest records of the command line."""
    return {"command": sys.argv, "args": {k: v for k, v in vars(args).items() if k != "handler"}}


def _print_results(args: argparse.Namespace, result: Any, skips: Any) -> None:
    several = len(args.model) > 1
    if result.summary is not None:
        summary = result.summary.to_dict()
        for model in summary.get("models") or [summary]:
            for name, s in model["settings"].items():
                slope = s["slope_per_decade"]
                print(f"{model['model'] + ': ' if several else ''}{name}: accuracy {s['accuracy']:.3f} over "
                      f"{s['n']} questions; slope per decade {'n/a' if slope is None else f'{slope:+.3f}'}")
        if summary.get("count_dependence_reduction") is not None:
            print(f"count dependence reduction: {summary['count_dependence_reduction']:.2f}")
        from probe.analysis import count_dependence_lines

        for line in count_dependence_lines(summary):
            print(line)
        scaling = summary.get("scaling")
        if scaling is not None and scaling["slope"] is not None:
            r2 = "n/a" if scaling["r2"] is None else f"{scaling['r2']:.2f}"
            print(f"scaling ({scaling['setting']}, count < {scaling['max_count']}): accuracy "
                  f"{scaling['intercept']:+.3f} {scaling['slope']:+.3f} x log10(parameters), R^2 {r2}"
                  + ("" if scaling["parameters_for_target"] is None else
                     f"; {scaling['target_accuracy']:.0%} needs about {scaling['parameters_for_target']:.2g} "
                     "parameters"))
    else:
        by_setting: dict[tuple[str, str], list[bool]] = {}
        for p in result.predictions:
            by_setting.setdefault((p["model"], p["setting"]), []).append(p["correct"])
        for (model, name), ys in by_setting.items():
            print(f"{model + ': ' if several else ''}{name}: accuracy {sum(ys) / len(ys):.3f} "
                  f"over {len(ys)} questions")
    logger.info(f"wrote {result.path}")
    if skips.skipped:
        logger.warning(skips.summary())


def _eval(args: argparse.Namespace) -> int:
    from probe.evaluation import parse_shard
    from probe.pipeline import evaluate_models

    parse_shard(args.shard)  # a bad --shard fails before the QA set is read
    qa, skips = _load(args)
    result = evaluate_models(qa, args.model, args.out, shots=args.shots, prompt_format=args.prompt_format,
                             counts=_read_counts(args.counts, args.on_error), options=_options_of(args),
                             invocation=_invocation(args), skips=skips)
    _print_results(args, result, skips)
    return 0


def _rag(args: argparse.Namespace) -> int:
    from probe.evaluation import parse_shard
    from probe.pipeline import rag

    parse_shard(args.shard)
    qa, skips = _load(args)
    result = rag(qa, args.model, args.out, index=args.index, es_url=args.es_url, es_index=args.es_index, k=args.k,
                 shots=args.shots, prompt_format=args.prompt_format, filter_shots=args.filter_shots,
                 oracle=args.oracle, qa_entities=args.qa_entities, closed_book=args.closed_book,
                 closed_book_shots=args.closed_book_shots, counts=_read_counts(args.counts, args.on_error),
                 options=_options_of(args), invocation=_invocation(args), skips=skips)
    _print_results(args, result, skips)
    r = result.retrieval["recall_at_k"]["overall"]
    print("recall@k: " + ", ".join(f"{k}: {v:.3f}" for k, v in r.items() if v is not None))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from probe.pipeline import bench_eval

    print(json.dumps(bench_eval(args.model, model_dir=args.model_dir, prompts=args.prompts,
                                max_tokens=args.max_tokens, batch_size=args.batch_size, dtype=args.dtype,
                                stop=not args.no_stop, options=_options(args.option))))
    return 0


def _scoring(args: argparse.Namespace) -> str:
    """--scoring, or the QA set's own: containment for PopQA (as published), else exact match."""
    from probe.data import default_scoring

    return args.scoring or default_scoring(args.preset)
