"""Parameter counts of models, for the scaling analysis across model sizes
(`probe.analysis._analysis.scaling`).

A count comes from the model's safetensors headers: the sum over its tensors of the product of
their shapes, exact and read without loading a weight (a few kilobytes per file). The model is
a local folder, a hub id already in the local Hugging Face cache, or (unless HF_HUB_OFFLINE is
set) a hub id whose headers are fetched. Models without safetensors weights (a served name, a
`.bin` checkpoint) need their count given by the user.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from entity_linking.io import InputError


def parameter_count(model: str) -> int | None:
    """Parameters of `model` from its safetensors headers; None when there are none to read."""
    folder = _local_folder(model)
    if folder is not None:
        files = _weight_files(folder)
        if files:
            return sum(_tensor_sizes(f) for f in files)
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or Path(model).exists():
        return None
    try:  # headers only, over the network
        from huggingface_hub import get_safetensors_metadata

        return int(sum(get_safetensors_metadata(model).parameter_count.values()))
    except Exception:  # noqa: BLE001 - not a hub id, no network, no safetensors: the user gives it
        return None


def model_parameters(models: Sequence[str], given: Mapping[str, float] | None = None, *,
                     how_to_give: str = "--params MODEL=N") -> dict[str, float]:
    """`{model: parameters}` for each model: the count in `given`, else `parameter_count`.

    Raises InputError naming the model (and `how_to_give`) when neither has it, so a job with
    several models fails before it evaluates any.
    """
    given = dict(given or {})
    unknown = set(given) - set(models)
    if unknown:
        raise InputError(f"parameter count given for {min(unknown)!r}, which is not one of the models "
                         f"({', '.join(models)})")
    out: dict[str, float] = {}
    for model in models:
        if model in given:
            value = given[model]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise InputError(f"parameter count of {model!r} must be a positive number, not {value!r}")
            out[model] = float(value)
            continue
        count = parameter_count(model)
        if count is None:
            raise InputError(f"{model}: cannot read its parameter count (no safetensors weights found); "
                             f"give it with {how_to_give}")
        out[model] = float(count)
    return out


def parse_params(items: Sequence[str]) -> dict[str, float]:
    """`["MODEL=N", ...]` (N may be written 1.3e9) -> `{MODEL: N}`."""
    out = {}
    for item in items:
        model, sep, value = item.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or not model or not number > 0:
            raise InputError(f"--params {item!r}: expected MODEL=N with N a positive number, e.g. "
                             "EleutherAI/gpt-neo-125m=1.25e8")
        out[model] = number
    return out


def _local_folder(model: str) -> Path | None:
    path = Path(model)
    if path.is_dir():
        return path
    if path.exists() or model.count("/") > 1:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True,
                                      allow_patterns=["*.safetensors", "*.safetensors.index.json"]))
    except Exception:  # noqa: BLE001 - not in the cache, or not a hub id
        return None


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files of one checkpoint (the index's shards when there is an index;
    `consolidated*` copies that some repositories ship beside them are left out)."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [folder / s for s in shards]
    if (folder / "model.safetensors").exists():
        return [folder / "model.safetensors"]
    return sorted(f for f in folder.glob("*.safetensors") if not f.name.startswith("consolidated"))


def _tensor_sizes(path: Path) -> int:
    """Sum of the element counts of the tensors in a safetensors file (its JSON header)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return sum(math.prod(info["shape"]) for name, info in header.items() if name != "__metadata__")
