"""`ltprobe run` with several models (`model.path: [...]`): one job, per-model results and the
scaling analysis across sizes, on the tiny world with two real tiny models of different sizes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from entity_linking.io import read_records

LTPROBE = str(Path(sys.executable).parent / "ltprobe")


def _parameters(model_dir: Path) -> float:
    from transformers import AutoModelForCausalLM

    return float(AutoModelForCausalLM.from_pretrained(model_dir).num_parameters())


def _config(tmp_path: Path, models: list[Path], world: dict) -> Path:
    config = tmp_path / "job.yaml"
    # The world the tiny models were trained on; transformers, as starting a vLLM engine per
    # model takes minutes on a small CPU (the loop over models is the same for every backend).
    config.write_text(json.dumps({
        "world": world,
        "model": {"path": [str(m) for m in models], "backend": "transformers", "params": {str(models[1]): 7.5e4}},
        "linking": {"workers": 1},
        "eval": {"settings": ["closed_book", "rag"], "shots": 2, "max_tokens": 8},
        "rag": {"k": 1},
        "analysis": {"min_bucket": 5, "n_boot": 50, "target_accuracy": 0.5, "scaling_max_count": 10},
    }))
    return config


def _run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([LTPROBE, *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def several(tiny_model, tiny_model_small, tiny_world_settings, tmp_path_factory):
    """(config, run folder, stdout) of a whole run with two models."""
    base = tmp_path_factory.mktemp("several_models")
    config = _config(base, [tiny_model, tiny_model_small], tiny_world_settings)
    result = _run("run", str(config), "--out", str(base / "run"))
    return config, base / "run", result.stdout


@pytest.mark.slow
def test_run_with_several_models_writes_models_and_scaling(several, tiny_model, tiny_model_small):
    _, out, stdout = several
    predictions = [r for _, r in read_records(out / "predictions.jsonl")]
    models = [str(tiny_model), str(tiny_model_small)]
    assert list(dict.fromkeys(p["model"] for p in predictions)) == models
    by_model = {m: [p for p in predictions if p["model"] == m] for m in models}
    assert len(by_model[models[0]]) == len(by_model[models[1]])

    from probe import summarize

    summary = json.loads((out / "summary.json").read_text())
    counts = [r for _, r in read_records(out / "counts.jsonl")]
    # The contract's keys are the primary (first) model's, as in a single-model run.
    alone = summarize(by_model[models[0]], counts, min_bucket=5, n_boot=50, seed=0)
    assert summary["model"] == models[0]
    assert summary["n_questions"] == len({p["id"] for p in by_model[models[0]]})
    for key in ("settings", "count_dependence_reduction"):
        assert summary[key] == alone[key], key
    assert [m["model"] for m in summary["models"]] == models
    assert summary["models"][1]["settings"] == summarize(by_model[models[1]], counts, min_bucket=5, n_boot=50,
                                                         seed=0)["settings"]
    # Parameters: read from the first model's weights, given in the config for the second.
    sizes = [_parameters(tiny_model), 7.5e4]
    scaling = summary["scaling"]
    assert [p["parameters"] for p in scaling["points"]] == [m["parameters"] for m in summary["models"]] == sizes
    assert scaling["max_count"] == 10 and scaling["setting"] == "closed_book" and scaling["target_accuracy"] == 0.5
    table = {c["id"]: c for c in counts}
    for point, model in zip(scaling["points"], models):
        low = [p["correct"] for p in by_model[model] if p["setting"] == "closed_book"
               and table[p["id"]]["status"] == "ok" and table[p["id"]]["count"] < 10]
        assert point["n"] == len(low) and point["accuracy"] == pytest.approx(sum(low) / len(low))
    if scaling["slope"] is not None and scaling["points"][0]["accuracy"] != scaling["points"][1]["accuracy"]:
        for p in scaling["points"]:
            assert scaling["intercept"] + scaling["slope"] * math.log10(p["parameters"]) == \
                pytest.approx(p["accuracy"])
    assert "parameters): accuracy" in stdout
    assert "Scaling across model sizes" in (out / "report.html").read_text()


def test_run_needs_each_models_parameter_count_before_any_stage(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps({"model": {"path": [str(tmp_path / "a"), str(tmp_path / "b")]},
                                  "data": {"qa": "qa.jsonl", "corpus": "corpus.jsonl", "kb": "kb.jsonl"}}))
    result = subprocess.run([LTPROBE, "run", str(config), "--out", str(tmp_path / "run")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "cannot read its parameter count" in result.stderr and "model.params" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "qa.jsonl").exists()


@pytest.mark.slow
def test_shards_of_several_models_merge_into_the_whole_run(several, tmp_path):
    config, whole, _ = several
    shards = []
    for i in range(2):
        _run("run", str(config), "--out", str(tmp_path / f"shard{i}"), "--set", f"eval.shard={i}/2")
        shards.append(str(tmp_path / f"shard{i}"))
    _run("merge", *shards, "--out", str(tmp_path / "merged"))

    def keyed(run):
        return {(p["model"], p["id"], p["setting"]): (p["prompt"], p["completion"], p["correct"])
                for _, p in read_records(run / "predictions.jsonl")}

    assert keyed(tmp_path / "merged") == keyed(whole)
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    summary = json.loads((whole / "summary.json").read_text())
    for key in ("model", "settings", "models", "scaling"):
        assert merged[key] == summary[key], key
