"""The LINK prompt templates (`probe/templates/link/*.yaml`) and the sentence helpers every LINK step
shares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from entity_linking.io import InputError

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates" / "link"


_TEMPLATE_NAMES = ("knowledge", "critic_fact", "critic_type", "probe_yes_no", "probe_true_false",
                   "probe_entailment")


def load_templates(directory: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The prompt templates (`templates/link/*.yaml`); files in `directory` override them."""
    import yaml

    out = {}
    for name in _TEMPLATE_NAMES:
        path = TEMPLATE_DIR / f"{name}.yaml"
        if directory is not None and (Path(directory) / f"{name}.yaml").exists():
            path = Path(directory) / f"{name}.yaml"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"{path}: unreadable template ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
            raise InputError(f"{path}: a template needs a 'prompt' string")
        out[name] = data
    return out


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def join_and(parts: list[str]) -> str:
    """"a", "a and b", "a, b and c"; "" for no parts."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
