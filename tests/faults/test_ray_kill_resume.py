"""Kill the Ray executors with SIGKILL and run them again: `ltprobe link-corpus --executor ray`
while it writes shards, and `ltprobe index --backend elasticsearch --executor ray` while its
actors send bulk requests. Ray runs in local mode (`ray.init` inside the killed command).

The linked shards after the re-run must be byte-identical to an uninterrupted run's, each
document once; the Elasticsearch indices must hold every document and passage exactly once,
with the counts of the fault-free run. The killed command's Ray processes (GCS, raylet, workers,
actors) must not outlive it: a leftover actor would keep sending bulk requests or hold memory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.paths import REPO

pytestmark = pytest.mark.slow

LTPROBE = str(Path(sys.executable).parent / "ltprobe")
SHARD_SIZE = 400
TIMINGS = {"seconds", "docs_per_s", "records_linked_this_run", "created", "started", "finished",
           "git_commit"}


def _env(fault: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LTPROBE_FAULT", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    if fault:
        env["LTPROBE_FAULT"] = fault
    return env


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> list:
    """Wait until `ready()` (the command is hung at its fault point, or in the middle of its
    work), note its Ray processes, SIGKILL the command alone (as an out-of-memory killer or a
    scheduler killing the main process would), and return the processes it had started."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the command ended (exit {proc.returncode}) before the fault point"
        assert time.monotonic() < deadline, "the fault point was never reached"
        time.sleep(0.2)
    children = _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return children


def _cmdline(process) -> str:
    import psutil

    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie
        return ""


def _gone(children: list, within: float = 180.0) -> list[str]:
    """The command lines of `children` still alive after `within` seconds (killed afterwards).
    Ray's agents (DashboardAgent, RuntimeEnvAgent) see their raylet gone within seconds but first
    try to report it to the dead GCS, which takes up to a minute or two on this machine."""
    import psutil

    _, alive = psutil.wait_procs(children, timeout=within)
    left = []
    for child in alive:
        try:
            left.append(" ".join(child.cmdline())[:120])
            child.kill()
        except psutil.NoSuchProcess:
            pass
    return left


# -- link-corpus --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def linking_job(tiny_world, tmp_path_factory):
    """The tiny world's knowledge base (saved) and its corpus as two files (about 1,700 records:
    5 shards of 400)."""
    from entity_linking import KnowledgeBase

    folder = tmp_path_factory.mktemp("ray_link")
    KnowledgeBase.from_jsonl(tiny_world / "kb.jsonl").save(folder / "kb")
    lines = (tiny_world / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    (folder / "corpus").mkdir()
    half = len(lines) // 2
    (folder / "corpus" / "a.jsonl").write_text("\n".join(lines[:half]) + "\n", encoding="utf-8")
    (folder / "corpus" / "b.jsonl").write_text("\n".join(lines[half:]) + "\n", encoding="utf-8")
    return {"kb": folder / "kb", "corpus": folder / "corpus", "records": len(lines)}


def _link_args(job, out: Path) -> list[str]:
    return [LTPROBE, "link-corpus", "--corpus", str(job["corpus"]), "--kb", str(job["kb"]), "--out", str(out),
            "--executor", "ray", "--workers", "2", "--shard-size", str(SHARD_SIZE), "--no-progress", "--quiet"]


def _without_timings(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMINGS}


def test_link_corpus_ray_sigkilled_while_writing_shards_resumes_to_identical_shards(linking_job, tmp_path):
    reference = tmp_path / "reference"
    first = subprocess.run(_link_args(linking_job, reference), env=_env(), check=False, capture_output=True, text=True,
                           timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    ref_shards = sorted(p.name for p in reference.glob("shard-*.jsonl"))
    assert len(ref_shards) == -(-linking_job["records"] // SHARD_SIZE) >= 5

    out = tmp_path / "linked"
    # Where the command is killed, in turn, each run resuming the one before:
    #   a record in the middle of shard 1 has just been written (shard 0 complete);
    #   shard 2 is complete and renamed into place, its manifest not (it must be linked again);
    #   the run after it relinks shard 2 and is killed in the middle of shard 3.
    # (With Ray the driver writes the rows one at a time: `link-corpus:batch@N` is its N-th record.)
    middle = f"link-corpus:batch@{SHARD_SIZE + SHARD_SIZE // 2}"
    kills = [middle, "write:shard-00002.json", middle]
    started: list = []  # the Ray processes of the killed commands, checked at the end
    for n, point in enumerate(kills):
        log = tmp_path / f"stderr-{n}-{point.replace(':', '_')}"
        with open(log, "wb") as err:
            victim = subprocess.Popen(_link_args(linking_job, out), env=_env(point + ":hang"),
                                      stdout=subprocess.DEVNULL, stderr=err)
        children = _kill_when(victim, lambda log=log: b"LTPROBE_FAULT: stopped at" in log.read_bytes())
        assert children, "the command started no Ray processes"
        started += children
        # No partial file is taken for a finished one: every shard with a manifest is complete.
        for manifest in out.glob("shard-?????.json"):
            shard = manifest.with_suffix(".jsonl")
            assert sum(1 for _ in shard.open()) == json.loads(manifest.read_text())["documents"]

    final = subprocess.run(_link_args(linking_job, out), env=_env(), check=False, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]
    leftovers = _gone(started)
    assert leftovers == [], f"Ray processes outlived the SIGKILLed commands: {leftovers}"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir()), \
        "temporary files left behind, or shards missing"
    for name in ref_shards:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
        manifest = Path(name).with_suffix(".json").name
        assert _without_timings(out / manifest) == _without_timings(reference / manifest), manifest
    assert _without_timings(out / "manifest.json") == _without_timings(reference / "manifest.json")
    ids = [json.loads(line)["id"] for name in ref_shards for line in (out / name).open()]
    assert len(ids) == len(set(ids)) == linking_job["records"]  # nothing duplicated, nothing lost
    resumed = json.loads((out / "manifest.json").read_text())
    assert resumed["complete"] and 0 < resumed["records_linked_this_run"] < linking_job["records"]


# -- Elasticsearch ingestion through Ray ----------------------------------------------------

N_DOCS = 1200


@pytest.fixture(scope="module")
def es_world(tmp_path_factory):
    import random

    from tests.indexes.ix_testdata import write_corpus

    rng = random.Random(21)
    entities = [f"E{i:03d}" for i in range(60)]
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "engine", "garden", "letter", "castle"]
    docs = [(f"doc{i:05d}", rng.sample(entities, rng.randint(0, 4)),
             " ".join(rng.choice(words) for _ in range(rng.randint(5, 30)))) for i in range(N_DOCS)]
    qa = [{"id": f"qa{i}", "q_entities": rng.sample(entities, rng.randint(1, 2)),
           "a_entities": rng.sample(entities, rng.randint(1, 2))} for i in range(100)]
    corpus, linked = write_corpus(tmp_path_factory.mktemp("ray_es_world"), docs, shard_size=300)
    return {"corpus": corpus, "linked": linked, "qa": qa}


@pytest.fixture(scope="module")
def noida(tmp_path_factory):
    from tests.faults.es_proxy import running_noida

    yield from running_noida(tmp_path_factory.mktemp("noida_ray"))


def test_elasticsearch_ingestion_through_ray_sigkilled_then_rerun(es_world, noida, tmp_path):
    """`ltprobe index --executor ray` SIGKILLed while its actors' bulk requests are in flight
    (the 3rd of 6: 500 documents each; the fault proxy holds it until the kill, then drops it); the same command
    again completes: both indices hold every document once, index.json says so, and the counts
    equal a fault-free run's."""
    from indexes import count_qa, open_index
    from tests.faults.es_proxy import FaultProxy, Rule
    from tests.faults.test_elasticsearch import _stored
    from tests.indexes.ix_testdata import new_index_name

    config = tmp_path / "es.json"
    config.write_text(json.dumps({"retries": 6, "retry_backoff": 0.1}))

    def args(url: str, name: str, out: Path) -> list[str]:
        return [LTPROBE, "index", "--corpus", str(es_world["corpus"]), "--linked", str(es_world["linked"]),
                "--out", str(out), "--backend", "elasticsearch", "--es-url", url, "--es-index", name,
                "--es-config", str(config), "--es-workers", "1", "--executor", "ray", "--workers", "2", "--quiet"]

    clean_name = new_index_name()
    clean = subprocess.run(args(noida.url, clean_name, tmp_path / "clean"), env=_env(), check=False, capture_output=True,
                           text=True, timeout=900)
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert _stored(noida, clean_name) == (N_DOCS, N_DOCS)

    proxy = FaultProxy(noida.port).start()
    try:
        name = new_index_name()
        out = tmp_path / "ix"
        # The 3rd bulk request is held by the proxy until the command is killed, then dropped.
        # (Held until the command's processes are gone: an actor that outlived it would resend it.)
        reached, killed = threading.Event(), threading.Event()
        proxy.add(Rule("bulk", "call", after=2, call=lambda: (reached.set(), killed.wait(400))),
                  Rule("bulk", "drop", after=2))
        victim = subprocess.Popen(args(proxy.url, name, out), env=_env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            children = _kill_when(victim, reached.is_set)
            assert children, "the command started no Ray processes"
            actors = [c for c in children if "_IndexActor" in _cmdline(c)]
            assert actors, [_cmdline(c) for c in children]
            left = _gone(actors, within=10)
            assert left == [], f"the indexing actors outlived the SIGKILLed command by 10 s: {left}"
            left = _gone(children)
        finally:
            killed.set()
        assert left == [], f"Ray processes outlived the SIGKILLed command: {left}"
        assert not (out / "index.json").exists()
        stored_after_kill = _stored(noida, name)
        # the 2 bulk requests sent before the kill, nothing after it
        assert stored_after_kill == (1000, 0), stored_after_kill

        again = subprocess.run(args(proxy.url, name, out), env=_env(), check=False, capture_output=True, text=True, timeout=900)
        assert again.returncode == 0, again.stderr[-3000:]
        info = json.loads((out / "index.json").read_text())
        assert (info["n_docs"], info["n_passages"], info["failed"], info["executor"]) == (N_DOCS, N_DOCS, 0, "ray")
        assert _stored(noida, name) == (N_DOCS, N_DOCS)  # index doc count equals corpus size: nothing twice
        with open_index(es_url=noida.url, es_index=name) as index:
            counts = count_qa(index, es_world["qa"])
        with open_index(es_url=noida.url, es_index=clean_name) as index:
            assert counts == count_qa(index, es_world["qa"])
    finally:
        proxy.close()
