"""The benchmarks of probe, one place (`ltprobe bench eval`, `ltprobe bench generate`): each
prints its side-by-side table on stdout and returns the figures that the command prints as one
JSON object on its last line.

Without a model, both train the same small one with `probe.world.train_model` on synthetic
`Q: ...\\nA: ...` facts (about a minute on a CPU; kept for the next run)."""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, write_jsonl

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(tempfile.gettempdir()) / "ltprobe-bench-eval-model-v2"
"""Where the benchmarks' default model is trained and kept (v2: trained by `train_model`)."""


def bench_model(out_dir: str | Path = DEFAULT_MODEL_DIR) -> Path:
    """A small Llama (hidden size 128, 2 layers) trained on synthetic facts into `out_dir`, with
    the toolkit's one trainer (`probe.world.train_model`, cached: a finished folder is reused).
    A real model folder that transformers and vLLM load offline, whose greedy answers follow
    the `Q: ...\\nA: ...` format (an answer, then a newline)."""
    from probe.world import TrainConfig, train_model

    out = Path(out_dir)
    facts = out / "facts.jsonl"
    if not facts.exists():
        write_jsonl(facts, [{"id": str(i), "text": t} for i, t in enumerate(qa_texts(400, seed=0))])
    config = TrainConfig(steps=300, batch_size=16, seq_len=96, vocab_size=600, hidden_size=128, layers=2, heads=2,
                         intermediate_size=512, max_position_embeddings=512, lr=3e-3, mix=None, seed=0)
    return train_model(out, [facts], config, progress=False)


def qa_texts(n_facts: int, seed: int = 0) -> list[str]:
    """Synthetic facts `Q: In what city was NAME born?\\nA: CITY\\n\\n` with made-up names."""
    import random

    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ren", "do", "sa", "vi", "tor", "bel", "an", "qu", "is", "mar", "el"]
    cities = ["Arlon", "Bexley", "Corvin", "Dalmar", "Eskin", "Farrow", "Galen", "Hollis"]
    colours = ["red", "blue", "green", "amber", "violet", "grey"]
    texts = []
    for _ in range(n_facts):
        name = "".join(rng.sample(syllables, 2)).title() + " " + "".join(rng.sample(syllables, 3)).title()
        if rng.random() < 0.5:
            texts.append(f"Q: In what city was {name} born?\nA: {rng.choice(cities)}\n\n")
        else:
            texts.append(f"Q: What is the favourite colour of {name}?\nA: {rng.choice(colours)}\n\n")
    return texts


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def _default_model(model_dir: str | Path | None) -> str:
    folder = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
    logger.info(f"training the benchmark model in {folder} (reused next time) ...")
    return str(bench_model(folder))


def bench_eval(model: str | None = None, *, model_dir: str | Path | None = None, prompts: int = 512,
               max_tokens: int = 16, batch_size: int = 64, dtype: str = "float32", stop: bool = True,
               options: dict[str, Any] | None = None) -> dict[str, Any]:
    """`ltprobe bench eval`: the same model and the same 4-shot QA prompts through vLLM in this
    process and through transformers' batched generate. Prints the table; returns tokens per
    second of each, their ratio, the share of identical greedy completions, ..."""
    _offline()
    from probe.evaluation import Shot, build_prompt, load_format
    from probe.generation import get_generator

    if model is None:
        model = _default_model(model_dir)
    fmt = load_format("qa")
    facts = qa_texts(prompts + 4, seed=1)
    pairs = [(t.split("\n")[0][3:], t.split("\n")[1][3:]) for t in facts]
    texts = [build_prompt(fmt, pairs[i + 4][0], [Shot(q, a) for q, a in pairs[i:i + 4]]) for i in range(prompts)]
    stops = list(fmt.stop) if stop else None

    def timed(generator: Any) -> tuple[list[str], float, int]:
        generator.generate(texts[:8], max_tokens, stops)  # warm-up, not timed
        generator.generated_tokens = 0
        start = time.perf_counter()
        answers = generator.generate(texts, max_tokens, stops)
        return answers, time.perf_counter() - start, generator.generated_tokens

    vllm_options = {"dtype": dtype, "max_model_len": 512, **(options or {})}
    start = time.perf_counter()
    vllm_gen = get_generator("vllm", model, **vllm_options)
    engine_start = time.perf_counter() - start
    try:
        v_answers, v_seconds, v_tokens = timed(vllm_gen)
    finally:
        vllm_gen.close()
    hf_gen = get_generator("transformers", model, dtype=dtype, batch_size=batch_size)
    try:
        h_answers, h_seconds, h_tokens = timed(hf_gen)
        device = hf_gen.device
    finally:
        hf_gen.close()
    same = sum(a.strip() == b.strip() for a, b in zip(v_answers, h_answers)) / len(texts)
    v_rate, h_rate = v_tokens / v_seconds, h_tokens / h_seconds
    print(f"{'':28}{'vLLM':>14}{'transformers':>16}")
    print(f"{'seconds':28}{v_seconds:>14.3f}{h_seconds:>16.3f}")
    print(f"{'generated tokens':28}{v_tokens:>14d}{h_tokens:>16d}")
    print(f"{'tokens per second':28}{v_rate:>14.1f}{h_rate:>16.1f}")
    print(f"{'prompts per second':28}{len(texts) / v_seconds:>14.1f}{len(texts) / h_seconds:>16.1f}")
    print(f"ratio {v_rate / h_rate:.2f} (target >= 3); same answers {same:.4f} (target >= 0.99); "
          f"vLLM engine start {engine_start:.1f} s (not timed)")
    return {"vllm_tokens_per_s": round(v_rate, 1), "transformers_tokens_per_s": round(h_rate, 1),
            "ratio": round(v_rate / h_rate, 3), "same_answers": round(same, 4),
            "prompts": len(texts), "max_tokens": max_tokens, "stop": stops, "dtype": dtype,
            "transformers_batch_size": batch_size, "vllm_seconds": round(v_seconds, 3),
            "transformers_seconds": round(h_seconds, 3), "vllm_engine_start_s": round(engine_start, 1),
            "device": device, "model": model}


def bench_generate(model: str | None = None, *, backend: str = "vllm", candidates: int = 100,
                   backend_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """`ltprobe bench generate`: LINK's critic and reranker scoring of `candidates` values,
    batched per beam step (the toolkit) against one call per question, on the same engine.
    Prints the table; returns candidates per second of each, the speed-up and the largest
    difference between their scores (which should be ~0)."""
    _offline()
    from probe.generation import get_generator
    from probe.link import load_templates, p_yes, parse_rule, partial_statement, sentence

    if candidates < 1:
        raise InputError(f"--candidates must be at least 1, not {candidates}")
    if model is None:
        model = _default_model(None)
    rule = parse_rule("bench", {
        "premise_map": {"is_allergic_to(P, A)": "[P] is allergic to [A]",
                        "is_one_type_of(Z, A)": "[Z] is one type of [A]"},
        "conclusion_map": {"is_not_able_to_eat(P, Z)": "[P] is not able to eat [Z]"},
        "variables": {"P": ["P", "Person", True, None], "A": ["A", "Food Allergen", False, None],
                      "Z": ["Z", "Ingredient", False, None]},
        "domain": "food"})
    step = rule.fill_order()[-1]
    templates = load_templates()
    fact_t, type_t = templates["critic_fact"], templates["critic_type"]
    answers = [fact_t["answers"]["yes"], fact_t["answers"]["no"]]
    words = ["almond", "sesame", "wheat", "shrimp", "walnut", "oat", "soy", "mustard", "celery", "lupin"]
    kinds = ["flour", "oil", "paste", "milk", "butter", "sauce", "crackers", "seeds", "broth", "bread"]
    values = [f"{words[i % 10]} {kinds[(i // 10) % 10]}" + (f" {i // 100}" if i >= 100 else "")
              for i in range(candidates)]
    fills = [{"P": "PersonX", "A": "nuts", "Z": v} for v in values]
    fact_prompts = [fact_t["prompt"].format(statement=sentence(p.render(f)))
                    for f in fills for p in step.predicates if "P" not in p.args]
    type_prompts = [type_t["prompt"].format(value=v, datatype=step.variable.datatype) for v in values]
    texts = [partial_statement(rule, f) for f in fills]
    options = dict(backend_options or {})
    if backend == "vllm":
        options = {"dtype": "float32", "max_model_len": 512, **options}
    start = time.perf_counter()
    generator = get_generator(backend, model, **options)
    engine_start = time.perf_counter() - start
    try:
        generator.next_token_logprobs(type_prompts[:4], answers)  # warm-up, not timed
        generator.mean_logprob(texts[:4])
        start = time.perf_counter()
        batched_critic = generator.next_token_logprobs(fact_prompts + type_prompts, answers)
        batched_oracle = generator.mean_logprob(texts)
        batched = time.perf_counter() - start
        start = time.perf_counter()
        single_critic = [generator.next_token_logprobs([p], answers)[0] for p in fact_prompts + type_prompts]
        single_oracle = [generator.mean_logprob([t])[0] for t in texts]
        single = time.perf_counter() - start
    finally:
        generator.close()
    yes, no = answers
    diff = max([abs(p_yes(a, yes, no) - p_yes(b, yes, no)) for a, b in zip(batched_critic, single_critic)]
               + [abs(a - b) for a, b in zip(batched_oracle, single_oracle) if not (math.isnan(a) or math.isnan(b))])
    n = len(values)
    calls = {"batched": 2, "per_candidate": len(fact_prompts) + len(type_prompts) + len(texts)}
    print(f"{'':34}{'batched (toolkit)':>18}{'per candidate':>16}")
    print(f"{'engine calls':34}{calls['batched']:>18d}{calls['per_candidate']:>16d}")
    print(f"{'seconds':34}{batched:>18.3f}{single:>16.3f}")
    print(f"{'candidates scored per second':34}{n / batched:>18.1f}{n / single:>16.1f}")
    print(f"speed-up {single / batched:.1f}x; largest score difference {diff:.2e}; {n} candidates, "
          f"{len(fact_prompts) + len(type_prompts)} critic questions, {len(texts)} oracle texts; "
          f"engine start {engine_start:.1f} s (not timed)")
    return {"candidates": n, "batched_seconds": round(batched, 4), "per_candidate_seconds": round(single, 4),
            "batched_candidates_per_s": round(n / batched, 1),
            "per_candidate_candidates_per_s": round(n / single, 1),
            "speedup": round(single / batched, 2), "max_score_difference": diff,
            "engine_calls": calls, "backend": backend, "model": model,
            "engine_start_s": round(engine_start, 1)}


def bench_train(*, steps: int = 200, threads: list[int] | None = None, repeats: int = 2,
                work_dir: str | Path | None = None) -> dict[str, Any]:
    """`ltprobe bench train`: the demo recipe shortened to `steps` steps on the demo world, in fp32
    on the CPU, each training in a fresh `ltprobe train` process (torch picks its CPU kernels
    once per process). Side by side, alternating `repeats` times on every core: torch's AVX2
    kernels (`cpu_kernels: avx2`, the default) against the CPU's widest (`native`); then the
    pinned training on each thread count of `threads` (default 1 and every core). Prints the
    steps/s and each model's sha256; returns the mean steps/s of each, their ratio, and
    whether every pinned model is the same bytes (the point of the pin) and the native one not."""
    import hashlib
    import json
    import statistics
    import subprocess
    import sys

    from probe.generation import available_cores
    from probe.world import TRAIN_MARKER, WorldConfig, generate_world

    if steps < 1 or repeats < 1:
        raise InputError("bench train: steps and repeats must be at least 1")
    cores = available_cores()
    threads = sorted(set(threads or [1, cores]))
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        world = generate_world(Path(tmp) / "world", WorldConfig())
        runs: list[dict[str, Any]] = []

        def train(kernels: str, n_threads: int) -> None:
            out = Path(tmp) / f"model-{len(runs)}"
            env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
            proc = subprocess.run(
                [sys.executable, "-m", "probe.cli", "train", "--quiet", "--world", str(world), "--out", str(out),
                 "--steps", str(steps), "--precision", "fp32", "--device", "cpu", "--threads", str(n_threads),
                 "--cpu-kernels", kernels], env=env, capture_output=True, text=True)
            if proc.returncode:
                raise InputError(f"bench train: `ltprobe train` failed: {proc.stderr.strip()[-2000:]}")
            meta = json.loads((out / TRAIN_MARKER).read_text())
            runs.append({"kernels": kernels, "used": meta["cpu_kernels_used"], "threads": n_threads,
                         "steps_per_s": meta["steps_per_second"],
                         "sha256": hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()})
            logger.info(f"bench train: {kernels} ({meta['cpu_kernels_used']}), {n_threads} thread(s): "
                        f"{meta['steps_per_second']} steps/s")

        for _ in range(repeats):
            for kernels in ("avx2", "native"):
                train(kernels, cores)
        for n_threads in threads:
            if n_threads != cores:
                train("avx2", n_threads)

    print(f"{'kernels':<16}{'threads':>8}{'steps/s':>10}  model sha256")
    for r in runs:
        print(f"{r['kernels'] + ' (' + str(r['used']) + ')':<16}{r['threads']:>8}{r['steps_per_s']:>10.3f}  {r['sha256'][:16]}")
    pinned = [r for r in runs if r["kernels"] == "avx2"]
    native = [r for r in runs if r["kernels"] == "native"]
    mean_pinned = statistics.mean(r["steps_per_s"] for r in pinned if r["threads"] == cores)
    mean_native = statistics.mean(r["steps_per_s"] for r in native)
    same = len({r["sha256"] for r in pinned}) == 1
    native_differs = native[0]["sha256"] != pinned[0]["sha256"]
    print(f"avx2 / native steps/s on {cores} thread(s): {mean_pinned / mean_native:.2f}; pinned models the same "
          f"bytes at every thread count: {same}; the native ({native[0]['used']}) model differs: {native_differs}")
    return {"steps": steps, "cores": cores, "avx2_steps_per_s": round(mean_pinned, 3),
            "native_steps_per_s": round(mean_native, 3), "ratio": round(mean_pinned / mean_native, 3),
            "native_kernels": native[0]["used"], "pinned_kernels": pinned[0]["used"],
            "threads": threads, "same_model_pinned": same, "native_model_differs": native_differs,
            "runs": runs}
