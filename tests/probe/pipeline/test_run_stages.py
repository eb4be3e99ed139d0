"""Fingerprinted stages of `ltprobe run`, shared work across jobs, and a multi-format corpus
folder, on configs/smoke.yaml's world evaluated with the transformers backend (seconds per
evaluation). Heavy: run under `flock /tmp/ltprobe-heavy.lock` on a shared machine."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from entity_linking.io import InputError
from tests.paths import REPO

SMOKE = REPO / "configs" / "smoke.yaml"
FAST = ["model.backend=transformers", "model.options={}", "data.limit=24", "eval.settings=[closed_book,rag]"]
"""The smoke job with the transformers backend (no vLLM engine to start), on 24 questions, closed-book
and with retrieval (which reads the index and the counts)."""

pytestmark = pytest.mark.slow


def run_job(out: Path, capsys, *overrides: str, force: tuple[str, ...] = ()) -> dict[str, str]:
    """Run the smoke job into `out`; return what each stage did: "ran" or "skipped" (also "given",
    "not needed"), and the reason logged for each stage that ran, as this run appended them to
    `out/run.log` (under "_log"); "_out": what it printed on stdout (the headline)."""
    from probe.pipeline import load_config, run

    log = out / "run.log"
    start = log.stat().st_size if log.exists() else 0
    capsys.readouterr()
    run(load_config(SMOKE, [*FAST, *overrides]), out, force=list(force))
    appended = log.read_bytes()[start:].decode("utf-8")
    did = {}
    for stage, what in re.findall(r" INFO probe\.pipeline\._stages: \[([a-z-]+)\] (done already|running|given|not needed)",
                                  appended):
        did[stage] = {"done already": "skipped", "running": "ran"}.get(what, what)
    did["_log"] = appended
    did["_out"] = capsys.readouterr().out
    return did


def ran(did: dict[str, str]) -> set[str]:
    return {stage for stage, what in did.items() if what == "ran"}


def files_state(run: Path) -> dict[str, tuple[int, bytes]]:
    """Modification time and bytes of the outputs that must stay untouched."""
    paths = [run / "qa_entities.jsonl", run / "counts.jsonl",
             *sorted(p for p in (run / "linked").rglob("*") if p.is_file()),
             *sorted(p for p in (run / "index").rglob("*") if p.is_file())]
    return {str(p.relative_to(run)): (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from probe.pipeline import load_config, run

    out = tmp_path_factory.mktemp("stages") / "base"
    run(load_config(SMOKE, FAST), out, quiet=True)
    return out


@pytest.fixture()
def job(base, tmp_path) -> Path:
    """A copy of the base run (times kept; fingerprints name files inside the run relative to it)."""
    return Path(shutil.copytree(base, tmp_path / "run"))


def test_unchanged_rerun_repeats_nothing(job, capsys):
    before = files_state(job)
    did = run_job(job, capsys)
    assert ran(did) == set(), did["_log"][-2000:]
    assert did["_out"].startswith(f"report: {job / 'report.html'}\nquestions: ")  # the headline, on stdout
    assert {s for s, w in did.items() if w == "skipped"} >= {"world", "qa", "link-qa", "link-corpus", "index",
                                                            "count", "eval", "summary", "report"}
    assert files_state(job) == before
    stages = json.loads((job / "manifest.json").read_text())["stages"]
    assert all(stages[s]["status"] == "done" for s in stages)


def test_changing_shots_recomputes_evaluation_summary_and_report_only(job, capsys):
    before = files_state(job)
    predictions = (job / "predictions.jsonl").stat().st_mtime_ns
    did = run_job(job, capsys, "eval.shots=1")
    assert ran(did) == {"eval", "summary", "report"}
    assert "[eval] running: setting eval.shots changed (3 -> 1)" in did["_log"]
    assert "[summary] running: eval was recomputed" in did["_log"]
    assert files_state(job) == before  # qa_entities.jsonl, counts.jsonl, linked/, index/ untouched
    assert (job / "predictions.jsonl").stat().st_mtime_ns != predictions
    manifest = json.loads((job / "manifest.json").read_text())
    assert manifest["stages"]["eval"]["settings"]["eval"]["shots"] == 1
    assert manifest["stages"]["link-corpus"]["settings"]["data.text_field"] == "text"
    # and once more with the same change: nothing
    assert ran(run_job(job, capsys, "eval.shots=1")) == set()


def test_changing_the_knowledge_base_recomputes_linking_onward(job, tmp_path, capsys):
    # the world's knowledge base less the answer entity of the first QA pair with a count
    first = next(c for c in map(json.loads, (job / "counts.jsonl").read_text().splitlines()) if c["status"] == "ok")
    kb = tmp_path / "kb.jsonl"
    kb.write_text("".join(line + "\n" for line in (job / "world" / "kb.jsonl").read_text().splitlines()
                          if json.loads(line)["id"] != first["pair"][1]))
    did = run_job(job, capsys, f"data.kb={kb}")
    assert ran(did) == {"link-qa", "link-corpus", "index", "count", "eval", "summary", "report"}
    assert did["world"] == did["qa"] == "skipped"
    assert "[link-corpus] running: input kb changed" in did["_log"]
    assert "[index] running: link-corpus was recomputed" in did["_log"]


def test_force_redoes_a_stage_and_those_its_result_reaches(job, capsys):
    counts = (job / "counts.jsonl").read_bytes()
    did = run_job(job, capsys, force=("count",))
    # the same counts again: nothing after them is recomputed
    assert ran(did) == {"count"}
    assert "[count] running: forced (--force count)" in did["_log"]
    assert (job / "counts.jsonl").read_bytes() == counts
    # a new linked folder and so a new index, which retrieval reads: evaluation again
    did = run_job(job, capsys, force=("link-corpus",))
    assert {"link-corpus", "index", "count", "eval"} <= ran(did) <= {"link-corpus", "index", "count", "eval",
                                                                     "summary", "report"}
    assert "[eval] running: index was recomputed" in did["_log"]
    (job / "summary.json").unlink()  # written again with the same bytes: the report stays
    did = run_job(job, capsys, force=("eval",))
    assert ran(did) == {"eval", "summary"}
    from entity_linking import InputError

    with pytest.raises(InputError, match="--force counts: no such stage"):
        run_job(job, capsys, force=("counts",))


def test_second_job_shares_index_and_qa_entities(base, tmp_path, capsys):
    second = tmp_path / "second"
    did = run_job(second, capsys, "model.train=null", f"model.path={base / 'model'}",
                  f"index.path={base / 'index'}", f"data.qa_entities={base / 'qa_entities.jsonl'}")
    assert not (second / "linked").exists() and not (second / "index").exists()
    assert did["link-corpus"] == "not needed" and did["index"] == "given"
    assert (second / "counts.jsonl").read_bytes() == (base / "counts.jsonl").read_bytes()
    assert (second / "summary.json").exists()
    stages = json.loads((second / "manifest.json").read_text())["stages"]
    assert stages["index"]["status"] == "given" and stages["index"]["path"] == str((base / "index" / "index.json").resolve())
    # a shared linked folder: no linking here, an index of its own, the same counts
    third = tmp_path / "third"
    did = run_job(third, capsys, "model.train=null", f"model.path={base / 'model'}",
                  f"data.linked={base / 'linked'}", "eval.settings=[closed_book]")
    assert not (third / "linked").exists() and (third / "index" / "index.json").exists()
    assert did["link-corpus"] == "given" and did["index"] == "ran"
    assert (third / "counts.jsonl").read_bytes() == (base / "counts.jsonl").read_bytes()


def test_run_on_a_folder_of_mixed_shards_counts_as_one_file(base, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    records = [json.loads(line) for line in (base / "world" / "corpus.jsonl").read_text().splitlines()]
    third = len(records) // 3
    folder = tmp_path / "corpus"
    (folder / "b").mkdir(parents=True)
    lines = lambda rs: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rs).encode()  # noqa: E731
    (folder / "a-00.jsonl.gz").write_bytes(gzip.compress(lines(records[:third])))
    (folder / "a-01.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines(records[third:2 * third])))
    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in records[2 * third:]]),
                   folder / "b" / "02.parquet")
    out = tmp_path / "mixed"
    result = subprocess.run([sys.executable, "-m", "probe.cli", "run", str(SMOKE), "--out", str(out),
                             *[a for o in FAST for a in ("--set", o)], "--set", "model.train=null",
                             "--set", f"model.path={base / 'model'}", "--set", f"data.corpus={folder}"],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "counts.jsonl").read_bytes() == (base / "counts.jsonl").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    parts = manifest["stages"]["link-corpus"]["inputs"]["corpus"]
    assert [p["name"] for p in parts] == ["a-00.jsonl.gz", "a-01.jsonl.zst", "b/02.parquet"]


def test_infini_gram_index_counts_alias_phrases_in_a_run(base, tmp_path, capsys):
    """`index.backend: infini-gram` with `index.path`: no linking or indexing, the counts are the
    alias-phrase counts `ltprobe count --infini-gram` gives, closed-book evaluation."""
    from indexes.infinigram import build_infinigram_index
    from probe.cli import main

    ig = build_infinigram_index(base / "world" / "corpus.jsonl", tmp_path / "ig")
    out = tmp_path / "job"
    did = run_job(out, capsys, "eval.settings=[closed_book]", "index.backend=infini-gram", f"index.path={ig}")
    assert did["index"] == "given" and did["link-corpus"] == "not needed" and did["count"] == "ran"
    assert not (out / "linked").exists() and not (out / "index").exists()
    assert main(["count", "--infini-gram", str(ig), "--kb", str(base / "world" / "kb.jsonl"),
                 "--qa-entities", str(out / "qa_entities.jsonl"), "--out", str(tmp_path / "cli.jsonl")]) == 0

    def table(path):
        return [(r["id"], r["count"], r["q_count"], r["a_count"]) for r in map(json.loads, path.open())]

    assert table(out / "counts.jsonl") == table(tmp_path / "cli.jsonl")
    assert json.loads((out / "summary.json").read_text())["index"] == "infini-gram"
    with pytest.raises(InputError, match="no passages"):
        run_job(tmp_path / "rag", capsys, "index.backend=infini-gram", f"index.path={ig}")
