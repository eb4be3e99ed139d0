"""What every generation backend shares: the `Generator` interface (a batch of prompts in, a list
out), `GenerationError`, and the helpers of the in-process backends (stop strings, candidate
tokens, scoring from per-token log-probabilities). Imports no backend library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


class GenerationError(RuntimeError):
    """A backend failed in a way retries did not cure (a dead server, a refused request)."""


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


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
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


class InProcessScoring:
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
