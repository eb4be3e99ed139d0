"""Lazy re-exports for package `__init__` modules, so importing a package never imports torch,
vLLM, spaCy or a search engine until a name that needs them is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """Return a module `__getattr__` that resolves `names[name] = "module:attribute"` on first use."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = names[name].partition(":")
        return getattr(importlib.import_module(module), attribute)

    return __getattr__
