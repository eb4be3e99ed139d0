"""Checkpoints of one training evaluated in one job (issue 19): `ltprobe run` with
`model.train.save_steps` and `learning.checkpoints` on the tiny world writes counts by step,
`learning` per checkpoint, `error_attribution`, and the gold log-probability slopes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from entity_linking.io import InputError, read_records
from tests.paths import REPO

LTPROBE = str(Path(sys.executable).parent / "ltprobe")


@pytest.fixture(scope="module")
def learning_run(tiny_world_settings, tiny_train_settings, tmp_path_factory):
    base = tmp_path_factory.mktemp("learning_run")
    config = base / "job.yaml"
    # transformers: a vLLM engine per checkpoint takes minutes on a small CPU; the loop is the same.
    config.write_text(json.dumps({
        "world": tiny_world_settings,
        "model": {"train": {**tiny_train_settings, "steps": 20, "save_steps": [5, 10]}, "backend": "transformers"},
        "linking": {"workers": 1},
        "eval": {"settings": ["closed_book"], "shots": 2, "max_tokens": 8, "gold_logprob": True},
        "analysis": {"min_bucket": 5, "n_boot": 50, "error_attribution": True},
        "learning": {"checkpoints": True},
    }))
    result = subprocess.run([LTPROBE, "run", str(config), "--out", str(base / "run")], capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    (base / "run" / "headline.txt").write_text(result.stdout)
    return base / "run"


@pytest.mark.slow
def test_run_evaluates_checkpoints_and_writes_learning(learning_run):
    out = learning_run
    summary = json.loads((out / "summary.json").read_text())
    predictions = [r for _, r in read_records(out / "predictions.jsonl")]
    models = list(dict.fromkeys(p["model"] for p in predictions))
    assert models == [str(out / "model"), str(out / "model" / "checkpoints" / "step-5"),
                      str(out / "model" / "checkpoints" / "step-10")]
    learning = summary["learning"]
    assert summary["scaling"] is None  # checkpoints of one model have one size
    assert [c["step"] for c in learning["checkpoints"]] == [5, 10, 20]
    # documents seen grow with the step, per question
    by_step = {r["id"]: r for _, r in read_records(out / "counts_by_step.jsonl")}
    assert all(r["steps"] == [5, 10, 20] for r in by_step.values())
    ok = [r for r in by_step.values() if r["seen"] is not None]
    assert ok and all(r["seen"][0] <= r["seen"][1] <= r["seen"][2] <= r["count"] for r in ok)
    for c in learning["checkpoints"]:
        assert sum(b["n"] for b in c["buckets"]) == c["n"] > 0
        assert all(b["ci"] is None or 0 <= b["ci"][0] <= b["ci"][1] <= 1 for b in c["buckets"])
        assert "count_at_half" in c
        # each checkpoint's buckets are its own seen counts: recompute one
        preds = {p["id"]: p for p in predictions if p["model"] == c["model"]}
        zero = [preds[i]["correct"] for i, r in by_step.items() if r["seen"] is not None and i in preds
                and r["seen"][r["steps"].index(c["step"])] == 0]
        assert c["buckets"][0]["n"] == len(zero) and c["buckets"][0]["correct"] == sum(zero)

    # gold log-probability in every prediction, its slope beside the accuracy slope
    assert all(isinstance(p["gold_logprob"], float) and p["gold_logprob"] < 0 for p in predictions)
    closed = summary["settings"]["closed_book"]
    assert isinstance(closed["gold_logprob_slope"], float) and len(closed["gold_logprob_slope_ci"]) == 2
    assert closed["gold_logprob_slope_ci"][0] <= closed["gold_logprob_slope"] <= closed["gold_logprob_slope_ci"][1]

    # error attribution over the primary model's wrong answers
    errors = [r for _, r in read_records(out / "errors.jsonl")]
    wrong = [p for p in predictions if p["model"] == str(out / "model") and not p["correct"]]
    assert len(errors) == len(wrong)
    attribution = summary["error_attribution"]["settings"]["closed_book"]
    assert attribution["n_errors"] == len(wrong)
    assert sum(attribution["status"].values()) == len(wrong)

    # and equal a brute-force count over the training order and the world's gold links
    check = subprocess.run([sys.executable, str(REPO / "scripts" / "check_counts_by_step.py"), str(out)],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0 and json.loads(check.stdout)["checked"] > 0, check.stdout + check.stderr

    # the headline names each
    headline = (out / "headline.txt").read_text()
    assert "learning (closed_book accuracy by checkpoint): step 5 " in headline and ", step 20 " in headline
    assert "closed_book: gold-answer log-probability slope per decade " in headline

    # the report shows the learning curve
    html = (out / "report.html").read_text()
    assert "Learning curve" in html and "Error attribution" in html
    assert (out / "plots" / "learning_curve.png").exists()


def test_revisions_and_steps(tmp_path):
    from probe.analysis import model_step, split_revision

    assert split_revision("EleutherAI/pythia-160m@step3000") == ("EleutherAI/pythia-160m", "step3000")
    assert split_revision("gpt2") == ("gpt2", None)
    assert model_step("EleutherAI/pythia-160m@step3000") == 3000
    assert model_step("allenai/OLMo-1B@step20000-tokens84B") is None  # no step at the end: unknown
    folder = tmp_path / "odd@name"
    folder.mkdir()
    assert split_revision(str(folder)) == (str(folder), None)  # a local path with @ stays a path
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "ltprobe_checkpoint.json").write_text('{"step": 7}')
    assert model_step(str(ckpt)) == 7
    assert model_step(str(tmp_path / "runs" / "step-40")) == 40
    with pytest.raises(InputError, match="NAME@REVISION"):
        split_revision("name@")


def test_learning_summary_by_seen_counts():
    from probe.analysis._learning import learning_summary

    # step 10: q1 seen 0 (wrong), q2 seen 5 (right); step 20: both seen 50, both right
    seen = {"q1": {10: 0, 20: 50}, "q2": {10: 5, 20: 50}}
    predictions = [{"id": "q1", "setting": "closed_book", "model": "a", "correct": False},
                   {"id": "q2", "setting": "closed_book", "model": "a", "correct": True},
                   {"id": "q1", "setting": "closed_book", "model": "b", "correct": True},
                   {"id": "q2", "setting": "closed_book", "model": "b", "correct": True},
                   {"id": "q1", "setting": "closed_book", "model": "c", "correct": True}]
    result = learning_summary(predictions, seen, {"a": 10, "b": 20, "c": None}, min_bucket=1)
    a, b = result["checkpoints"]
    assert (a["step"], b["step"]) == (10, 20)
    assert [(x["lo"], x["n"], x["correct"]) for x in a["buckets"]] == [(0, 1, 0), (1, 1, 1), (10, 0, 0)]
    assert [(x["lo"], x["n"], x["correct"]) for x in b["buckets"]] == [(0, 0, 0), (1, 0, 0), (10, 2, 2)]
    assert a["count_at_half"] is not None and 0 < a["count_at_half"] < 5
    assert learning_summary(predictions, seen, {"a": None}) is None


def test_checkpoints_beyond_the_training_are_refused_before_it(tiny_world_settings, tiny_train_settings, tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps({
        "world": tiny_world_settings,
        "model": {"train": {**tiny_train_settings, "steps": 20, "save_steps": [20, 40]}, "backend": "transformers"},
        "learning": {"checkpoints": True},
    }))
    result = subprocess.run([LTPROBE, "run", str(config), "--out", str(tmp_path / "run")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "learning.checkpoints needs model.train.save_steps below model.train.steps (20)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "model").exists()
