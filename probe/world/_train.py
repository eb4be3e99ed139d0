"""Training a small Llama-architecture model on the CPU: the demo's model.

A byte-level BPE tokenizer is trained on the training texts, then a `LlamaForCausalLM` with
transformers/PyTorch, scheduled by optimizer steps (not wall time, so results do not depend
on the machine). The output is an ordinary model folder (config.json, safetensors weights,
tokenizer files, generation_config.json) that transformers and vLLM load offline.

Recipe notes (issue 2, measured on a 2-core AVX-512 machine): bf16 autocast runs about 2.2x
faster than fp32 where the CPU has bf16 instructions; batch 16 rather than 32 gives the same
tokens/s and twice the optimizer steps, which is what lets the model learn to copy answers
from a passage; documents are packed whole into rows with padding masked, so a reading
document is never cut between its passage and its answers.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from entity_linking.faults import fault_point
from entity_linking.io import InputError, SkipCounter, disk_errors, read_records, write_json
from entity_linking.logs import progress_bar
from probe.generation import available_cores, cpu_flags, native_bf16, training_device

logger = logging.getLogger(__name__)

TRAIN_MARKER = "ltprobe_train.json"
"""Written last into the model folder; its presence with the same config and inputs means the
model is trained and `train_model` returns at once."""
ORDER_FILE = "train_order.npz"
"""Written into the model folder: which documents were trained on at which step
(`indexes.load_order` reads it; see `_write_order`)."""
CHECKPOINT_MARKER = "ltprobe_checkpoint.json"
"""Written into each checkpoint folder: `{"step", "tokens_seen"}`."""

_FORMAT_VERSION = 1
_WARNED_KERNELS: set[str] = set()  # kernel sets already warned about in this process (a notebook trains often)


@dataclass
class TrainConfig:
    """How to train the model. The defaults are the demo recipe: a 2.2M-parameter model, 1,600
    steps (see docs/benchmarks.md, "The demo recipe on any machine", for its times and its
    checks in fp32 and bf16 over seeds 0-5); `configs/study.yaml` has the full-size study's."""

    steps: int = 1600
    """Optimizer steps."""
    batch_size: int = 16
    """Rows per step."""
    seq_len: int = 128
    """Tokens per row; documents are packed whole into rows (longer ones are split)."""
    vocab_size: int = 2048
    """Byte-level BPE vocabulary size, special tokens included."""
    hidden_size: int = 192
    layers: int = 3
    heads: int = 3
    """Attention heads; hidden_size / heads must be a head size vLLM's CPU attention supports
    (64 and 128 are safe)."""
    intermediate_size: int = 768
    max_position_embeddings: int = 1024
    """Longest sequence the saved model accepts (the model is trained on `seq_len`)."""
    lr: float = 2e-3
    warmup: float = 0.03
    """Share of the steps with linear warm-up."""
    min_lr_ratio: float = 0.1
    """Cosine decay ends at lr * min_lr_ratio."""
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    precision: str = "auto"
    """bf16 (autocast), fp32, or auto: bf16 where the device computes it natively (a CPU with
    AVX-512 BF16 or AMX, a GPU with bf16), else fp32. Never emulated bf16: slower than fp32."""
    threads: int | None = None
    """torch threads on a CPU; None: every core this process may use."""
    device: str = "auto"
    """cpu, cuda[:N], or auto: CUDA where torch sees a GPU."""
    cpu_kernels: str = "avx2"
    """torch's CPU kernels for fp32 training on an x86-64 CPU: avx2 trains the same model, bit
    for bit, on every x86-64 CPU with AVX2 and at any thread count, so a seed's result on one
    machine is its result on all (without it an AVX-512 CPU trains another model than an AVX2
    one); no slower for the demo's model (docs/benchmarks.md, "One model on every x86-64 CPU").
    native: the widest the CPU has. Takes effect only where torch has run no CPU kernel yet in
    this process (a fresh `ltprobe` command); elsewhere a warning says the model is tied to
    this CPU's kernels. Not for bf16 (its native instructions are AVX-512's and AMX's) or a GPU."""
    mix: list[list[float]] | None = field(default_factory=lambda: [[0.3, 0.35, 0.65, 0.0], [1.0, 0.6, 0.4, 0.0]])
    """Share of rows drawn from each training file by phase: `[[until, share_file1, share_file2,
    ...], ...]`, `until` a fraction of the steps. The default is for a world's files
    (`world_training_files`: corpus, reading, drill) and teaches reading: 65% of rows from
    reading.jsonl in the first 30% of the steps, 40% after (reading a passage is the skill that
    forms late and in some runs not at all with less; the corpus's frequent facts are recalled
    with far less than the rest); the drill file (empty unless `world.drill_people` is set)
    gets no share. A file with no rows gets no share. Ignored when one file is given; None:
    rows drawn in proportion to the files' sizes."""
    seed: int = 0
    """Seed of initialisation and row order (the `seed` argument of train_model wins)."""
    checkpoint_every: int | None = None
    """Also save the model every N steps to `OUT/checkpoints/step-N` (to watch a long run;
    not part of the cache key)."""
    save_steps: list[int] | None = None
    """Save the model after each of these steps to `OUT/checkpoints/step-N` (the checkpoints of
    a learning curve, `ltprobe eval --model OUT/checkpoints/step-*`); part of the cache key when
    set, so asking for checkpoints retrains a model saved without them. The last step is the
    model folder itself and is not saved again."""


def train_config(**settings: Any) -> TrainConfig:
    """The demo recipe with `settings` changed (None values leave a field as it is). A new
    `hidden_size` brings its own `heads` (head size 64, vLLM's CPU attention supports it) and
    `intermediate_size` (4 x hidden) unless those are given too."""
    settings = {k: v for k, v in settings.items() if v is not None}
    config = TrainConfig(**settings)
    if "hidden_size" in settings:
        if "heads" not in settings:
            config.heads = max(1, config.hidden_size // 64)
        if "intermediate_size" not in settings:
            config.intermediate_size = 4 * config.hidden_size
    return config


def _resolve_precision(precision: str, device: str) -> str:
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision not in ("bf16", "fp32"):
        raise InputError(f"train: precision must be auto, bf16 or fp32, not {precision!r}")
    return precision


def _pin_cpu_kernels(wanted: str, device: str, precision: str) -> str | None:
    """torch's CPU kernel set that this training runs with ("AVX2", "AVX512", ...; None on a
    GPU), pinned to AVX2 for fp32 on an x86-64 CPU that has it when `wanted` is avx2.

    torch reads ATEN_CPU_CAPABILITY once, at its first CPU kernel in the process; the variable
    is removed again after it is read, so processes started later (vLLM's workers) use the
    CPU's widest kernels. MKL's matrix products gave the same bytes with AVX-512, AVX2 and
    SSE4.2 asked of it on an Intel CPU; on an AMD CPU not checked (docs/benchmarks.md). Where
    torch chose before the pin could apply (a notebook that ran torch first), it warns once per
    process."""
    import torch

    if wanted not in ("avx2", "native"):
        raise InputError(f"train: cpu_kernels must be avx2 or native, not {wanted!r}")
    if device != "cpu":
        return None
    pin = wanted == "avx2" and precision == "fp32" and "avx2" in cpu_flags()
    if pin and "ATEN_CPU_CAPABILITY" not in os.environ:
        os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
        try:
            used = torch.backends.cpu.get_cpu_capability()
        finally:
            del os.environ["ATEN_CPU_CAPABILITY"]
        if used != "AVX2" and used not in _WARNED_KERNELS:
            _WARNED_KERNELS.add(used)
            logger.warning(f"train: torch already chose its CPU kernels ({used}) in this process before training "
                           f"could pin them to AVX2, so this model equals only models trained with {used} "
                           f"kernels; train in a fresh process (`ltprobe train`) for the model every x86-64 "
                           f"CPU trains")
        return used
    return torch.backends.cpu.get_cpu_capability()


def _fingerprint(files: list[Path], config: TrainConfig, seed: int, drop: frozenset[str]) -> dict[str, Any]:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    cfg = asdict(config)
    # where it runs, not what it learns (the CPU kernels really used join the key in train_model)
    for key in ("checkpoint_every", "threads", "device", "cpu_kernels"):
        cfg.pop(key)
    if not cfg.get("save_steps"):  # unset: markers written before save_steps existed still match
        cfg.pop("save_steps", None)
    cfg["seed"] = seed
    cfg["betas"] = list(cfg["betas"])
    # None without a drop, so markers written before `drop` existed still match.
    dropped = hashlib.sha256("\n".join(sorted(drop)).encode()).hexdigest() if drop else None
    return {"format": _FORMAT_VERSION, "config": cfg, "inputs_sha256": digest.hexdigest(), "dropped_sha256": dropped}


def _read_texts(path: Path, on_error: str) -> tuple[list[str], list[str | None]]:
    """The `text` of each record of a JSONL file, and its `id` (None where it has none)."""
    skips = SkipCounter()
    texts: list[str] = []
    ids: list[str | None] = []
    for _, record in read_records(path, on_error=on_error, skips=skips, required={"text": str}):
        texts.append(record["text"])
        ids.append(None if record.get("id") is None else str(record["id"]))
    if skips.skipped:
        logger.warning(f"train: {path}: {skips.summary()}")
    if not texts and skips.skipped:  # (a file with no records at all is empty on purpose: no share)
        raise InputError(f"{path}: no training texts (records need a 'text' field)")
    return texts, ids


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: Path):
    """A byte-level BPE tokenizer (with a prefix space, so a name tokenizes the same at the
    start of a document and mid-text), saved as a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>",
                                   bos_token="<eos>", add_prefix_space=True)
    with disk_errors(Path(out_dir)):
        fast.save_pretrained(out_dir)
    return fast


def _pack(token_lists: list[list[int]], seq_len: int, eos: int, rng: random.Random,
          keep: list[bool] | None = None, members: list[list[int]] | None = None) -> list[list[int]]:
    """Pack documents (each ending in eos) whole into rows of at most seq_len tokens.

    With `keep`, the rows are laid out exactly as for all documents, and then the dropped
    documents' tokens are left out of them: every kept document lands in the same row, at the
    same step, as without the drop (a row left empty holds a lone eos, which trains nothing).
    With `members`, it receives per row the indices of the (kept) documents with tokens in it.
    """
    order = list(range(len(token_lists)))
    rng.shuffle(order)
    rows: list[list[int]] = []
    row: list[int] = []
    used = 0  # tokens of the row's layout, dropped documents included
    inside: list[int] = []  # kept documents of the open row

    def close() -> None:
        rows.append(row or [eos])
        if members is not None:
            members.append(list(inside))
        inside.clear()

    for i in order:
        doc = token_lists[i] + [eos]
        kept = keep is None or keep[i]
        while len(doc) > seq_len:  # longer than a row: split it
            if used:
                close()
                row, used = [], 0
            rows.append(doc[:seq_len] if kept else [eos])
            if members is not None:
                members.append([i] if kept else [])
            doc = doc[seq_len:]
        if used + len(doc) > seq_len:
            close()
            row, used = [], 0
        if kept:
            row += doc
            inside.append(i)
        used += len(doc)
    if used:
        close()
    return rows


@contextlib.contextmanager
def _malloc_keeps_freed_memory() -> Iterator[None]:
    """While training, glibc's malloc takes every block from its heap and keeps freed memory
    instead of returning it to the system: by default each step's large activation buffers are
    mapped, freed and faulted in again (about 37,000 page faults a step, 12% of the demo's CPU
    time in the kernel). Identical weights, about 15% more steps/s there. No-op without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    m_trim_threshold, m_mmap_max = -1, -4
    mallopt(m_mmap_max, 0)
    mallopt(m_trim_threshold, 2**31 - 1)
    try:
        yield
    finally:  # glibc's defaults back, and the kept memory returned
        mallopt(m_mmap_max, 65536)
        mallopt(m_trim_threshold, 128 * 1024)
        malloc_trim(0)


def _lr_at(step: int, config: TrainConfig) -> float:
    warm = max(1, round(config.warmup * config.steps))
    if step < warm:
        return config.lr * (step + 1) / warm
    progress = (step - warm) / max(1, config.steps - warm)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _shares_at(step: int, config: TrainConfig, n_files: int, sizes: list[int]) -> list[float]:
    if n_files == 1:
        return [1.0]
    if config.mix is None:
        return [s / sum(sizes) for s in sizes]
    for phase in config.mix:
        if step < phase[0] * config.steps or phase is config.mix[-1]:
            return [share if size else 0.0 for share, size in zip(phase[1:], sizes)]
    raise AssertionError("unreachable")


def _check_mix(config: TrainConfig, n_files: int) -> None:
    if n_files == 1 or config.mix is None:
        return
    for phase in config.mix:
        if len(phase) != n_files + 1:
            raise InputError(f"train: mix phase {phase} gives {len(phase) - 1} share(s) but {n_files} training "
                             f"files were given (each phase is [until, one share per file])")
        if any(s < 0 for s in phase[1:]) or sum(phase[1:]) <= 0:
            raise InputError(f"train: mix phase {phase} needs non-negative shares with a positive sum")


def train_model(out_dir: str | os.PathLike, texts_files: list[str | os.PathLike], config: TrainConfig | None = None,
                *, seed: int | None = None, drop: Collection[str] = (), on_error: str = "fail",
                progress: bool = True) -> Path:
    """Train a tokenizer and a small Llama model on JSONL files with a `text` field; return
    the model folder.

    Cached: when `out_dir/ltprobe_train.json` records the same config, seed, input bytes and
    dropped ids, nothing is trained again. With several files, `config.mix` sets the share of
    rows drawn from each by phase of training.

    `drop`: ids of records to leave out of training while keeping everything else as it would
    be without the drop (the tokenizer, trained on every text; each kept document's row and
    step): the counterfactual's retraining, in which only the removed documents differ.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = config or TrainConfig()
    seed = config.seed if seed is None else seed
    out = Path(out_dir)
    files = [Path(f) for f in texts_files]
    if not files:
        raise InputError("train: no training files given")
    for f in files:
        if not f.exists():
            raise InputError(f"{f}: no such file")
    if config.hidden_size % config.heads:
        raise InputError(f"train: hidden_size {config.hidden_size} is not divisible by heads {config.heads}")
    _check_mix(config, len(files))

    drop = frozenset(drop)
    device = training_device(config.device)
    precision = _resolve_precision(config.precision, device)
    kernels = _pin_cpu_kernels(config.cpu_kernels, device, precision)
    fingerprint = {**_fingerprint(files, config, seed, drop), "cpu_kernels_used": kernels}
    marker = out / TRAIN_MARKER
    if marker.exists():
        try:
            previous = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            previous = {}
        if {k: previous.get(k) for k in fingerprint} == fingerprint:
            return out
        marker.unlink()  # a different config or input: retrain

    threads = config.threads or available_cores()
    torch.set_num_threads(threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if device == "cpu" and threads > 1 and load > available_cores():
        # OpenMP threads spin-wait for each other; on an oversubscribed machine two threads
        # were measured ten times slower than one.
        logger.warning(f"train: the machine is busy (load {load:.1f} on {available_cores()} cores); "
                       f"threads=1 may train much faster than threads={threads}")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)

    read = [_read_texts(f, on_error) for f in files]
    if not any(texts for texts, _ in read):
        raise InputError(f"train: no text to train on in {', '.join(map(str, files))}")
    tokenizer = train_tokenizer([t for texts, _ in read for t in texts], config.vocab_size, out)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    pools = []
    pool_members: list[list[list[int]]] = []
    dropped = 0
    for texts, ids in read:
        keep = [i is None or i not in drop for i in ids] if drop else None
        dropped += keep.count(False) if keep else 0
        tokens = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        pool_members.append([])
        pools.append(_pack(tokens, config.seq_len, eos, rng, keep, pool_members[-1]))
    if drop and dropped != len(drop):
        logger.warning(f"train: {len(drop) - dropped} of the {len(drop)} ids to drop are in no training file")
    sizes = [len(p) for p in pools]
    for phase in (config.mix or []) if len(files) > 1 else []:
        if not any(share and size for share, size in zip(phase[1:], sizes)):
            raise InputError(f"train: mix phase {phase} draws only from files with no text")

    model_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.heads,
        max_position_embeddings=max(config.max_position_embeddings, config.seq_len), tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=pad, rms_norm_eps=1e-5)
    model = LlamaForCausalLM(model_config).to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.lr, betas=tuple(config.betas))

    cursors = [0] * len(pools)
    orders = [rng.sample(range(len(p)), len(p)) for p in pools]
    drawn: list[tuple[int, int]] = []  # (file, row) of every row trained on, in order

    def next_row(k: int) -> list[int]:
        if cursors[k] >= len(orders[k]):  # one pass over this file's rows done: reshuffle
            rng.shuffle(orders[k])
            cursors[k] = 0
        drawn.append((k, orders[k][cursors[k]]))
        row = pools[k][orders[k][cursors[k]]]
        cursors[k] += 1
        return row

    save_steps = set(config.save_steps or ())
    if any(not 0 < s <= config.steps for s in save_steps):
        raise InputError(f"train: save_steps {sorted(save_steps)} must lie in 1..{config.steps} (the steps)")
    step_tokens: list[int] = []

    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=precision == "bf16")
    # glibc's malloc tuning helps the CPU's activation buffers; on a GPU it does nothing useful.
    memory = _malloc_keeps_freed_memory() if device == "cpu" else contextlib.nullcontext()
    started = time.time()
    tokens_seen = 0
    losses: list[float] = []
    bar = progress_bar(total=config.steps, desc="train", unit="step", enabled=progress)
    log_every = max(1, config.steps // 10)
    with memory:
        for step in range(config.steps):
            shares = _shares_at(step, config, len(pools), sizes)
            picks = rng.choices(range(len(pools)), weights=shares, k=config.batch_size)
            rows = [next_row(k) for k in picks]
            input_ids = torch.full((len(rows), config.seq_len), pad, dtype=torch.long)
            attention = torch.zeros((len(rows), config.seq_len), dtype=torch.long)
            for i, row in enumerate(rows):
                input_ids[i, :len(row)] = torch.tensor(row)
                attention[i, :len(row)] = 1
            input_ids, attention = input_ids.to(device), attention.to(device)
            labels = input_ids.masked_fill(attention == 0, -100)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, config)
            with autocast:
                loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step_tokens.append(int(attention.sum()))
            tokens_seen += step_tokens[-1]
            losses.append(float(loss.detach()))
            bar.update(1)
            fault_point("train:step")
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
                checkpoint = out / "checkpoints" / f"step-{step + 1}"
                with disk_errors(checkpoint):
                    model.save_pretrained(checkpoint, safe_serialization=True)
                    tokenizer.save_pretrained(checkpoint)
            if step + 1 in save_steps and step + 1 < config.steps:
                _save_checkpoint(out / "checkpoints" / f"step-{step + 1}", model, tokenizer, step + 1, tokens_seen)
            if step % 10 == 0 or step == config.steps - 1:
                elapsed = max(time.time() - started, 1e-9)
                bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}", tok_s=f"{tokens_seen / elapsed:,.0f}")
            if bar.disable and (step + 1) % log_every == 0 and step + 1 < config.steps:
                # No bar (a batch job, a log file): a line every tenth of the run instead.
                elapsed = max(time.time() - started, 1e-9)
                left = (config.steps - step - 1) * elapsed / (step + 1)
                logger.info(f"train: step {step + 1}/{config.steps}, "
                            f"loss {sum(losses[-50:]) / len(losses[-50:]):.3f}, "
                            f"{(step + 1) / elapsed:.2f} steps/s, about {left:.0f} s left")
    bar.close()
    elapsed = time.time() - started

    model.eval()
    with disk_errors(out / ORDER_FILE):
        _write_order(out / ORDER_FILE, files, read, pool_members, drawn, config.batch_size, step_tokens)
    with disk_errors(out):
        model.to("cpu").save_pretrained(out, safe_serialization=True)
        GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos, pad_token_id=pad,
                         do_sample=False, max_new_tokens=32).save_pretrained(out)
    fault_point("train:saved")  # weights written, marker not yet: the next run must retrain
    write_json(marker, {**fingerprint, "precision": precision, "device": device,
                        "threads": threads if device == "cpu" else None,
                        "parameters": sum(p.numel() for p in model.parameters()),
                        "rows": sizes, "dropped": dropped, "tokens_seen": tokens_seen, "seconds": round(elapsed, 1),
                        "tokens_per_second": round(tokens_seen / max(elapsed, 1e-9)),
                        "steps_per_second": round(config.steps / max(elapsed, 1e-9), 3),
                        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4)})
    return out


def _save_checkpoint(folder: Path, model: Any, tokenizer: Any, step: int, tokens_seen: int) -> None:
    """A model folder that transformers and vLLM load, with its step in CHECKPOINT_MARKER."""
    from transformers import GenerationConfig

    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=32).save_pretrained(folder)
    write_json(folder / CHECKPOINT_MARKER, {"step": step, "tokens_seen": tokens_seen})


def _write_order(path: Path, files: list[Path], read: list[tuple[list[str], list[str | None]]],
                 members: list[list[list[int]]], drawn: list[tuple[int, int]], batch_size: int,
                 step_tokens: list[int]) -> None:
    """The training order as `indexes.load_order` reads it (an `.npz`):

    - `ids`: document ids, the training files' documents one after the other (a record's `id`,
      else `FILE_NAME:LINE` as corpus linking names it);
    - `positions`: indices into `ids`, one per (document, row) trained on, in training order (a
      document split over rows appears once per row; a row drawn again, again);
    - `step_offsets`: the documents of step s are `positions[step_offsets[s]:step_offsets[s + 1]]`;
    - `step_tokens`: tokens trained on per step; `files`: the training files' names.
    """
    import numpy as np

    ids: list[str] = []
    offsets = []
    for f, (_, file_ids) in zip(files, read):
        offsets.append(len(ids))
        ids.extend(i if i is not None else f"{f.name}:{n + 1}" for n, i in enumerate(file_ids))
    positions: list[int] = []
    step_offsets = [0]
    for n, (k, r) in enumerate(drawn):
        positions.extend(offsets[k] + d for d in members[k][r])
        if (n + 1) % batch_size == 0:
            step_offsets.append(len(positions))
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, ids=np.array(ids, dtype=str), positions=np.array(positions, dtype=np.int64),
             step_offsets=np.array(step_offsets, dtype=np.int64), step_tokens=np.array(step_tokens, dtype=np.int64),
             files=np.array([f.name for f in files], dtype=str))
    os.replace(tmp, path)
