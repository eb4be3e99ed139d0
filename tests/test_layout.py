"""The layout the design promises (issue 17), checked on the source: the three packages in layers
(`entity_linking` <- `indexes` <- `probe`), no module imported from outside its package when it
is private, no cycle between modules (imports inside functions included), no folder of more than
12 modules, and every public name of every package importable."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.paths import REPO

LAYERS = ("entity_linking", "indexes", "probe")
"""Lowest first: a package may import from the ones before it, never from the ones after."""

MAX_MODULES = 12


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for layer in LAYERS for p in sorted((REPO / layer).rglob("*.py"))}
PACKAGES = sorted(m for m, p in MODULES.items() if p.name == "__init__.py")


def _lazy_map(package: str) -> dict[str, str]:
    """name -> defining module, read from the package's `_LAZY = {...}` without importing it."""
    out = {}
    for node in ast.walk(ast.parse(MODULES[package].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant) and ":" in str(value.value):
                    out[key.value] = value.value.split(":")[0]
    return out


LAZY = {package: _lazy_map(package) for package in PACKAGES}


def _imports(module: str) -> list[tuple[str, str]]:
    """(module named in the import statement, module that defines what is imported) for every
    import of one of the three packages in `module`, at any depth (functions included)."""
    path = MODULES[module]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, a.name) for a in node.names if a.name.split(".")[0] in LAYERS]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                named = ".".join(base + ([node.module] if node.module else []))
            else:
                named = node.module or ""
            if named.split(".")[0] not in LAYERS:
                continue
            for alias in node.names:
                submodule = f"{named}.{alias.name}"
                if submodule in MODULES:
                    out.append((submodule, submodule))
                else:
                    out.append((named, LAZY.get(named, {}).get(alias.name, named)))
    return [(named, defining) for named, defining in out if defining != module]


IMPORTS = {module: _imports(module) for module in MODULES}


def test_no_package_imports_a_higher_layer():
    upward = [f"{m} imports {named}" for m, imports in IMPORTS.items() for named, _ in imports
              if LAYERS.index(named.split(".")[0]) > LAYERS.index(m.split(".")[0])]
    assert not upward, "\n".join(upward)


def test_private_modules_are_imported_only_inside_their_package():
    leaks = []
    for m, imports in IMPORTS.items():
        for named, _ in imports:
            parent, _, last = named.rpartition(".")
            if last.startswith("_") and last != "__init__" and m != parent and not m.startswith(parent + "."):
                leaks.append(f"{m} imports the private {named} (use the public name of {parent})")
    assert not leaks, "\n".join(leaks)


def test_no_cycle_between_modules():
    graph = {m: {defining for _, defining in imports if defining in MODULES} for m, imports in IMPORTS.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_folder_holds_more_than_twelve_modules():
    folders: dict[Path, int] = {}
    for path in MODULES.values():
        if path.name not in ("__init__.py", "__main__.py"):
            folders[path.parent] = folders.get(path.parent, 0) + 1
    crowded = {str(f.relative_to(REPO)): n for f, n in folders.items() if n > MAX_MODULES}
    assert not crowded


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_imports(package):
    module = importlib.import_module(package)
    assert module.__doc__ and module.__doc__.strip() and "TODO" not in module.__doc__
    for name in getattr(module, "__all__", []):
        assert getattr(module, name) is not None, f"{package}.{name}"
