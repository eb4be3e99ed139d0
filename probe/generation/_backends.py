"""Generation backends by name, behind one `get_generator(backend, model, **options)`.

- `"vllm"` (`probe.generation._vllm.VLLMGenerator`): `vllm.LLM` in this process; the whole
  batch goes to vLLM at once, sorted longest-first so that a memory error shows at once. Engine
  options (tensor and data parallelism, dtype, max_model_len, gpu_memory_utilization,
  enforce_eager, ...) pass through. Build it under `if __name__ == "__main__":` or in a process
  that is not re-imported: vLLM starts worker processes.
- `"openai"` (`probe.generation._server.OpenAIGenerator`): any OpenAI-compatible
  `/v1/completions` endpoint (a vLLM server) through the official `openai` client, with bounded
  concurrency, timeouts and retries with exponential backoff. `start_vllm_server` starts such a
  server on 127.0.0.1.
- `"transformers"` (`probe.generation._transformers.TransformersGenerator`): batched `generate`
  with left padding; the fallback without vLLM and the baseline of `ltprobe bench eval`.

Greedy completions agree across the three on the same model (tests/probe/generation).
Completions are returned without the stop string and unstripped; callers strip.
`BACKENDS` names each backend's class as "module:Class", imported only when `get_generator`
builds one, so importing this package never imports torch, transformers or vLLM; adding a
backend is one line there.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from entity_linking.io import InputError
from probe.generation._base import Generator

logger = logging.getLogger(__name__)

# backend name -> "module:Class", imported on first use (one line each).
BACKENDS = {
    "vllm": "probe.generation._vllm:VLLMGenerator",
    "openai": "probe.generation._server:OpenAIGenerator",
    "transformers": "probe.generation._transformers:TransformersGenerator",
}


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
# TransformersGenerator's own options (its keyword arguments).
_TRANSFORMERS_OPTIONS = {"dtype", "device", "batch_size", "max_context", "trust_remote_code", "revision"}


def resolve_backend(backend: str, options: dict[str, Any], *, notice: bool = True) -> tuple[str, dict[str, Any]]:
    """The backend and options that will really run: "vllm" where vLLM is missing (or
    `LTPROBE_VLLM=none`) becomes "transformers", with the vLLM options that carry over
    (`dtype`, `max_model_len`) and a one-line notice on stderr. For "transformers" the vLLM
    names of its options are translated too (a vLLM config switched to transformers runs) and
    the engine options that mean nothing to it are left out with a notice."""
    if backend not in BACKENDS:
        raise InputError(f"unknown generation backend {backend!r}; use one of {', '.join(BACKENDS)}")
    fallback = backend == "vllm" and not vllm_available()
    if backend != "transformers" and not fallback:
        return backend, dict(options)
    kept = {k: v for k, v in options.items() if k in _TRANSFORMERS_OPTIONS}
    kept.update({_VLLM_TO_TRANSFORMERS[k]: v for k, v in options.items()
                 if k in _VLLM_TO_TRANSFORMERS and k not in _TRANSFORMERS_OPTIONS})
    dropped = sorted(set(options) - set(_TRANSFORMERS_OPTIONS) - set(_VLLM_TO_TRANSFORMERS))
    if fallback and kept.get("dtype", "auto") == "auto":
        from probe.generation._hardware import cpu_supports_bf16, cuda_available

        kept["dtype"] = "auto" if cuda_available() else "bfloat16" if cpu_supports_bf16() else "float32"
    unused = f" (vLLM options {', '.join(dropped)} do not apply)" if dropped else ""
    if notice and fallback:
        logger.warning("vLLM is not installed here" + (" (LTPROBE_VLLM=none)" if os.environ.get(
            "LTPROBE_VLLM", "").lower() == "none" else "") + "; evaluating with transformers instead" + unused)
    elif notice and dropped:
        logger.warning(f"backend transformers: options {', '.join(dropped)} are vLLM's or unknown and do not apply")
    return "transformers", kept
