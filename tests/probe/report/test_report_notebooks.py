"""The notebooks: stored without outputs, public API only, and executing top to bottom."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

from tests.paths import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_three_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    for name in ("01_count_vs_accuracy.ipynb", "02_retrieval.ipynb", "03_long_tail_generation.ipynb"):
        assert name in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_stripped_and_public_api_only(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 4  # explanation, not only code
    source = "\n".join(c.source for c in code)
    # no private modules, no hand parsing of run files
    assert not re.search(r"probe\._|entity_linking|indexes|json\.load|read_json|read_records|open\(", source)
    assert "probe.load_run(" in source


def _kernel_dir(tmp: Path) -> Path:
    """A kernel spec that runs this interpreter, so a user's own `python3` kernel (another
    Python, without the project) cannot be picked up instead."""
    import json
    import sys

    spec = tmp / "kernels" / "ltprobe-test"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ltprobe tests", "language": "python"}))
    return tmp


def _execute(path: Path, env: dict[str, str], tmp: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # the kernel inherits this process's environment: the run folders, and the repository on
    # the path in case the project is not installed
    env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               JUPYTER_PATH=str(_kernel_dir(tmp / "jupyter")))
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=120, kernel_name="ltprobe-test",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def _outputs(nb) -> tuple[str, int]:
    text, images = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")))
            images += "image/png" in out.get("data", {})
    return "\n".join(text), images


@pytest.mark.slow
def test_notebooks_execute_against_a_run(pipeline_run, synthetic_run, tmp_path):
    env = {"LTPROBE_RUN": str(pipeline_run), "LTPROBE_GEN_RUN": str(synthetic_run / "generation")}
    nb1 = _execute(REPO / "notebooks" / "01_count_vs_accuracy.ipynb", env, tmp_path)
    text, images = _outputs(nb1)
    assert f"run {pipeline_run}" in text and images >= 1
    nb2 = _execute(REPO / "notebooks" / "02_retrieval.ipynb", env, tmp_path)
    text, images = _outputs(nb2)
    assert "count-dependence reduction" in text and images >= 2
    nb3 = _execute(REPO / "notebooks" / "03_long_tail_generation.ipynb", env, tmp_path)
    text, images = _outputs(nb3)
    assert "100 statements" in text and "gap" in text and images == 1
    # without a generation run, 03 says so and still runs to the end
    nb3 = _execute(REPO / "notebooks" / "03_long_tail_generation.ipynb",
                   {"LTPROBE_GEN_RUN": str(tmp_path / "none")}, tmp_path)
    text, images = _outputs(nb3)
    assert "There is no generation run at" in text and images == 0
