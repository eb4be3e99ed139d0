"""`ltprobe eval` with several models: per-model results and the scaling analysis across sizes,
with two real tiny models of different sizes (`tiny_model` and `tiny_model_small`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from entity_linking.io import read_records, write_jsonl
from tests.probe.cli.test_cli import ltprobe


@pytest.fixture(scope="module")
def counts_file(tiny_world, tmp_path_factory) -> Path:
    """The world's true counts as a counts.jsonl, one question left unlinked."""
    counts = [{"id": r["id"], "count": r["count"], "status": "ok"} for _, r in read_records(tiny_world / "truth.jsonl")]
    counts[0] = {"id": counts[0]["id"], "count": None, "status": "no_a_entity"}
    path = tmp_path_factory.mktemp("scaling_counts") / "counts.jsonl"
    write_jsonl(path, counts)
    return path


def _parameters(model_dir: Path) -> int:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir).num_parameters()


def _eval(tiny_world, counts_file, out, *models, extra=()):
    # transformers: two vLLM engines, one per model, would take minutes to start on a small CPU
    # (the loop over models is the same for every backend).
    args = ["eval", "--qa", str(tiny_world / "qa.jsonl"), "--backend", "transformers", "--counts", str(counts_file),
            "--shots", "2", "--n-boot", "100", "--quiet", "--out", str(out), *extra]
    for model in models:
        args += ["--model", str(model)]
    result = ltprobe(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _check_scaling_summary(summary, predictions, counts_file, models, sizes):
    """Per-model results and the scaling fit, recomputed from predictions.jsonl."""
    counts = {r["id"]: r for _, r in read_records(counts_file)}
    assert [m["model"] for m in summary["models"]] == [str(m) for m in models]
    assert [m["parameters"] for m in summary["models"]] == sizes
    scaling = summary["scaling"]
    assert scaling["setting"] == "closed_book" and scaling["max_count"] == 100 and scaling["target_accuracy"] == 0.5
    for entry, point, model in zip(summary["models"], scaling["points"], models):
        rows = [p for p in predictions if p["model"] == str(model)]
        assert entry["n_questions"] == len(rows) and entry["settings"]["closed_book"]["n"] == len(rows)
        assert entry["settings"]["closed_book"]["accuracy"] == pytest.approx(sum(p["correct"] for p in rows) / len(rows))
        low = [p["correct"] for p in rows if counts[p["id"]]["status"] == "ok" and counts[p["id"]]["count"] < 100]
        assert point["model"] == str(model) and point["parameters"] == entry["parameters"]
        assert point["n"] == len(low) and point["accuracy"] == pytest.approx(sum(low) / len(low))
    (big, small) = scaling["points"]
    if big["accuracy"] == small["accuracy"]:
        assert scaling["slope"] == 0.0 or scaling["slope"] == pytest.approx(0.0, abs=1e-12)
        assert scaling["r2"] is None and scaling["parameters_for_target"] is None
    else:  # two points lie on their line
        for p in (big, small):
            fitted = scaling["intercept"] + scaling["slope"] * math.log10(p["parameters"])
            assert fitted == pytest.approx(p["accuracy"])
        assert scaling["r2"] == pytest.approx(1.0)


@pytest.mark.slow
def test_several_models_give_per_model_results_and_scaling(tiny_world, tiny_model, tiny_model_small, counts_file,
                                                           tmp_path):
    sizes = [float(_parameters(tiny_model)), float(_parameters(tiny_model_small))]
    assert sizes[0] > 2 * sizes[1]
    _eval(tiny_world, counts_file, tmp_path / "one", tiny_model)
    single = json.loads((tmp_path / "one" / "summary.json").read_text())
    result = _eval(tiny_world, counts_file, tmp_path / "two", tiny_model, tiny_model_small,
                   extra=["--target-accuracy", "0.5"])
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    predictions = [r for _, r in read_records(tmp_path / "two" / "predictions.jsonl")]
    assert {p["model"] for p in predictions} == {str(tiny_model), str(tiny_model_small)}
    assert len(predictions) == 2 * single["n_questions"]
    # The contract's keys describe the first model exactly as a single-model job does.
    assert summary["model"] == single["model"] == str(tiny_model)
    for key in ("n_questions", "settings", "count_dependence_reduction", "n_unlinked"):
        assert summary[key] == single[key], key
    assert "models" not in single and "scaling" not in single
    # Parameter counts were read from the model folders' safetensors headers.
    _check_scaling_summary(summary, predictions, counts_file, [tiny_model, tiny_model_small], sizes)
    assert f"{tiny_model_small}: closed_book: accuracy" in result.stdout and "scaling (closed_book" in result.stdout
    # The report renders the scaling section from this summary.
    from probe.report import write_report

    write_report(tmp_path / "two")
    assert "Scaling across model sizes" in (tmp_path / "two" / "report.html").read_text()


def test_parameter_counts_are_checked_before_any_model_loads(tiny_world, counts_file, tmp_path):
    qa = str(tiny_world / "qa.jsonl")
    common = ["eval", "--qa", qa, "--counts", str(counts_file), "--backend", "transformers", "--out", str(tmp_path)]
    for extra, message in [
        (["--model", str(tmp_path / "a"), str(tmp_path / "b")], "cannot read its parameter count"),
        (["--model", "a", "b", "--params", "c=1e6"], "parameter count given for 'c'"),
        (["--model", "a", "b", "--params", "a=big"], "--params 'a=big': expected MODEL=N"),
    ]:
        result = ltprobe(*common, *extra)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


def test_parameter_count_from_safetensors_headers(tmp_path):
    import torch
    from safetensors.torch import save_file

    from probe.pipeline import parameter_count

    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5)}, tmp_path / "model.safetensors")
    assert parameter_count(str(tmp_path)) == 17
    (tmp_path / "model.safetensors").rename(tmp_path / "model-00001-of-00002.safetensors")
    save_file({"c": torch.zeros(2, 2, 2)}, tmp_path / "model-00002-of-00002.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
        "c": "model-00002-of-00002.safetensors"}}))
    assert parameter_count(str(tmp_path)) == 25
    assert parameter_count(str(tmp_path / "missing")) is None
    from probe.pipeline import model_parameters

    assert model_parameters([str(tmp_path), "served-name"], {"served-name": 1e9}) == \
        {str(tmp_path): 25.0, "served-name": 1e9}
