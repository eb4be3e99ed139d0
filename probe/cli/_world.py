"""`ltprobe world` and `ltprobe train`: the controlled world and the model trained on it."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from entity_linking.io import InputError
from probe.cli import Commands, add_on_error

logger = logging.getLogger(__name__)

_WORLD_HELP = """\
Generate a controlled world: fictional people with a birth city, an occupation and an
employer; a training corpus in which the number of documents stating each fact is
long-tailed (from none to a few hundred); QA pairs whose true relevant-document counts are
known. Written to OUT:

  corpus.jsonl        {"id", "text", "entities"}  training corpus with gold links
  reading.jsonl       {"id", "text"}  reading-comprehension documents about fresh names,
                      in the retrieval prompt format (teaches the model to use a passage)
  encyclopedia.jsonl  {"id", "text", "entities"}  one article per person: the retrieval
                      collection (not part of the training corpus)
  kb.jsonl            {"id", "name", "aliases", "prior", "type", "description"}
  qa.jsonl            {"id", "question", "answers", "q_entity", "a_entity", "relation", "stated_docs"}
  truth.jsonl         {"id", "count"}  corpus documents whose gold links hold both entities
  world.json          the settings used

The same seed and settings write the same files."""

_TRAIN_HELP = """\
Train a byte-level BPE tokenizer and a small Llama model on JSONL files with a "text" field,
and save a model folder that transformers and vLLM load. Scheduled by steps; on a GPU where
torch sees one, else on every core of the CPU; bf16 autocast where the device computes bf16
natively, else fp32. In fp32 on an x86-64 CPU torch's AVX2 kernels are used (--cpu-kernels),
so every such CPU trains the same model, bit for bit, at any number of threads. Cached: when
OUT/ltprobe_train.json matches the settings, the input files and the CPU kernels used, nothing
is trained again.

With --world DIR the training files are DIR/corpus.jsonl, DIR/reading.jsonl and DIR/drill.jsonl,
mixed as the demo recipe's `mix` says. Several --texts files are drawn from in proportion to
their sizes unless --mix gives their shares by phase."""


def register(commands: Commands) -> None:
    world = commands.add("world", _world, help="generate a controlled world (corpus, KB, QA, true counts)",
                         description=_WORLD_HELP)
    world.add_argument("--out", required=True, type=Path, help="folder to write the world into")
    world.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    from probe.world import TrainConfig, WorldConfig

    world_defaults, train_defaults = WorldConfig(), TrainConfig()
    world.add_argument("--people", type=int, default=world_defaults.people,
                       help=f"number of people (default {world_defaults.people}; cities, employers and "
                            "occupations scale with it)")
    world.add_argument("--reading-docs", type=int, default=None,
                       help=f"reading-comprehension documents (default {world_defaults.reading_docs})")

    train = commands.add("train", _train, help="train a small Llama model (GPU where present, else all CPU cores; cached)",
                         description=_TRAIN_HELP)
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--world", type=Path, help="a world folder: train on its corpus.jsonl, reading.jsonl and drill.jsonl")
    source.add_argument("--texts", type=Path, nargs="+", metavar="FILE",
                        help="JSONL(.gz/.zst) files with a 'text' field; with several, --mix sets their shares")
    train.add_argument("--out", required=True, type=Path, help="model folder to write")
    for flag, kind, what in (("steps", int, "optimizer steps"), ("batch-size", int, "rows per step"),
                             ("seq-len", int, "tokens per row"), ("hidden-size", int, "model width"),
                             ("layers", int, "transformer layers"), ("heads", int, "attention heads"),
                             ("vocab-size", int, "tokenizer vocabulary"), ("lr", float, "peak learning rate")):
        default = getattr(train_defaults, flag.replace("-", "_"))
        train.add_argument(f"--{flag}", type=kind, help=f"{what} (default {default})")
    train.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                       help="default auto: bf16 where the device computes it natively, else fp32")
    train.add_argument("--threads", type=int, help="torch threads on a CPU (default: every core this process may use)")
    train.add_argument("--device", help="auto (default: cuda where torch sees a GPU), cpu or cuda[:N]")
    train.add_argument("--cpu-kernels", choices=["avx2", "native"],
                       help="fp32 on an x86-64 CPU: avx2 (default) trains the same model, bit for bit, on every "
                            "CPU with AVX2 at any thread count; native uses the CPU's widest kernels (AVX-512 "
                            "where present: another model)")
    train.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    train.add_argument("--save-steps", metavar="S1,S2,...",
                       help="also save the model after these steps to OUT/checkpoints/step-N (checkpoints "
                            "for a learning curve; OUT/train_order.npz, written by every training, says "
                            "which documents each step trained on: `ltprobe count --order`)")
    train.add_argument("--mix", metavar="JSON",
                       help='shares of the training files by phase, [[until, share1, share2, ...], ...], '
                            '`until` a fraction of the steps, e.g. [[0.2, 0.3, 0.7], [1.0, 0.8, 0.2]] '
                            "(default: the demo recipe's with --world, the files' sizes with --texts)")
    add_on_error(train)

    bench = commands.add_bench("train", _bench_train,
                               help="demo training on the CPU: torch's AVX2 kernels vs the widest, same model bytes",
                               description=_BENCH_TRAIN_HELP)
    bench.add_argument("--steps", type=int, default=200, help="steps per training: the demo recipe shortened to them (200)")
    bench.add_argument("--threads", default=None, metavar="T1,T2,...",
                       help="thread counts of the pinned trainings (default: 1 and every core)")
    bench.add_argument("--repeats", type=int, default=2, help="side-by-side repeats of avx2 and native (2)")


_BENCH_TRAIN_HELP = """\
The demo recipe shortened to --steps steps on the demo world, in fp32 on the CPU, each training in a
fresh `ltprobe train` process. Alternating --repeats times on every core: torch's AVX2 kernels
(`cpu_kernels: avx2`, the default, which makes every x86-64 CPU with AVX2 train the same model
bit for bit) against the CPU's widest (native: AVX-512 where present); then the pinned training
on each --threads count. Prints steps/s and each model's sha256, and one JSON object last:
the speed ratio, and whether the pinned models are the same bytes and the native one not."""


def _bench_train(args: argparse.Namespace) -> int:
    from probe.pipeline import bench_train

    threads = None
    if args.threads:
        try:
            threads = [int(t) for t in args.threads.split(",")]
        except ValueError:
            raise InputError(f"--threads: give thread counts like 1,2,4, not {args.threads!r}") from None
    result = bench_train(steps=args.steps, threads=threads, repeats=args.repeats)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}))
    return 0


def _world(args: argparse.Namespace) -> int:
    from probe.world import WorldConfig, generate_world

    config = WorldConfig(seed=args.seed, people=args.people)
    if args.reading_docs is not None:
        config.reading_docs = args.reading_docs
    out = generate_world(args.out, config)
    logger.info(f"world written to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from probe.world import train_config, train_model, world_training_files

    save_steps = None
    if args.save_steps:
        from indexes import parse_steps

        save_steps = parse_steps(args.save_steps, "--save-steps")
    config = train_config(save_steps=save_steps, **{name: getattr(args, name) for name in (
        "steps", "batch_size", "seq_len", "hidden_size", "layers", "heads", "vocab_size", "lr", "precision",
        "threads", "device", "cpu_kernels")})
    if args.mix:
        try:
            config.mix = json.loads(args.mix)
        except json.JSONDecodeError as e:
            raise InputError(f"--mix: not JSON ({e}): {args.mix}") from None
        if not isinstance(config.mix, list) or not all(
                isinstance(p, list) and len(p) >= 2 and all(isinstance(x, (int, float)) for x in p) for p in config.mix):
            raise InputError(f"--mix: give a list of phases [[until, share1, share2, ...], ...], not {args.mix}")
    elif args.texts:
        config.mix = None  # the default mix is for a world's three files
    files = world_training_files(args.world) if args.world else list(args.texts)
    out = train_model(args.out, files, config, seed=args.seed, on_error=args.on_error)
    logger.info(f"model folder: {out}")
    return 0

