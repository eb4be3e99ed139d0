"""The `"vllm"` backend: `vllm.LLM` in this process (`VLLMGenerator`), or `data_parallel_size`
engines in worker processes (`DataParallelVLLM`). vLLM is imported only when one is built."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from entity_linking.io import InputError
from probe.generation._base import GenerationError, Generator, InProcessScoring


class VLLMGenerator(InProcessScoring, Generator):
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
