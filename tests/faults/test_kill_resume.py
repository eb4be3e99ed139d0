"""Kill `ltprobe run` anywhere, run it again, get what an uninterrupted run writes.

One uninterrupted run of a small job (configs/smoke.yaml's world and model, the transformers
backend: the cheapest) is the reference. Then the same job runs in the same folder path again
and again, each time SIGKILLed by itself at a fault point (`LTPROBE_FAULT`, see
`entity_linking.faults`) inside a later stage: in the middle of writing a file, after a file is
written but before it is renamed into place, inside a training run, a linking shard, the index
build, an evaluation batch, a torn cache line. A last run without a fault finishes the job.
Every output must then equal the reference's: byte for byte, but for timings and start times in
manifests, and the completion cache, whose records (not bytes) must be the same, each once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.fault_job import CONFIG

LTPROBE = str(Path(sys.executable).parent / "ltprobe")


# In stage order: each run is killed at the first point, the next run resumes and is killed at
# the second, and so on. Every point must be reached (the run must die of SIGKILL).
FAULTS = [
    "write-record:corpus.jsonl@700",     # world: half of the corpus written
    "write:truth.jsonl",                 # world: last file complete, not yet renamed
    "train:step@15",                     # training: half way
    "train:saved",                       # training: weights saved, completeness marker not
    "write-record:qa.jsonl@50",          # QA set half written
    "write-record:qa_entities.jsonl@50", # QA linking half written
    "link-corpus:batch@2",               # corpus linking: inside the shard
    "write:shard-00000.json",            # shard renamed into place, its manifest not
    "index:doc@700",                     # index: half the documents added
    "index:before-swap",                 # index complete in its temporary folder
    "write-record:counts.jsonl@60",      # counts half written
    "eval:torn-write",                   # evaluation: the closed-book batch's cache line torn in two
    "eval:batch@2",                      # evaluation: closed-book (redone) and RAG batches cached, oracle not
    "write-record:predictions.jsonl@100",
    "write:summary.json",
    "write:report.html",                 # plots written, the report not
]

VOLATILE = {"created", "seconds", "build_seconds", "docs_per_s", "starts", "tokens_per_second",
            "steps_per_second", "records_linked_this_run", "git_commit",
            "started", "finished", "mtime_ns", "result", "fingerprint", "after"}
"""Keys of the JSON files that hold timings or start times (they differ between any two runs),
the manifest's commit (it differs when someone commits while the test runs), and the stage
records' file times and the hashes derived from them (a folder stage's result is known by when
it finished); each stage's status, settings, inputs' paths and sizes, and outputs still count."""
TIMINGS_IN = {"manifest.json", "index/index.json", "linked/manifest.json", "linked/shard-00000.json",
              "model/ltprobe_train.json"}


def _run(out: Path, config: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LTPROBE_FAULT"}
    if fault:
        env["LTPROBE_FAULT"] = fault
    return subprocess.run([LTPROBE, "run", str(config), "--out", str(out), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=900)


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _drop_volatile(value):
    if isinstance(value, dict):
        return {k: _drop_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):  # the training marker's size varies with the timings it records
        return [_drop_volatile(v) for v in value
                if not (isinstance(v, dict) and str(v.get("path", "")).endswith("ltprobe_train.json"))]
    return value


def _report_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?Z?", "TIME", text)
    text = re.sub(r"\b[0-9a-f]{40}\b", "COMMIT", text)
    # The manifest's start times (one more per resumed run; the report cuts long lists with "…").
    text = re.sub(r"\[(&quot;TIME&quot;(, )?)+(\]|…)", "[STARTS]", text)
    # The manifest section shows the stage records, whose times and time-derived hashes differ
    # (manifest.json itself is compared above without them).
    return re.sub(r"<h2>Run manifest</h2>.*?</section>", "<h2>Run manifest</h2></section>", text, flags=re.S)


def _cache_records(path: Path) -> tuple[dict[str, str], int]:
    entries, valid = {}, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line, redone by the next run
        entries[record["key"]] = record["completion"]
        valid += 1
    return entries, valid


@pytest.mark.slow
def test_killed_anywhere_the_resumed_run_equals_an_uninterrupted_one(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "run"  # both runs write to this path, so paths recorded in files agree
    first = _run(out, config, None)
    assert first.returncode == 0, first.stderr[-3000:]
    reference = tmp_path / "reference"
    out.rename(reference)

    for fault in FAULTS:
        result = _run(out, config, fault)
        assert result.returncode == -9, (f"{fault}: the run was not killed there (exit {result.returncode}): "
                                         f"{result.stderr[-2000:]}")
    final = _run(out, config, None)
    assert final.returncode == 0, final.stderr[-3000:]

    ref_files, got_files = _files(reference), _files(out)
    leftovers = [name for name in got_files if Path(name).name.startswith(".") and name != ".ltprobe.lock"]
    assert leftovers == [], f"temporary files of killed writers left behind: {leftovers}"
    assert sorted(got_files) == sorted(ref_files)
    differ = []
    for name, ref_path in ref_files.items():
        got_path = got_files[name]
        if name == ".ltprobe.lock":
            continue
        if name == "run.log":  # the log of every start, the killed ones too (checked below)
            continue
        if name == "cache/completions.jsonl":
            (ref_entries, ref_n), (got_entries, got_n) = _cache_records(ref_path), _cache_records(got_path)
            assert got_entries == ref_entries, "the completion cache holds other completions"
            assert got_n == ref_n, f"the completion cache holds {got_n} records, the reference {ref_n}"
            continue
        if ref_path.read_bytes() == got_path.read_bytes():
            continue
        if name in TIMINGS_IN:
            if _drop_volatile(json.loads(ref_path.read_text())) == _drop_volatile(json.loads(got_path.read_text())):
                continue
        elif name == "report.html" and _report_text(ref_path) == _report_text(got_path):
            continue
        differ.append(name)
    assert differ == [], f"outputs differ from the uninterrupted run: {differ}"
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    keys = [(p["id"], p["setting"]) for p in predictions]
    assert len(keys) == len(set(keys)) > 0  # each question once per setting
    starts = json.loads((out / "manifest.json").read_text())["starts"]
    assert len(starts) == len(FAULTS) + 1
    assert (out / "run.log").read_text().count(" INFO ltprobe: ltprobe run into ") == len(starts)
    shutil.rmtree(reference)
