"""A first hour without a clone: `pip install .` (not editable) carries the default config and
templates, `ltprobe run --out DIR` runs from any folder, and without vLLM the job falls back to
transformers (checked before any stage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.paths import REPO

# The demo's own config at the size of configs/smoke.yaml: every stage, in about a minute.
SMALL = ["world.people=60", "world.reading_docs=300", "model.train.steps=30", "model.train.batch_size=8",
         "model.train.hidden_size=128", "model.train.layers=2", "model.train.heads=2",
         "model.train.intermediate_size=256", "model.train.vocab_size=1024", "model.train.threads=1",
         "analysis.min_bucket=5", "analysis.n_boot=100", "eval.max_tokens=8",
         "model.train.save_steps=[10,20]"]


@pytest.mark.slow
def test_pip_install_runs_the_default_job_from_any_folder_without_vllm(tmp_path):
    site = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--disable-pip-version-check", "--target", str(site), str(REPO)],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    assert (site / "probe" / "configs" / "demo.yaml").is_file()
    assert (site / "probe" / "templates" / "prompts" / "qa.json").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "LTPROBE_VLLM": "none"}
    where = subprocess.run([sys.executable, "-c", "import probe; print(probe.__file__)"], capture_output=True,
                           text=True, env=env, cwd=elsewhere)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr  # the installed copy, not the clone
    args = [sys.executable, "-m", "probe.cli", "run", "--out", "job"]
    for item in SMALL:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=elsewhere, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    notice = "vLLM is not installed here (LTPROBE_VLLM=none); evaluating with transformers instead"
    assert notice in result.stderr
    assert result.stderr.index(notice) < result.stderr.index("[world]")  # before any stage
    manifest = json.loads((elsewhere / "job" / "manifest.json").read_text())
    assert manifest["config"]["model"]["backend"] == "transformers"
    assert manifest["config"]["_source"].startswith(str(site))  # the packaged demo.yaml
    summary = json.loads((elsewhere / "job" / "summary.json").read_text())
    assert {"closed_book", "rag"} <= set(summary["settings"]) and "diagnostics" in summary
    assert (elsewhere / "job" / "report.html").is_file()
