"""Batch evaluation: prompts for a QA set, completions from a generator, scored predictions.

`evaluate(qa, generator, setting=...)` returns `predictions.jsonl` records (`Prediction`s, as
their JSON dicts; contract: `id`, `setting`, `model`, `prompt`, `completion`, `correct`; ours:
`em`, `contains`, `n_shots`, `n_passages`, `passage_ids`, `dropped`, `error`, `gold_logprob`).

Resuming: completions go to an append-only cache (`CACHE_DIR/completions*.jsonl`, one line
per completion, keyed by model, prompt and sampling parameters) after each chunk of prompts,
flushed and fsynced. A job killed at any point loses at most the chunk in flight; the rerun
reads the cache, generates only what is missing, and returns each question exactly once.
Each shard (`shard=(i, n)`) appends to its own file, so shards can share a cache folder.

In-context examples: a seeded shuffle of the question ids puts the first `pool_size`
questions into a shot pool, which is never scored (in every setting, so that settings score
the same questions). Each question draws its shots from the pool with a generator seeded by
(seed, question id), so prompts do not depend on order or sharding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from entity_linking import faults as _faults
from entity_linking.io import InputError
from probe.evaluation._prompts import FittedPrompt, PromptFormat, Shot, chat_wrapper, fit_prompts, load_format
from probe.evaluation._records import Prediction
from probe.evaluation._scoring import SCORINGS, contains_answer, score
from probe.evaluation._settings import SETTINGS

logger = logging.getLogger(__name__)


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """`"i/n"` (0 <= i < n) -> `(i, n)`; None stays None."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise InputError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return i, n


def in_shard(qa_id: str, shard: tuple[int, int] | None) -> bool:
    """Whether a question belongs to shard `(i, n)`: a stable hash of its id, modulo n."""
    return shard is None or zlib.crc32(str(qa_id).encode("utf-8")) % shard[1] == shard[0]


def shot_pool_ids(qa: Sequence[Mapping[str, Any]], pool_size: int, seed: int = 0) -> list[str]:
    """Ids of the shot pool: the first `pool_size` of a seeded shuffle of the sorted ids."""
    ids = sorted(str(r["id"]) for r in qa)
    random.Random(f"pool:{seed}").shuffle(ids)
    return ids[:pool_size]


def passage_text(passage: Any) -> str:
    """Text of a passage given as an `indexes.Passage`, a dict with `text`, or a string."""
    if isinstance(passage, str):
        return passage
    if isinstance(passage, Mapping):
        return str(passage.get("text", ""))
    return str(getattr(passage, "text", ""))


def passage_source(ranked: Sequence[Any]) -> str | None:
    """The `source` of an oracle question's first passage (None without passages or a source)."""
    if not ranked:
        return None
    first = ranked[0]
    return first.get("source") if isinstance(first, Mapping) else getattr(first, "source", None)


def passage_ref(passage: Any) -> list[Any] | None:
    """`[doc_id, passage_id]` of a passage, when it has them."""
    if isinstance(passage, str):
        return None
    get = passage.get if isinstance(passage, Mapping) else lambda k, d=None: getattr(passage, k, d)
    doc_id = get("doc_id")
    return None if doc_id is None else [doc_id, get("passage_id")]


class CompletionCache:
    """Append-only JSONL cache of completions, keyed by (model, prompt, sampling parameters)."""

    def __init__(self, directory: str | Path | None, shard: tuple[int, int] | None = None):
        self.directory = Path(directory) if directory is not None else None
        self.entries: dict[str, str] = {}
        self.path: Path | None = None
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        name = "completions.jsonl" if shard is None else f"completions.{shard[0]}-of-{shard[1]}.jsonl"
        self.path = self.directory / name
        for file in sorted(self.directory.glob("completions*.jsonl")):
            with open(file, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    # A torn last line (the job was killed while writing it) is simply redone.
                    try:
                        entry = json.loads(line)
                        self.entries[entry["key"]] = entry["completion"]
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    @staticmethod
    def key(model: str, prompt: str, params: Mapping[str, Any]) -> str:
        blob = json.dumps([model, prompt, dict(sorted(params.items()))], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def add(self, items: Sequence[tuple[str, str]]) -> None:
        """Store `(key, completion)` pairs durably (one write, flushed and fsynced)."""
        for key, completion in items:
            self.entries[key] = completion
        if self.path is None or not items:
            return
        data = "".join(json.dumps({"key": k, "completion": c}, ensure_ascii=False) + "\n" for k, c in items)
        try:
            self._append(data)
        except OSError as exc:
            if exc.filename is None:
                raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
            raise

    def _append(self, data: str) -> None:
        assert self.path is not None
        with open(self.path, "a", encoding="utf-8") as handle:
            # Start on a fresh line if a killed run left a torn one behind.
            if handle.tell() > 0:
                with open(self.path, "rb") as check:
                    check.seek(-1, os.SEEK_END)
                    if check.read(1) != b"\n":
                        data = "\n" + data
            if _faults.SPEC:  # the crash tests: a line torn by a kill in the middle of this write
                handle.write(data[:len(data) // 2])
                handle.flush()
                _faults.fault_point("eval:torn-write")
                data = data[len(data) // 2:]
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def setting_format(setting: str, prompt_format: str | None = None, rag_prompt_format: str | None = None) -> str:
    """The prompt format a setting of `evaluate_settings` uses: `prompt_format` closed-book
    (default `qa`), `rag_prompt_format` with passages (default: the same as closed-book, else `rag`)."""
    if setting == "closed_book":
        return prompt_format or "qa"
    return rag_prompt_format or prompt_format or "rag"


def check_prompt_formats(qa: Sequence[Mapping[str, Any]], settings: Sequence[str], prompt_format: str | None = None,
                         rag_prompt_format: str | None = None) -> None:
    """Refuse, before anything is generated, settings whose prompt format cannot serve them: an
    unknown setting, a retrieval setting whose format has no place for passages (`cloze`), or
    QA pairs without the field a format asks (`cloze` on a QA set that is not a generated world)."""
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise InputError(f"unknown setting(s) {sorted(unknown)}; use {', '.join(SETTINGS)}")
    for setting in [s for s in SETTINGS if s in settings]:
        _check_format(load_format(setting_format(setting, prompt_format, rag_prompt_format)), setting, qa)


def evaluate_settings(qa: Sequence[Mapping[str, Any]], generator: Any, settings: Sequence[str], *,
                      passages: Mapping[str, Mapping[str, Sequence[Any]]] | None = None, shots: int = 4,
                      prompt_format: str | None = None, rag_shots: int | None = None,
                      rag_prompt_format: str | None = None, k: int | None = None, filter_shots: bool = True,
                      stats: list[dict[str, Any]] | None = None, **options: Any) -> list[dict[str, Any]]:
    """`evaluate` in each of `settings`, in `SETTINGS` order: the predictions of one model in
    every setting of a job, so that the run, `ltprobe rag` and the counterfactual build the same
    prompts.

    Closed-book prompts take `shots` and `prompt_format`; the retrieval settings take
    `rag_shots` and `rag_prompt_format` (default: the same, one prompt skeleton for every
    setting), the top `k` of `passages[setting]` (`retrieve_settings`) and `filter_shots`.
    `stats`: a list that receives each setting's evaluation counters, in order. `options` go to
    `evaluate` (max_tokens, scoring, seed, pool_size, chat, cache_dir, shard, ...).
    """
    check_prompt_formats(qa, settings, prompt_format, rag_prompt_format)
    predictions: list[dict[str, Any]] = []
    for setting in SETTINGS:
        if setting not in settings:
            continue
        if stats is not None:
            stats.append({})
        if setting == "closed_book":
            kind = dict(shots=shots, prompt_format=prompt_format)
        else:
            if passages is None or setting not in passages:
                raise ValueError(f"evaluate_settings: no passages for the {setting} setting (retrieve_settings)")
            kind = dict(passages=passages[setting], shots=shots if rag_shots is None else rag_shots,
                        prompt_format=setting_format(setting, prompt_format, rag_prompt_format),
                        filter_shots=filter_shots, k=k)
        predictions += evaluate(qa, generator, setting=setting, stats=None if stats is None else stats[-1],
                                **kind, **options)
    return predictions


def evaluate(qa: Sequence[Mapping[str, Any]], generator: Any, *, setting: str = "closed_book",
             shots: int = 4, pool_size: int = 16, shot_pool: Sequence[Mapping[str, Any]] | None = None,
             seed: int = 0, passages: Mapping[str, Sequence[Any]] | None = None, k: int | None = None,
             max_tokens: int = 16, scoring: str = "em", prompt_format: str | None = None,
             filter_shots: bool = True, chat: bool = False, cache_dir: str | Path | None = None,
             shard: str | tuple[int, int] | None = None, chunk_size: int = 1024, progress: bool = True,
             stats: dict[str, Any] | None = None, gold_logprob: bool = False) -> list[dict[str, Any]]:
    """Prompt `generator` with every question of `qa` and score the completions.

    `setting`: `closed_book` (format `qa`) or `rag` / `oracle` (format `rag`, `passages` maps
    question ids to ranked passages, `k` of them used, default all given). `shots`: in-context
    examples per prompt, drawn from the shot pool (`pool_size` questions of `qa`, never
    scored) or from `shot_pool` records (those are not scored either). `scoring`: which of
    `em` / `contains` becomes `correct`. `prompt_format`: a shipped format (`qa`, `rag`) or a
    JSON file (default: `qa` closed-book, `rag` with passages). `filter_shots` (with passages):
    keep only pool questions whose passages contain their answer; False uses every pool
    question with its own passages, so that with the same format, shots and seed a retrieval
    prompt is the closed-book prompt plus passages (the original study's setting).
    `chat`: wrap prompts in the model's chat template.
    `cache_dir`: completion cache for resuming. `shard`: `"i/n"` or `(i, n)`, evaluate only
    that shard. `chunk_size`: prompts handed to the generator at once (and cached together).
    `stats`, when given, receives counters for the manifest (truncated prompts, cache hits...).
    `gold_logprob`: also score each prediction's `gold_logprob` (`gold_logprobs`: the answer's
    log-probability after the prompt, best alias; null for a prompt that did not fit).
    """
    if setting not in SETTINGS:
        raise InputError(f"unknown setting {setting!r}; use one of {', '.join(SETTINGS)}")
    if scoring not in SCORINGS:
        raise InputError(f"unknown scoring {scoring!r}; use one of {', '.join(SCORINGS)}")
    if setting != "closed_book" and passages is None:
        raise InputError(f"setting {setting!r} needs passages (retrieve_passages or oracle_passages)")
    shard = parse_shard(shard)
    fmt: PromptFormat = load_format(setting_format(setting, prompt_format))
    started = time.monotonic()

    by_id = {str(r["id"]): r for r in qa}
    if shot_pool is not None:
        pool = [dict(r) for r in shot_pool]
    else:
        size = min(pool_size, len(qa) // 4)
        pool = [by_id[i] for i in shot_pool_ids(qa, size, seed)]
    pool_ids = {str(r["id"]) for r in pool}
    _check_format(fmt, setting, qa if shot_pool is None else [*qa, *pool])
    pool_shots = _pool_shots(pool, setting, passages, k, filter_shots, fmt.field)
    if shots > 0 and len(pool_shots) < shots:
        logger.warning(f"only {len(pool_shots)} shot(s) available for {shots}-shot prompts "
                       f"in setting {setting}")

    scored = [r for r in qa if str(r["id"]) not in pool_ids and in_shard(str(r["id"]), shard)]
    items = []
    for record in scored:
        qid = str(record["id"])
        candidates = [s for sid, s in pool_shots if sid != qid]
        chosen = random.Random(f"{seed}:{qid}").sample(candidates, min(shots, len(candidates))) if shots > 0 else []
        ranked = list((passages or {}).get(qid, []))[: k if k is not None else None]
        items.append((record[fmt.field], chosen, [passage_text(p) for p in ranked]))

    wrap = chat_wrapper(generator.tokenizer) if chat else None
    limit = None if generator.max_context is None else generator.max_context - max_tokens
    fitted: list[FittedPrompt] = fit_prompts(fmt, items, generator.count_tokens, limit, wrap)

    params = {"max_tokens": max_tokens, "stop": list(fmt.stop), "temperature": 0.0}
    cache = CompletionCache(cache_dir, shard)
    keys = [CompletionCache.key(generator.name, f.prompt, params) for f in fitted]
    todo: dict[str, str] = {}
    for key, f in zip(keys, fitted):
        if not f.too_long and key not in cache.entries:
            todo.setdefault(key, f.prompt)
    cached = sum(1 for key, f in zip(keys, fitted) if not f.too_long and key in cache.entries)

    from entity_linking.logs import progress_bar

    bar = progress_bar(total=len(fitted), initial=len(fitted) - len(todo), unit="q", desc=f"eval {setting}",
                       enabled=progress, dynamic_ncols=True)
    pending = list(todo.items())
    generated_before = generator.generated_tokens
    try:
        for start in range(0, len(pending), max(1, chunk_size)):
            chunk = pending[start:start + chunk_size]
            completions = generator.generate([p for _, p in chunk], max_tokens, list(fmt.stop))
            cache.add([(key, c) for (key, _), c in zip(chunk, completions)])
            _faults.fault_point("eval:batch")
            bar.update(len(chunk))
    finally:
        bar.close()

    predictions: list[Prediction] = []
    for record, f, key, item in zip(scored, fitted, keys, items):
        qid = str(record["id"])
        completion = "" if f.too_long else cache.entries[key].strip()
        scores = score(completion, record["answers"], scoring)
        prediction = Prediction(qid, setting, generator.name, f.prompt,  # type: ignore[arg-type]
                                completion, scores["em"], scores["contains"], scores["correct"], f.n_shots,
                                f.n_passages, dropped=f.dropped)
        if setting != "closed_book":
            ranked = list((passages or {}).get(qid, []))[: k if k is not None else None]
            prediction.passage_ids = [passage_ref(p) for p in ranked[: f.n_passages]]
            if setting == "oracle":
                prediction.passage_source = passage_source(ranked)
        if f.too_long:
            prediction.error = "prompt longer than the model's context even without shots and passages"
        predictions.append(prediction)

    if gold_logprob:
        fits = [i for i, f in enumerate(fitted) if not f.too_long]
        values = gold_logprobs(generator, [fitted[i].prompt for i in fits],
                               [scored[i]["answers"] for i in fits], progress=progress)
        for prediction in predictions:
            prediction.gold_logprob = None
        for i, value in zip(fits, values):
            predictions[i].gold_logprob = value

    truncated = sum(1 for f in fitted if f.dropped and not f.too_long)
    too_long = sum(1 for f in fitted if f.too_long)
    if truncated or too_long:
        logger.warning(f"{setting}: {truncated} prompt(s) longer than the context lost shots or "
                       f"passages from the left; {too_long} did not fit at all and were scored wrong")
    if stats is not None:
        elapsed = time.monotonic() - started
        stats.update({"setting": setting, "questions": len(predictions), "shot_pool": len(pool_ids),
                      "shots": shots, "seed": seed, "shard": list(shard) if shard else None,
                      "cached": cached, "generated": len(pending), "truncated_prompts": truncated,
                      "too_long_prompts": too_long, "seconds": round(elapsed, 3),
                      "questions_per_s": round(len(pending) / elapsed, 2) if elapsed > 0 else None,
                      "generated_tokens": generator.generated_tokens - generated_before})
    return [p.to_json() for p in predictions]


def _check_format(fmt: PromptFormat, setting: str, records: Sequence[Mapping[str, Any]]) -> None:
    """`fmt` can serve `setting` on `records`, checked before anything is generated: a retrieval
    setting needs a format with passages, and every QA pair the text the format asks
    (`question`, or `cloze` for the cloze format)."""
    if setting != "closed_book" and fmt.passage is None:
        raise InputError(f"the {setting} setting needs a prompt format with passages; {fmt.name!r} has none "
                         f"(set the retrieval format, rag.prompt_format, to e.g. rag or qa)")
    missing = [str(r.get("id")) for r in records if not isinstance(r.get(fmt.field), str) or not r[fmt.field].strip()]
    if missing:
        hint = (" (generated worlds write it; for other QA sets use a question format such as `qa`)"
                if fmt.field == "cloze" else "")
        raise InputError(f"prompt format {fmt.name!r} asks each QA pair's {fmt.field!r} field, which "
                         f"{len(missing)} of {len(records)} pairs lack (first: {missing[0]}){hint}")


def _pool_shots(pool: Sequence[Mapping[str, Any]], setting: str, passages: Mapping[str, Sequence[Any]] | None,
                k: int | None, filter_shots: bool = True, field: str = "question") -> list[tuple[str, Shot]]:
    """Shots from the pool (`field`: the QA pair's text asked); with passages and `filter_shots`,
    only questions whose passages contain their answer."""
    shots = []
    for record in sorted(pool, key=lambda r: str(r["id"])):
        answer = record["answers"][0]
        if setting == "closed_book":
            shots.append((str(record["id"]), Shot(record[field], answer)))
            continue
        texts = [passage_text(p) for p in list((passages or {}).get(str(record["id"]), []))[: k if k else None]]
        if not filter_shots:
            shots.append((str(record["id"]), Shot(record[field], answer, texts)))
            continue
        good = [t for t in texts if contains_answer(t, record["answers"])]
        if not good:
            continue
        # Show the answer with the alias its passage uses.
        alias = next(a for a in record["answers"] if contains_answer(good[0], [a]))
        shots.append((str(record["id"]), Shot(record[field], alias, texts)))
    return shots


def gold_logprobs(generator: Any, prompts: Sequence[str], answers: Sequence[Sequence[str]], *,
                  chunk_size: int = 512, progress: bool = False) -> list[float | None]:
    """Per prompt, the log-probability of its gold answer as the continuation, summed over the
    answer's tokens, for the best of its aliases (`max` over aliases; None without aliases).

    The continuation is `" " + alias` (the prompts end in `A:` / `Answer:`, and the shots show
    the answer after a space), or the alias alone after a prompt ending in whitespace. Backends
    that score token lists in process (vLLM: one pass with `prompt_logprobs`; transformers: one
    forward pass) get every (prompt, alias) sequence in one batch; others go through
    `next_token_logprobs` one prompt at a time.
    """
    from entity_linking.logs import progress_bar

    def continuation(prompt: str, alias: str) -> str:
        return alias if prompt[-1:].isspace() else " " + alias

    result: list[float | None] = [None] * len(prompts)
    in_process = hasattr(generator, "_token_logprobs") and hasattr(generator, "_tokenizer")
    bar = progress_bar(total=len(prompts), unit="q", desc="gold log-prob", enabled=progress)
    try:
        for start in range(0, len(prompts), chunk_size):
            chunk = range(start, min(start + chunk_size, len(prompts)))
            if in_process:
                from probe.generation import candidate_tokens

                tokenizer = generator._tokenizer
                sequences, keys = [], []
                for i in chunk:
                    ids = tokenizer(prompts[i])["input_ids"]
                    for alias in dict.fromkeys(a for a in answers[i] if a and a.strip()):
                        tokens = candidate_tokens(tokenizer, ids, prompts[i], continuation(prompts[i], alias))
                        sequences.append(ids + tokens)
                        keys.append((i, len(tokens)))
                for (i, n), row in zip(keys, generator._token_logprobs(sequences) if sequences else []):
                    value = float(sum(row[-n:]))  # type: ignore[arg-type]
                    result[i] = value if result[i] is None else max(result[i], value)  # type: ignore[type-var]
            else:
                for i in chunk:
                    aliases = list(dict.fromkeys(a for a in answers[i] if a and a.strip()))
                    if aliases:
                        scores = generator.next_token_logprobs(
                            [prompts[i]], [continuation(prompts[i], a) for a in aliases])[0]
                        result[i] = max(scores.values())
            bar.update(len(chunk))
    finally:
        bar.close()
    return result
