"""The `"openai"` backend: an OpenAI-compatible `/v1/completions` endpoint through the official
`openai` client (`OpenAIGenerator`), and `start_vllm_server`, which starts a vLLM server on
127.0.0.1 to talk to."""

from __future__ import annotations

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

from probe.generation._base import GenerationError, Generator


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
