"""What the machine has, in one place: cores, CUDA, native bf16. Training and evaluation choose
their threads, device and precision from here, so a laptop, a 64-core node and a GPU node each
use what they have, and no machine emulates bf16 (issue 21: on a CPU without AVX-512 BF16,
bf16 autocast and vLLM's bfloat16 run slower than fp32).
"""

from __future__ import annotations

import os
from pathlib import Path

from entity_linking.io import InputError


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which a batch scheduler sets), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (avx2, avx512f, amx_bf16, ...); empty where
    there is none (not Linux)."""
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 instructions (AVX-512 BF16 or AMX), where bf16 is fast;
    elsewhere it is emulated and slower than fp32. `LTPROBE_NO_BF16=1` answers False, so a
    machine with bf16 runs exactly as one without (fp32 training and evaluation)."""
    if os.environ.get("LTPROBE_NO_BF16", "") not in ("", "0"):
        return False
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cuda_available() -> bool:
    """True when torch sees a CUDA device (imports torch)."""
    import torch

    return bool(torch.cuda.is_available())


def training_device(device: str = "auto") -> str:
    """"cuda" or "cpu": `auto` takes CUDA where torch sees a GPU."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device.split(":")[0] not in ("cuda", "cpu"):
        raise InputError(f"device must be auto, cpu or cuda[:N], not {device!r}")
    return device


def native_bf16(device: str) -> bool:
    """True when `device` computes bf16 natively (a CUDA GPU with bf16, or a CPU with AVX-512
    BF16/AMX)."""
    if device.startswith("cuda"):
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return cpu_supports_bf16()


def vllm_dtype(on_gpu: bool) -> str:
    """The dtype to give vLLM for `dtype: auto`: on a CPU bfloat16 only where it is native (else
    float32); on a GPU vLLM's own `auto` (the checkpoint's, fp16 for fp32 checkpoints)."""
    if on_gpu:
        return "auto"
    return "bfloat16" if cpu_supports_bf16() else "float32"
