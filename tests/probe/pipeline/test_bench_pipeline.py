"""`ltprobe bench pipeline` at a tiny size: the command runs link-qa -> link -> index -> count
on a generated corpus of .jsonl.zst shards, counts come out, and the last line is the JSON
object with the per-stage figures and the projection; a second run reuses the inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

TINY = ["--docs", "2000", "--shards", "4", "--entities", "5000", "--aliases", "15000", "--qa", "200"]


def _bench(work: Path, *extra: str) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "probe.cli", "bench", "pipeline", *TINY, "--work-dir", str(work),
                           "--quiet", *extra], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1])


def test_bench_pipeline_tiny(tmp_path):
    work = tmp_path / "work"
    result, table = _bench(work)
    assert {"docs", "shards", "words", "entities", "aliases", "qa", "workers", "cores", "stages",
            "projection", "corpus_bytes_per_doc"} <= set(result)
    assert result["docs"] == 2000 and result["entities"] == 5000 and result["qa"] == 200
    shards = sorted((work / "corpus").glob("*.jsonl.zst"))
    assert len(shards) == 4
    # about 650 words a document
    assert 3000 < result["doc_bytes"] < 6000
    stages = result["stages"]
    assert list(stages) == ["kb", "link_qa", "link", "index", "count"]
    for name, s in stages.items():
        assert {"items", "wall_s", "cpu_s", "per_s", "per_s_per_core", "peak_rss_mb", "disk_bytes"} <= set(s), name
        assert s["wall_s"] > 0 and s["peak_rss_mb"] > 0, name
    for name in ("link", "index"):
        assert stages[name]["items"] == 2000 and stages[name]["disk_bytes_per_doc"] > 0
    assert stages["link"]["worker_peak_rss_mb"] > 0 or result["workers"] == 1
    assert stages["index"]["n_mentions"] > 2000 * 10
    # the QA pairs' entities come from the knowledge base and the corpus mentions them
    assert stages["link_qa"]["with_q_entity"] == 200
    assert stages["count"]["counted"] == 200 and stages["count"]["nonzero"] > 50
    p = result["projection"]
    assert p["pile_docs"] == 211_000_000
    for key in ("node_link_hours", "node_index_hours_single_process", "node_total_hours", "ray_link_hours",
                "ray_total_hours_embedded_index", "linked_gb", "index_gb"):
        assert p[key] > 0, key
    assert p["ray_link_hours"] < p["node_link_hours"]
    assert "The Pile" in table and "count" in table
    assert not (work / "run").exists()  # stage outputs removed without --keep

    again, _ = _bench(work, "--keep")
    assert again["stages"]["kb"]["reused"] is True
    assert again["stages"]["count"]["nonzero"] == stages["count"]["nonzero"]
    assert (work / "run" / "counts.jsonl").exists()
