"""probe.load_run: a run folder as DataFrames, on a synthetic run with known numbers."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest

import probe
from entity_linking.io import InputError
from probe.analysis import bucket_label, bucket_of


def test_bucket_of_are_decades_with_zero_first():
    assert bucket_of(0) == (0, 1)
    assert bucket_of(1) == (1, 10)
    assert bucket_of(9) == (1, 10)
    assert bucket_of(10) == (10, 100)
    assert bucket_of(999) == (100, 1000)
    assert bucket_of(1000) == (1000, 10000)
    assert bucket_of(None) is None
    assert bucket_of(math.nan) is None
    assert [bucket_label(*b) for b in [(0, 1), (1, 10), (100, 1000), (10**5, 10**6)]] == \
        ["0", "1-9", "100-999", "1e5-1e6"]


def test_frames_match_the_files(synthetic_run):
    run = probe.load_run(synthetic_run)
    qa = [json.loads(line) for line in (synthetic_run / "qa.jsonl").read_text().splitlines()]
    counts = {r["id"]: r for r in map(json.loads, (synthetic_run / "counts.jsonl").read_text().splitlines())}
    preds = [json.loads(line) for line in (synthetic_run / "predictions.jsonl").read_text().splitlines()]
    assert len(run.questions) == len(qa) == len(run.entities) == len(run.counts)
    assert len(run.predictions) == len(preds)
    assert run.model == "tiny-llama"
    assert run.models == ["tiny-llama", "tiny-llama-small"]
    assert run.settings == ["closed_book", "rag", "oracle"]
    assert run.summary["n_questions"] == len(qa)
    assert run.manifest["git_commit"] == "0123456789abcdef"
    assert run.counterfactual is not None and run.statements is None  # statements live in generation/

    joined = run.joined.set_index("id")
    assert len(joined) == len(qa)
    for qid in ("q0", "q5", "q39", "q100"):
        c = counts[qid]["count"]
        assert (pd.isna(joined.loc[qid, "count"]) if c is None else joined.loc[qid, "count"] == c)
        if c is None:  # unlinked: no bucket, and no prediction in this synthetic run
            assert pd.isna(joined.loc[qid, "bucket"]) and pd.isna(joined.loc[qid, "closed_book"])
            continue
        assert joined.loc[qid, "bucket"] == bucket_label(*bucket_of(c))
        for setting in ("closed_book", "rag", "oracle"):
            truth = [p["correct"] for p in preds
                     if p["id"] == qid and p["setting"] == setting and p["model"] == "tiny-llama"]
            assert bool(joined.loc[qid, setting]) == truth[0]
    assert joined.loc["q39", "status"] == "no_q_entity"
    assert "relation" in joined  # extra qa.jsonl fields come along


def test_joined_accuracy_reproduces_summary_buckets(synthetic_run):
    run = probe.load_run(synthetic_run)
    joined = run.joined.dropna(subset=["count"])
    by_bucket = joined.groupby("bucket_lo")["closed_book"].agg(["mean", "size"])
    buckets = run.buckets("closed_book")
    assert list(buckets["lo"]) == list(by_bucket.index)
    assert list(buckets["n"]) == list(by_bucket["size"])
    assert buckets["accuracy"].tolist() == pytest.approx(by_bucket["mean"].tolist())
    assert (buckets["ci_low"] <= buckets["accuracy"]).all() and (buckets["accuracy"] <= buckets["ci_high"]).all()


def test_scored_has_every_model_and_recall_frame(synthetic_run):
    run = probe.load_run(synthetic_run)
    scored = run.scored
    assert set(scored["model"]) == {"tiny-llama", "tiny-llama-small"}
    assert {"count", "bucket", "correct"} <= set(scored.columns)
    recall = run.recall_at_k()
    assert sorted(recall["k"].unique()) == [1, 3, 5, 10, 20]
    written = run.summary["retrieval"]["recall_at_k"]  # per bucket, as `ltprobe rag` writes it
    part = recall[recall["k"] == 3]
    assert part["lo"].tolist() == [b["lo"] for b in written["buckets"]]
    assert part["recall"].tolist() == pytest.approx([b["recall"]["3"] for b in written["buckets"]], nan_ok=True)
    assert part["overall"].iloc[0] == pytest.approx(written["overall"]["3"])


def test_generation_folder_loads_statements(synthetic_run):
    gen = probe.load_run(synthetic_run / "generation")
    assert len(gen.statements) == 100
    assert set(gen.statements["beam"]) == {"head", "tail"}
    assert gen.generation_summary["rules"]["allergy"]["loglik"]["gap"] > 0.5
    assert gen.questions.empty and gen.summary == {}
    assert gen.plot_link() is not None


def test_partial_run_loads_with_empty_frames(tmp_path, synthetic_run):
    shutil.copy(synthetic_run / "qa.jsonl", tmp_path / "qa.jsonl")
    shutil.copy(synthetic_run / "counts.jsonl", tmp_path / "counts.jsonl")
    run = probe.load_run(tmp_path)
    assert run.predictions.empty and run.summary == {} and run.manifest == {}
    assert run.settings == [] and run.model is None
    joined = run.joined
    assert len(joined) == len(run.questions)
    assert not {"closed_book", "rag"} & set(joined.columns)
    assert run.buckets("closed_book").empty and run.recall_at_k().empty
    assert run.headline() == ["This run has no accuracy results yet (summary.json has no settings)."]


def test_bad_folders_and_records_are_user_errors(tmp_path, synthetic_run):
    with pytest.raises(InputError, match="no such run folder"):
        probe.load_run(tmp_path / "missing")
    with pytest.raises(InputError, match="not a run folder"):
        probe.load_run(tmp_path)
    run_dir = tmp_path / "run"
    shutil.copytree(synthetic_run, run_dir)
    lines = (run_dir / "counts.jsonl").read_text().splitlines()
    lines[2] = '{"id": "q2", "count": 3'  # truncated JSON on line 3
    (run_dir / "counts.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"counts\.jsonl:3: broken JSON"):
        probe.load_run(run_dir)
    run = probe.load_run(run_dir, on_error="skip")
    assert run.skipped.skipped == 1 and len(run.counts) == len(lines) - 1
    text = probe.write_report(run_dir, on_error="skip").read_text()
    assert "1 bad record(s) in the run's files were skipped" in text and "counts.jsonl:3" in text
    with pytest.raises(InputError, match=r"counts\.jsonl:3"):
        probe.write_report(run_dir)
    (run_dir / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match=r"summary\.json:1: broken JSON"):
        probe.load_run(run_dir, on_error="skip")
