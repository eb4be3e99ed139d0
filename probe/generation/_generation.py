"""Generation backends: one interface, a batch of prompts in and a list out.

- `VLLMGenerator` (`"vllm"`): `vllm.LLM` in this process; the whole batch goes to vLLM at once,
  sorted longest-first so that a memory error shows at once. Engine options (tensor and data
  parallelism, dtype, max_model_len, gpu_memory_utilization, enforce_eager, ...) pass through.
  Build it under `if __name__ == "__main__":` or in a process that is not re-imported: vLLM
  starts worker processes.
- `OpenAIGenerator` (`"openai"`): any OpenAI-compatible `/v1/completions` endpoint (a vLLM
  server) through the official `openai` client, with bounded concurrency, timeouts and retries
  with exponential backoff. `start_vllm_server` starts such a server on 127.0.0.1.
- `TransformersGenerator` (`"transformers"`): batched `generate` with left padding; the
  fallback without vLLM and the baseline of `ltprobe bench eval`.

Greedy completions agree across the three on the same model (tests/probe_eval). Completions
are returned without the stop string and unstripped; callers strip.
`get_generator(backend, model, **options)` resolves the backend lazily, so importing this
module never imports torch, transformers or vLLM.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from entity_linking.io import InputError

logger = logging.getLogger(__name__)

BACKENDS = {
    "vllm": "probe.generation._generation:VLLMGenerator",
    "openai": "probe.generation._generation:OpenAIGenerator",
    "transformers": "probe.generation._generation:TransformersGenerator",
}


class GenerationError(RuntimeError):
    """A backend failed in a way retries did not cure (a dead server, a refused request)."""


def get_generator(backend: str, model: str, **options: Any) -> Generator:
    """The generator of `backend` ("vllm" | "openai" | "transformers") for `model`.

    `model` is a model folder or hub id (for "openai", the name the server serves). `options`
    go to the backend's constructor (see each class).
    """
    backend, options = resolve_backend(backend, options)
    module, _, attribute = BACKENDS[backend].partition(":")
    cls = getattr(importlib.import_module(module), attribute)
    if backend != "openai":
        from probe.analysis import split_revision

        name, revision = split_revision(model)
        if revision is not None:  # NAME@REVISION: a hub revision (a checkpoint); named in full
            options = {**options, "revision": revision}
            if backend == "vllm":
                options.setdefault("tokenizer_revision", revision)
            generator = cls(name, **options)
            generator.name = str(model)
            return generator
    return cls(model, **options)


def vllm_available() -> bool:
    """True when vLLM can be imported here and `LTPROBE_VLLM` is not `none` (the installer's
    setting, which also turns vLLM off at run time)."""
    import importlib.util

    return os.environ.get("LTPROBE_VLLM", "").lower() != "none" and importlib.util.find_spec("vllm") is not None


# vLLM engine options that mean something to transformers, by their transformers name.
_VLLM_TO_TRANSFORMERS = {"dtype": "dtype", "max_model_len": "max_context", "trust_remote_code": "trust_remote_code"}


def resolve_backend(backend: str, options: dict[str, Any], *, notice: bool = True) -> tuple[str, dict[str, Any]]:
    """The backend and options that will really run: "vllm" where vLLM is missing (or
    `LTPROBE_VLLM=none`) becomes "transformers", with the vLLM options that carry over
    (`dtype`, `max_model_len`) and a one-line notice on stderr."""
    if backend not in BACKENDS:
        raise InputError(f"unknown generation backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend != "vllm" or vllm_available():
        return backend, dict(options)
    kept = {_VLLM_TO_TRANSFORMERS[k]: v for k, v in options.items() if k in _VLLM_TO_TRANSFORMERS}
    if kept.get("dtype", "auto") == "auto":
        from probe.generation._hardware import cpu_supports_bf16, cuda_available

        kept["dtype"] = "auto" if cuda_available() else "bfloat16" if cpu_supports_bf16() else "float32"
    if notice:
        dropped = sorted(set(options) - set(_VLLM_TO_TRANSFORMERS))
        logger.warning("vLLM is not installed here" + (" (LTPROBE_VLLM=none)" if os.environ.get(
            "LTPROBE_VLLM", "").lower() == "none" else "") + "; evaluating with transformers instead"
                       + (f" (vLLM options {', '.join(dropped)} do not apply)" if dropped else ""))
    return "transformers", kept


class Generator:
    """The interface every backend implements (batch in, list out)."""

    name: str
    """Model id written into `predictions.jsonl`."""
    max_context: int | None = None
    """Longest prompt plus completion the model takes, in tokens (None: unknown)."""
    generated_tokens: int = 0
    """Tokens generated so far by `generate` and `sample` (for throughput figures)."""
    tokenizer: Any = None
    """The model's Hugging Face tokenizer when the backend has one (chat templates)."""

    def generate(self, prompts: Sequence[str], max_tokens: int, stop: Sequence[str] | None = None) -> list[str]:
        """Greedy completion of each prompt, cut before the first stop string."""
        raise NotImplementedError

    def sample(self, prompts: Sequence[str], n: int, max_tokens: int, temperature: float = 1.0,
               stop: Sequence[str] | None = None, seed: int | None = None) -> list[list[str]]:
        """`n` sampled completions of each prompt."""
        raise NotImplementedError

    def next_token_logprobs(self, prompts: Sequence[str], candidates: Sequence[str]) -> list[dict[str, float]]:
        """Log-probability of each candidate as the continuation of each prompt.

        A candidate's tokens are those of `prompt + candidate` after the prompt's own tokens,
        so write candidates as they follow the prompt (" yes" after "Answer:"). Its score is the
        sum of their log-probabilities: the next-token log-probability for a one-token
        candidate, and still the right comparison when a tokenizer splits candidates into
        pieces that share a first token (" yes" -> " ", "yes"), where first tokens would tie.
        """
        raise NotImplementedError

    def mean_logprob(self, texts: Sequence[str]) -> list[float]:
        """Mean log-probability of the tokens of each text (every token after the first)."""
        raise NotImplementedError

    def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Prompt length of each text in tokens, or None when the backend cannot tell."""
        return None

    def close(self) -> None:
        """Release the model (and its worker processes)."""

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _cut(text: str, stop: Sequence[str] | None) -> str:
    """Text before the first occurrence of any stop string (vLLM's stop semantics)."""
    if not stop:
        return text
    end = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            end = min(end, i)
    return text[:end]


def candidate_tokens(tokenizer: Any, prompt_ids: list[int], prompt: str, candidate: str) -> list[int]:
    """The tokens `candidate` adds after the prompt's own tokens (the candidate tokenized alone
    when the prompt's tokens are not a prefix of `prompt + candidate`'s)."""
    full = tokenizer(prompt + candidate)["input_ids"]
    if len(full) > len(prompt_ids) and full[: len(prompt_ids)] == prompt_ids:
        return full[len(prompt_ids):]
    ids = tokenizer(candidate, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"candidate {candidate!r} has no tokens")
    return ids


# --------------------------------------------------------------------------------------------
# vLLM in-process


class _InProcessScoring:
    """Scoring for backends that hold the tokenizer (`self._tokenizer`) and return per-token
    log-probabilities of token lists (`self._token_logprobs`, None where a token has no
    log-probability, e.g. the first)."""

    def next_token_logprobs(self, prompts: Sequence[str], candidates: Sequence[str]) -> list[dict[str, float]]:
        sequences, keys = [], []
        for i, prompt in enumerate(prompts):
            ids = self._tokenizer(prompt)["input_ids"]
            for cand in candidates:
                tokens = candidate_tokens(self._tokenizer, ids, prompt, cand)
                sequences.append(ids + tokens)
                keys.append((i, cand, len(tokens)))
        result: list[dict[str, float]] = [{} for _ in prompts]
        for (i, cand, n), row in zip(keys, self._token_logprobs(sequences)):
            result[i][cand] = float(sum(row[-n:]))  # type: ignore[arg-type]
        return result

    def mean_logprob(self, texts: Sequence[str]) -> list[float]:
        means = []
        for row in self._token_logprobs([self._tokenizer(t)["input_ids"] for t in texts]):
            values = [v for v in row if v is not None]
            means.append(sum(values) / len(values) if values else math.nan)
        return means

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._tokenizer(list(texts))["input_ids"]] if texts else []


class VLLMGenerator(_InProcessScoring, Generator):
    """`vllm.LLM` in this process.

    Options: `dtype` ("auto": on a CPU bfloat16 where it is native, else float32; on a GPU vLLM's
    own choice), `max_model_len`, `tensor_parallel_size`,
    `gpu_memory_utilization`, `enforce_eager`, `seed`, `chat_template`, and any other
    `vllm.LLM` / engine argument, passed through unchanged. `data_parallel_size=N` (which
    `vllm.LLM` refuses in one process) gives a `DataParallelVLLM`: N engine processes, each on
    its own `tensor_parallel_size` GPUs, sharing every batch. On a machine without a GPU,
    `VLLM_CPU_KVCACHE_SPACE` (GiB of KV cache) bounds memory. `use_tqdm` shows vLLM's own bar.
    """

    def __new__(cls, model: str, *, data_parallel_size: int = 1, **options: Any) -> Any:
        if cls is VLLMGenerator and int(data_parallel_size) > 1:
            return DataParallelVLLM(model, int(data_parallel_size), **options)
        return super().__new__(cls)

    def __init__(self, model: str, *, use_tqdm: bool = False, data_parallel_size: int = 1, **options: Any):
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "1")
        from vllm import LLM
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            # Without a KV-cache size, vLLM's CPU backend reserves gpu_memory_utilization (0.92)
            # of the NUMA node's memory and refuses to start when less is free.
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        if options.get("dtype", "auto") == "auto":  # bfloat16 only where the CPU computes it natively
            from probe.generation._hardware import vllm_dtype

            options["dtype"] = vllm_dtype(on_gpu=not current_platform.is_cpu())
        self.name = str(model)
        self._use_tqdm = use_tqdm
        options.setdefault("seed", 0)
        try:
            self._llm = LLM(model=str(model), **options)
        except (OSError, ValueError) as exc:
            if Path(str(model)).exists() or "/" in str(model):
                raise InputError(f"vLLM could not load model {model!r}: {exc}") from None
            raise
        except RuntimeError as exc:  # the engine process died; vLLM logged the cause above
            raise InputError(f"vLLM could not start an engine for {model!r} ({exc}); see vLLM's log "
                             "above (on a CPU: VLLM_CPU_KVCACHE_SPACE, model.options."
                             "gpu_memory_utilization; on a GPU: free memory, tensor_parallel_size)") from None
        self._tokenizer = self.tokenizer = self._llm.get_tokenizer()
        self.max_context = int(self._llm.llm_engine.model_config.max_model_len)
        self.generated_tokens = 0

    def _run(self, prompts: Sequence[Any], params: Any) -> list[Any]:
        # Longest first: a batch that does not fit fails at once, not after hours.
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]) if isinstance(prompts[i], str)
                       else -len(prompts[i]["prompt_token_ids"]))
        outputs = self._llm.generate([prompts[i] for i in order], params, use_tqdm=self._use_tqdm)
        result: list[Any] = [None] * len(prompts)
        for i, out in zip(order, outputs):
            result[i] = out
        return result

    def generate(self, prompts: Sequence[str], max_tokens: int, stop: Sequence[str] | None = None) -> list[str]:
        from vllm import SamplingParams

        if not prompts:
            return []
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens, stop=list(stop or []) or None)
        outputs = self._run(list(prompts), params)
        self.generated_tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
        return [o.outputs[0].text for o in outputs]

    def sample(self, prompts: Sequence[str], n: int, max_tokens: int, temperature: float = 1.0,
               stop: Sequence[str] | None = None, seed: int | None = None) -> list[list[str]]:
        from vllm import SamplingParams

        if not prompts:
            return []
        params = SamplingParams(n=n, temperature=temperature, max_tokens=max_tokens,
                                stop=list(stop or []) or None, seed=seed)
        outputs = self._run(list(prompts), params)
        self.generated_tokens += sum(len(c.token_ids) for o in outputs for c in o.outputs)
        return [[c.text for c in o.outputs] for o in outputs]

    def _token_logprobs(self, token_lists: list[list[int]]) -> list[list[float | None]]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
        outputs = self._run([{"prompt_token_ids": ids} for ids in token_lists], params)
        result = []
        for ids, out in zip(token_lists, outputs):
            row: list[float | None] = []
            for token, entry in zip(ids, out.prompt_logprobs):
                row.append(None if entry is None else float(entry[token].logprob))
            result.append(row)
        return result

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is None:
            return
        self._llm = None
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except Exception:  # already gone: nothing left to release
                pass
        del llm
        import gc

        gc.collect()


def _dp_worker(conn: Any, model: str, options: dict[str, Any], devices: list[str] | None) -> None:
    """One data-parallel rank: a `VLLMGenerator` on `devices`, serving calls from the parent."""
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    try:
        generator = VLLMGenerator(model, **options)
    except BaseException as exc:  # report, do not hang the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", generator.max_context))
    while True:
        method, args = conn.recv()
        if method == "close":
            generator.close()
            conn.send(("ok", None))
            return
        try:
            before = generator.generated_tokens
            result = getattr(generator, method)(*args)
            conn.send(("ok", (result, generator.generated_tokens - before)))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class DataParallelVLLM(Generator):
    """`data_parallel_size` vLLM engines in worker processes (spawned), one per group of
    `tensor_parallel_size` GPUs of `CUDA_VISIBLE_DEVICES` (all GPUs when unset); each batch is
    dealt out longest-first in turn, so the ranks get similar work, and put back in order."""

    def __init__(self, model: str, data_parallel_size: int, **options: Any):
        import multiprocessing

        self.name = str(model)
        self.generated_tokens = 0
        tp = int(options.get("tensor_parallel_size", 1))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else _gpu_ids()
        if gpus and len(gpus) < data_parallel_size * tp:
            raise InputError(f"data_parallel_size {data_parallel_size} x tensor_parallel_size {tp} needs "
                             f"{data_parallel_size * tp} GPUs; {len(gpus)} visible")
        context = multiprocessing.get_context("spawn")
        self._ranks = []
        for rank in range(data_parallel_size):
            parent, child = context.Pipe()
            devices = gpus[rank * tp:(rank + 1) * tp] if gpus else None
            # Not a daemon: each rank's vLLM starts its own engine process.
            process = context.Process(target=_dp_worker, args=(child, str(model), options, devices))
            process.start()
            self._ranks.append((process, parent))
        answers = [self._recv(rank) for rank in range(len(self._ranks))]
        failed = [a[1] for a in answers if a[0] == "error"]
        if failed:
            self.close()
            raise InputError(f"vLLM could not load model {model!r}: {failed[0]}")
        self.max_context = answers[0][1]
        try:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(model))
        except Exception:  # the workers have one; only chat templates need it here
            self.tokenizer = None

    def _recv(self, rank: int) -> Any:
        """The next answer of a rank; an error answer when the rank's process died."""
        process, conn = self._ranks[rank]
        while not conn.poll(1.0):
            if not process.is_alive():
                return ("error", f"data-parallel rank {rank} exited with status {process.exitcode}")
        try:
            return conn.recv()
        except EOFError:
            return ("error", f"data-parallel rank {rank} closed its connection")

    def _call(self, method: str, items: Sequence[Any], *rest: Any) -> list[Any]:
        n = len(self._ranks)
        order = sorted(range(len(items)), key=lambda i: -len(str(items[i])))
        parts = [order[r::n] for r in range(n)]
        for (_, conn), part in zip(self._ranks, parts):
            conn.send((method, ([items[i] for i in part], *rest)))
        result: list[Any] = [None] * len(items)
        errors = []
        for rank, part in enumerate(parts):
            status, payload = self._recv(rank)
            if status == "error":
                errors.append(payload)
                continue
            values, tokens = payload
            self.generated_tokens += tokens
            for i, value in zip(part, values):
                result[i] = value
        if errors:
            raise GenerationError(f"a data-parallel vLLM rank failed: {errors[0]}")
        return result

    def generate(self, prompts: Sequence[str], max_tokens: int, stop: Sequence[str] | None = None) -> list[str]:
        return self._call("generate", list(prompts), max_tokens, stop) if prompts else []

    def sample(self, prompts: Sequence[str], n: int, max_tokens: int, temperature: float = 1.0,
               stop: Sequence[str] | None = None, seed: int | None = None) -> list[list[str]]:
        return self._call("sample", list(prompts), n, max_tokens, temperature, stop, seed) if prompts else []

    def next_token_logprobs(self, prompts: Sequence[str], candidates: Sequence[str]) -> list[dict[str, float]]:
        return self._call("next_token_logprobs", list(prompts), list(candidates)) if prompts else []

    def mean_logprob(self, texts: Sequence[str]) -> list[float]:
        return self._call("mean_logprob", list(texts)) if texts else []

    def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        return self._call("count_tokens", list(texts)) if texts else []

    def close(self) -> None:
        for process, conn in getattr(self, "_ranks", []):
            try:
                if process.is_alive():
                    conn.send(("close", ()))
                    if conn.poll(60):
                        conn.recv()
            except (OSError, EOFError):
                pass
            process.join(60)
            if process.is_alive():
                process.kill()
        self._ranks = []


def _gpu_ids() -> list[str]:
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    except ImportError:
        return []


# --------------------------------------------------------------------------------------------
# OpenAI-compatible server


class OpenAIGenerator(Generator):
    """An OpenAI-compatible `/v1/completions` endpoint (for example a vLLM server).

    Options: `base_url` (default `$OPENAI_BASE_URL` or http://127.0.0.1:8000/v1), `api_key`
    (default `$OPENAI_API_KEY`, else "EMPTY"; never pass secrets on a command line),
    `concurrency` (requests in flight, 8), `batch_size` (prompts per request, 8), `timeout`
    (seconds per request, 120), `retries` (6; exponential backoff with jitter, capped at 30 s),
    `tokenizer` (folder or hub id used to count prompt tokens; default: `model` when it loads),
    `max_context` (tokens; default: the server's `max_model_len` when it reports one).
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, batch_size: int = 8, timeout: float = 120.0, retries: int = 6,
                 tokenizer: str | None = None, max_context: int | None = None):
        import openai

        self.name = str(model)
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8000/v1"
        self._client = openai.OpenAI(base_url=self.base_url,
                                     api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                                     timeout=timeout, max_retries=0)
        self._openai = openai
        self.concurrency = max(1, concurrency)
        self.batch_size = max(1, batch_size)
        self.retries = retries
        self.generated_tokens = 0
        self._lock = threading.Lock()
        self._tokenizer = None
        try:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(tokenizer or str(model))
        except Exception:  # a served name that is no folder or hub id: lengths unknown
            self._tokenizer = None
        self.tokenizer = self._tokenizer
        self._no_tokenize_endpoint = False
        self.max_context = max_context or self._server_max_len()

    def _server_max_len(self) -> int | None:
        try:
            models = self._call(lambda: self._client.models.list())
        except GenerationError:
            return None
        for m in models.data:
            if m.id == self.name:
                value = getattr(m, "max_model_len", None) or (m.model_extra or {}).get("max_model_len")
                return int(value) if value else None
        return None

    def _call(self, request: Any) -> Any:
        """Run `request()` with retries on connection errors, timeouts, 429 and 5xx."""
        o = self._openai
        retryable = (o.APIConnectionError, o.APITimeoutError, o.RateLimitError, o.InternalServerError)
        for attempt in range(self.retries + 1):
            try:
                return request()
            except retryable as exc:
                if attempt == self.retries:
                    raise GenerationError(
                        f"the server at {self.base_url} failed {attempt + 1} times in a row "
                        f"({type(exc).__name__}: {exc}); completed work is cached, rerun to resume") from None
                time.sleep(min(30.0, 0.5 * 2 ** attempt) * (0.5 + random.random()))
            except o.APIStatusError as exc:
                raise GenerationError(f"the server at {self.base_url} refused the request "
                                      f"(HTTP {exc.status_code}: {exc.message})") from None
        raise AssertionError("unreachable")

    def _completions(self, prompts: Sequence[str], **params: Any) -> list[Any]:
        """One `choices` list per prompt, requests in chunks of `batch_size`, `concurrency` at once."""
        chunks = [list(range(i, min(i + self.batch_size, len(prompts))))
                  for i in range(0, len(prompts), self.batch_size)]
        n = params.get("n", 1)

        def run(chunk: list[int]) -> list[list[Any]]:
            response = self._call(lambda: self._client.completions.create(
                model=self.name, prompt=[prompts[i] for i in chunk], **params))
            per_prompt: list[list[Any]] = [[] for _ in chunk]
            for choice in sorted(response.choices, key=lambda c: c.index):
                per_prompt[choice.index // n].append(choice)
            if response.usage is not None:
                with self._lock:
                    self.generated_tokens += response.usage.completion_tokens or 0
            return per_prompt

        result: list[Any] = [None] * len(prompts)
        with ThreadPoolExecutor(self.concurrency) as pool:
            for chunk, choices in zip(chunks, pool.map(run, chunks)):
                for i, c in zip(chunk, choices):
                    result[i] = c
        return result

    def generate(self, prompts: Sequence[str], max_tokens: int, stop: Sequence[str] | None = None) -> list[str]:
        if not prompts:
            return []
        choices = self._completions(prompts, max_tokens=max_tokens, temperature=0.0,
                                    stop=list(stop or []) or None)
        return [c[0].text for c in choices]

    def sample(self, prompts: Sequence[str], n: int, max_tokens: int, temperature: float = 1.0,
               stop: Sequence[str] | None = None, seed: int | None = None) -> list[list[str]]:
        if not prompts:
            return []
        choices = self._completions(prompts, n=n, max_tokens=max_tokens, temperature=temperature,
                                    stop=list(stop or []) or None, seed=seed)
        return [[c.text for c in cs] for cs in choices]

    def _echo_logprobs(self, texts: Sequence[str]) -> list[list[float | None]]:
        """Log-probabilities of the tokens of each text (None for the first), from `echo`.

        With `max_tokens=1` exactly one token follows the echoed prompt, so the prompt's tokens
        are all but the last. (Text offsets would not do: a BOS token's text shifts them.)
        """
        choices = self._completions(texts, max_tokens=1, temperature=0.0, echo=True, logprobs=0)
        return [list(cs[0].logprobs.token_logprobs[:-1]) for cs in choices]

    def next_token_logprobs(self, prompts: Sequence[str], candidates: Sequence[str]) -> list[dict[str, float]]:
        prompt_lengths = [len(row) for row in self._echo_logprobs(prompts)]
        texts, keys = [], []
        for i, prompt in enumerate(prompts):
            for cand in candidates:
                texts.append(prompt + cand)
                keys.append((i, cand))
        result: list[dict[str, float]] = [{} for _ in prompts]
        for (i, cand), values in zip(keys, self._echo_logprobs(texts)):
            # The candidate's tokens come right after the prompt's own tokens.
            result[i][cand] = float(sum(values[prompt_lengths[i]:]))  # type: ignore[arg-type]
        return result

    def mean_logprob(self, texts: Sequence[str]) -> list[float]:
        means = []
        for values in self._echo_logprobs(texts):
            vals = [v for v in values if v is not None]
            means.append(sum(vals) / len(vals) if vals else math.nan)
        return means

    def count_tokens(self, texts: Sequence[str]) -> list[int] | None:
        """Prompt lengths from the local tokenizer, else from a vLLM server's `/tokenize`."""
        if not texts:
            return []
        if self._tokenizer is not None:
            return [len(ids) for ids in self._tokenizer(list(texts))["input_ids"]]
        if self._no_tokenize_endpoint:
            return None
        import json

        url = self.base_url.rstrip("/").removesuffix("/v1") + "/tokenize"

        def one(text: str) -> int:
            body = json.dumps({"model": self.name, "prompt": text}).encode("utf-8")
            request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                return int(json.loads(response.read())["count"])

        try:
            with ThreadPoolExecutor(self.concurrency) as pool:
                return list(pool.map(one, texts))
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            self._no_tokenize_endpoint = True  # not a vLLM server: lengths unknown
            return None

    def close(self) -> None:
        self._client.close()


class VLLMServer:
    """A vLLM OpenAI-compatible server process on 127.0.0.1, started by `start_vllm_server`."""

    def __init__(self, process: subprocess.Popen, base_url: str, served_name: str, log_path: Path | None):
        self.process = process
        self.base_url = base_url
        """`http://127.0.0.1:PORT/v1`, for `OpenAIGenerator(base_url=...)`."""
        self.served_name = served_name
        """The model name to send in requests."""
        self.log_path = log_path

    def generator(self, **options: Any) -> OpenAIGenerator:
        """An `OpenAIGenerator` talking to this server."""
        return OpenAIGenerator(self.served_name, base_url=self.base_url, **options)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout` seconds)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> VLLMServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_vllm_server(model: str, *, port: int | None = None, served_model_name: str | None = None,
                      dtype: str | None = None, max_model_len: int | None = None,
                      extra_args: Sequence[str] = (), startup_timeout: float = 600.0,
                      log_file: str | Path | None = None, env: dict[str, str] | None = None) -> VLLMServer:
    """Start `python -m vllm.entrypoints.openai.api_server` for `model` on 127.0.0.1 and wait
    until it answers; stop it with `.stop()` (or use it as a context manager).

    `port` None picks a free one. The server's output goes to `log_file` (default: discarded).
    Raises `GenerationError` with the end of the log when the server exits or does not become
    ready within `startup_timeout` seconds.
    """
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    served = served_model_name or Path(str(model)).name or str(model)
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
           "--host", "127.0.0.1", "--port", str(port), "--served-model-name", served]
    if dtype:
        cmd += ["--dtype", dtype]
    if max_model_len:
        cmd += ["--max-model-len", str(max_model_len)]
    cmd += list(extra_args)
    log_path = Path(log_file) if log_file else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {})}, start_new_session=True)
    server = VLLMServer(process, f"http://127.0.0.1:{port}/v1", served, log_path)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
            raise GenerationError(f"the vLLM server exited with status {process.returncode}: {tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    server.stop()
    raise GenerationError(f"the vLLM server did not become ready within {startup_timeout:.0f} s")


# --------------------------------------------------------------------------------------------
# transformers


class TransformersGenerator(_InProcessScoring, Generator):
    """transformers `generate`, batched with left padding.

    Options: `dtype` ("float32"; "auto" takes the checkpoint's), `device` ("cuda" when
    available, else "cpu"), `batch_size` (32), `max_context` (default: the config's
    `max_position_embeddings`), `trust_remote_code`.
    """

    def __init__(self, model: str, *, dtype: str = "float32", device: str | None = None,
                 batch_size: int = 32, max_context: int | None = None, trust_remote_code: bool = False,
                 revision: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = str(model)
        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(model), trust_remote_code=trust_remote_code,
                                                            revision=revision)
            torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
            self._model = AutoModelForCausalLM.from_pretrained(
                str(model), dtype=torch_dtype, trust_remote_code=trust_remote_code,
                revision=revision).to(self.device)
        except OSError as exc:
            raise InputError(f"transformers could not load model {model!r}: {exc}") from None
        self._model.eval()
        self.tokenizer = self._tokenizer
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self.batch_size = batch_size
        self.max_context = max_context or getattr(self._model.config, "max_position_embeddings", None)
        self.generated_tokens = 0

    def _batches(self, prompts: Sequence[str]) -> list[list[int]]:
        lengths = self.count_tokens(prompts)
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _generate(self, prompts: Sequence[str], n: int, max_tokens: int, stop: Sequence[str] | None,
                  sampling: dict[str, Any]) -> list[list[str]]:
        torch = self._torch
        result: list[list[str]] = [[] for _ in prompts]
        eos = self._model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        for batch in self._batches(prompts):
            enc = self._tokenizer([prompts[i] for i in batch], return_tensors="pt", padding=True).to(self.device)
            kwargs: dict[str, Any] = dict(max_new_tokens=max_tokens, num_return_sequences=n,
                                          pad_token_id=self._tokenizer.pad_token_id, **sampling)
            if stop:
                kwargs.update(stop_strings=list(stop), tokenizer=self._tokenizer)
            with torch.inference_mode():
                out = self._model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1]:].tolist()
            for row, ids in enumerate(new):
                # Tokens up to and including the first EOS; padding after a finished row dropped.
                kept = []
                for t in ids:
                    kept.append(t)
                    if t in eos_ids:
                        break
                text = self._tokenizer.decode(kept, skip_special_tokens=True)
                if stop and _cut(text, stop) != text:
                    # Count the tokens up to the one that completed the stop string, as vLLM does.
                    n_used = next(k for k in range(1, len(kept) + 1) if _cut(
                        self._tokenizer.decode(kept[:k], skip_special_tokens=True), stop) != self._tokenizer.decode(
                        kept[:k], skip_special_tokens=True))
                    kept, text = kept[:n_used], _cut(text, stop)
                self.generated_tokens += len(kept)
                result[batch[row // n]].append(text)
        return result

    def generate(self, prompts: Sequence[str], max_tokens: int, stop: Sequence[str] | None = None) -> list[str]:
        return [r[0] for r in self._generate(prompts, 1, max_tokens, stop, {"do_sample": False})]

    def sample(self, prompts: Sequence[str], n: int, max_tokens: int, temperature: float = 1.0,
               stop: Sequence[str] | None = None, seed: int | None = None) -> list[list[str]]:
        if seed is not None:
            self._torch.manual_seed(seed)
        return self._generate(prompts, n, max_tokens, stop,
                              {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0})

    def _token_logprobs(self, token_lists: list[list[int]]) -> list[list[float]]:
        """Log-probability of each token given those before it (the first token has none)."""
        torch = self._torch
        result: list[list[float]] = [[] for _ in token_lists]
        order = sorted(range(len(token_lists)), key=lambda i: -len(token_lists[i]))
        pad = self._tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(token_lists[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # left padding, as in generate
                seq = token_lists[i]
                ids[row, width - len(seq):] = torch.tensor(seq)
                mask[row, width - len(seq):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self._model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                     position_ids=positions.to(self.device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(self.device))[..., 0]
            for row, i in enumerate(batch):
                n = len(token_lists[i])
                result[i] = logp[row, width - n:].tolist() if n > 1 else []
        return result

    def close(self) -> None:
        self._model = None
