"""The `"transformers"` backend: batched `generate` with left padding (`TransformersGenerator`);
torch and transformers are imported only when one is built."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from entity_linking.io import InputError
from probe.generation._base import Generator, InProcessScoring, cut_at_stop


class TransformersGenerator(InProcessScoring, Generator):
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
                if stop and cut_at_stop(text, stop) != text:
                    # Count the tokens up to the one that completed the stop string, as vLLM does.
                    n_used = next(k for k in range(1, len(kept) + 1) if cut_at_stop(
                        self._tokenizer.decode(kept[:k], skip_special_tokens=True), stop) != self._tokenizer.decode(
                        kept[:k], skip_special_tokens=True))
                    kept, text = kept[:n_used], cut_at_stop(text, stop)
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
