"""The main job end to end (`ltprobe run` on configs/smoke.yaml) and the contract's outside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

LTPROBE = str(Path(sys.executable).parent / "ltprobe")

CONTRACT_COMMANDS = ["run", "world", "link-qa", "link-corpus", "index", "count", "eval", "rag",
                     "report", "generate", "bench"]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _ltprobe(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([LTPROBE, *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_contract_command():
    result = _ltprobe("--help")
    assert result.returncode == 0
    for name in CONTRACT_COMMANDS:
        assert f"    {name}" in result.stdout, name
    for name in CONTRACT_COMMANDS:
        sub = _ltprobe(name, "--help")
        assert sub.returncode == 0, (name, sub.stderr)
        assert "usage: ltprobe" in sub.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "missing.yaml", "--out", "{tmp}/r"], "missing.yaml: no such config file"),
    (["run", "--out", "{tmp}/r", "--set", "eval.shotz=2"], "unknown setting 'eval.shotz'"),
    (["run", "--out", "{tmp}/r", "--set", "eval.shots=many"], "setting 'eval.shots' must be int"),
    (["run", "--out", "{tmp}/r", "--set", "noequals"], "expected KEY.PATH=VALUE"),
])
def test_bad_config_is_one_line_without_traceback(tmp_path, args, message):
    result = _ltprobe(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_world_without_data_needs_qa_corpus_kb(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text("model: {path: some/model}\n")
    result = _ltprobe("run", str(config), "--out", str(tmp_path / "r"))
    assert result.returncode == 2
    assert "data.qa must be given" in result.stderr


@pytest.mark.slow
def test_smoke_run_writes_every_contract_file(small_run):
    for name in ["qa.jsonl", "qa_entities.jsonl", "counts.jsonl", "predictions.jsonl", "summary.json",
                 "report.html", "manifest.json", "world/corpus.jsonl", "world/kb.jsonl", "world/qa.jsonl",
                 "world/truth.jsonl", "model/config.json"]:
        assert (small_run / name).is_file(), name
    assert list((small_run / "plots").glob("*.png"))
    log = (small_run / "run.log").read_text()  # added to the contract's files: the job's messages
    for stage in ("world", "qa", "link-qa", "link-corpus", "index", "count", "eval", "summary", "report"):
        assert f" INFO probe.pipeline._stages: [{stage}] running: first run\n" in log, stage

    qa = _records(small_run / "qa.jsonl")
    ids = [r["id"] for r in qa]
    entities = _records(small_run / "qa_entities.jsonl")
    assert [r["id"] for r in entities] == ids
    assert all(isinstance(r["q_entities"], list) and isinstance(r["a_entities"], list) for r in entities)

    counts = _records(small_run / "counts.jsonl")
    assert [r["id"] for r in counts] == ids
    for c in counts:
        assert set(c) >= {"id", "count", "q_count", "a_count", "pair", "status"}
        assert c["status"] in ("ok", "no_q_entity", "no_a_entity")
        if c["status"] == "ok":
            assert c["count"] <= min(c["q_count"], c["a_count"]) and len(c["pair"]) == 2
    truth = {r["id"]: r["count"] for r in _records(small_run / "world" / "truth.jsonl")}
    equal = sum(c["count"] == truth[c["id"]] for c in counts)
    assert equal / len(counts) >= 0.95

    predictions = _records(small_run / "predictions.jsonl")
    assert {p["setting"] for p in predictions} == {"closed_book", "rag", "oracle"}
    for p in predictions:
        assert set(p) >= {"id", "setting", "model", "prompt", "completion", "correct"}
        assert isinstance(p["correct"], bool)
    rag = [p for p in predictions if p["setting"] == "rag"]
    assert all(p["prompt"].startswith("Passage: ") and p["prompt"].endswith("Answer:") for p in rag)

    summary = json.loads((small_run / "summary.json").read_text())
    assert summary["n_questions"] == len({p["id"] for p in predictions})
    assert summary["truth_agreement"]["share"] >= 0.95
    cd = summary["count_dependence"]  # issue 16: the sound statistic beside the contract's ratio
    assert set(cd) >= {"slope_difference", "slope_difference_ci", "reduction", "reduction_ci", "note"}
    assert (cd["reduction"] is None) == ("includes 0" in cd["note"] or "no closed-book slope" in cd["note"])
    for name in ("closed_book", "rag", "oracle"):
        s = summary["settings"][name]
        assert set(s) >= {"accuracy", "buckets", "slope_per_decade", "slope_ci", "spearman"}
        first = s["buckets"][0]
        assert (first["lo"], first["hi"]) == (0, 1)
        for b in s["buckets"][1:]:
            assert b["hi"] == 10 * b["lo"]
        assert sum(b["n"] for b in s["buckets"]) == s["n"]
    assert "count_dependence_reduction" in summary


@pytest.mark.slow
def test_second_run_repeats_no_work_and_writes_the_same_summary(small_run):
    summary = (small_run / "summary.json").read_text()
    weights = next((small_run / "model").glob("*.safetensors"))
    mtime = weights.stat().st_mtime_ns
    (small_run / "summary.json").unlink()  # the summary is recomputed from the stage outputs
    result = _ltprobe("run", str(REPO / "configs" / "smoke.yaml"), "--out", str(small_run))
    assert result.returncode == 0, result.stderr[-2000:]
    for stage in ("world", "link-qa", "link-corpus", "index", "count", "eval", "report"):
        assert f"[{stage}] done already" in result.stderr, stage
    assert result.stdout.startswith(f"report: {small_run / 'report.html'}\nquestions: ")  # the result, on stdout
    assert result.stderr.startswith("[world] done already")  # the stage messages, plain
    assert weights.stat().st_mtime_ns == mtime
    assert (small_run / "summary.json").read_text() == summary


@pytest.mark.slow
def test_sharded_evaluation_merges_into_the_unsharded_run(small_run, tmp_path):
    shards = []
    for i in range(2):
        out = tmp_path / f"shard{i}"
        result = _ltprobe("run", str(REPO / "configs" / "smoke.yaml"), "--out", str(out),
                          "--set", "model.train=null", "--set", f"model.path={small_run / 'model'}",
                          "--set", f"eval.shard={i}/2", timeout=1200)
        assert result.returncode == 0, result.stderr[-2000:]
        assert not (out / "summary.json").exists()
        shards.append(str(out))
    merged = tmp_path / "merged"
    result = _ltprobe("merge", *shards, "--out", str(merged))
    assert result.returncode == 0, result.stderr[-2000:]

    def keyed(path):
        return {(p["id"], p["setting"]): (p["prompt"], p["completion"], p["correct"]) for p in _records(path)}

    assert keyed(merged / "predictions.jsonl") == keyed(small_run / "predictions.jsonl")
    whole = json.loads((small_run / "summary.json").read_text())
    joined = json.loads((merged / "summary.json").read_text())
    assert joined["settings"] == whole["settings"]
    assert (merged / "report.html").exists()
    assert f"INFO ltprobe: ltprobe merge {' '.join(shards)} into {merged}" in (merged / "run.log").read_text()

    again = _ltprobe("merge", shards[0], "--out", str(tmp_path / "half"))
    assert again.returncode == 2 and "do not cover" in again.stderr


@pytest.mark.slow
def test_counterfactual_removes_relevant_documents_and_retrains(small_run):
    result = _ltprobe("counterfactual", "--run", str(small_run), "--per-bucket", "4", "--control", "4",
                      timeout=1200)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"INFO ltprobe: ltprobe counterfactual on {small_run}" in (small_run / "run.log").read_text()
    cf = json.loads((small_run / "counterfactual.json").read_text())
    counts = {c["id"]: c for c in _records(small_run / "counts.jsonl")}
    before = {p["id"]: p["correct"] for p in _records(small_run / "predictions.jsonl")
              if p["setting"] == "closed_book"}
    after = {p["id"]: p["correct"] for p in _records(small_run / "counterfactual" / "predictions.jsonl")}
    from entity_linking import iter_linked

    removed = set((small_run / "counterfactual" / "removed_docs.txt").read_text().split())
    # the documents as the index sees them: their linked entities
    corpus = [{"id": doc_id, "entities": entities} for doc_id, entities in iter_linked(small_run / "linked")]
    kept = {r["id"] for r in corpus} - removed
    assert cf["docs_removed"] == len(removed) > 0 and removed < {r["id"] for r in corpus}
    # retrained on the run's own rows less the removed documents: same tokenizer, same row count
    original = json.loads((small_run / "model" / "ltprobe_train.json").read_text())
    retrained = json.loads((small_run / "counterfactual" / "model" / "ltprobe_train.json").read_text())
    assert retrained["dropped"] == len(removed) and retrained["rows"] == original["rows"]
    assert retrained["config"] == original["config"] and retrained["tokens_seen"] <= original["tokens_seen"]
    assert ((small_run / "counterfactual" / "model" / "tokenizer.json").read_text()
            == (small_run / "model" / "tokenizer.json").read_text())

    for bucket, ids in zip(cf["buckets"], cf["sampled"].values()):
        assert bucket["n"] == len(ids) <= 4
        for qid in ids:
            lo, hi = bucket["lo"], bucket["hi"]
            assert lo <= counts[qid]["count"] < hi
            q, a = counts[qid]["pair"]
            # every document that mentions both entities of a sampled question is gone
            assert not any(q in r["entities"] and a in r["entities"] for r in corpus if r["id"] in kept)
        if ids:
            assert bucket["before"] == pytest.approx(sum(before[i] for i in ids) / len(ids))
            assert bucket["after"] == pytest.approx(sum(after[i] for i in ids) / len(ids))
            assert bucket["drop"] == pytest.approx(bucket["before"] - bucket["after"])
            assert bucket["drop_ci"][0] <= bucket["drop"] <= bucket["drop_ci"][1]
    assert cf["buckets"][0]["lo"] == 0 and cf["buckets"][0]["docs_removed"] == 0
    for qid in cf["control_ids"]:
        q, a = counts[qid]["pair"]
        both = [r["id"] for r in corpus if q in r["entities"] and a in r["entities"]]
        assert both and all(d in kept for d in both)
    assert cf["control"]["n"] == len(cf["control_ids"]) > 0
    # matched by count bucket: at most --control questions from each bucket with documents
    from collections import Counter

    from probe.analysis import bucket_of

    per_bucket = Counter(bucket_of(counts[q]["count"]) for q in cf["control_ids"])
    assert max(per_bucket.values()) <= 4 and all(lo > 0 for lo, _ in per_bucket)
    assert "ounterfactual" in (small_run / "report.html").read_text()


@pytest.mark.slow
def test_demo_criteria_script_reads_a_run(small_run, tmp_path):
    # The smoke model learns little: the script says which criterion it misses and exits 1; the
    # counts of a generated world are exact.
    script = str(REPO / "scripts" / "check_demo_criteria.py")
    result = subprocess.run([sys.executable, script, str(small_run)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout.rstrip().endswith("FAIL"), result.stdout + result.stderr
    n = len((small_run / "counts.jsonl").read_text().splitlines())
    assert f"counts exact {n}/{n}" in result.stdout
    # A run whose closed-book figures meet the criteria passes (the summary edited to a good model's).
    good = tmp_path / "good"
    good.mkdir()
    for name in ("counts.jsonl", "world"):
        (good / name).symlink_to(small_run / name)
    summary = json.loads((small_run / "summary.json").read_text())
    closed, rag = summary["settings"]["closed_book"], summary["settings"]["rag"]
    closed["slope_ci"] = [0.3, 0.5]
    closed["buckets"] = [{"lo": 100, "hi": 1000, "n": 30, "accuracy": 0.97, "ci": [0.9, 1.0]}]
    rag["buckets"] = [{"lo": 0, "hi": 1, "n": 40, "accuracy": 0.6, "ci": [0.4, 0.7]}]
    (good / "summary.json").write_text(json.dumps(summary))
    result = subprocess.run([sys.executable, script, str(good)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "accuracy on 100+ 0.97 (n 30)" in result.stdout, result.stdout


def test_a_prompt_format_the_qa_set_cannot_serve_is_refused_before_linking(tiny_world, tmp_path):
    # The demo's cloze format on a QA set without the `cloze` field (any set but a generated world's).
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "cloze"}) + "\n"
                          for r in _records(tiny_world / "qa.jsonl")))
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps({"model": {"path": str(tmp_path / "model")},
                                  "data": {"qa": str(qa), "corpus": str(tiny_world / "corpus.jsonl"),
                                           "kb": str(tiny_world / "kb.jsonl")},
                                  "eval": {"settings": ["closed_book"], "prompt_format": "cloze"}}))
    result = _ltprobe("run", str(config), "--out", str(tmp_path / "run"), timeout=300)
    assert result.returncode == 2, result.stderr
    assert "'cloze' field" in result.stderr and "generated worlds write it" in result.stderr
    assert not (tmp_path / "run" / "qa_entities.jsonl").exists() and not (tmp_path / "run" / "linked").exists()
    # A retrieval setting needs a format with passages: cloze has none.
    config.write_text(config.read_text().replace('"settings": ["closed_book"]', '"settings": ["closed_book", "rag"]'))
    result = _ltprobe("run", str(config), "--out", str(tmp_path / "run2"),
                      "--set", f"data.qa={tiny_world / 'qa.jsonl'}", timeout=300)
    assert result.returncode == 2 and "needs a prompt format with passages" in result.stderr, result.stderr
    assert not (tmp_path / "run2" / "qa_entities.jsonl").exists()
