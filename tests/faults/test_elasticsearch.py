"""Elasticsearch faults over real HTTP: a real ES-API server (`noida-db` on 127.0.0.1) behind a
fault-injecting proxy (tests/faults/es_proxy.py), driven through the public functions
(`build_index`, `open_index`, `count_qa`) and, for credentials, the real `ltprobe` commands.

Each fault ends either complete, with counts equal to the fault-free run's (which equal the
embedded backend's) and every document stored once, or with a one-line `InputError` that says
what to re-run; the re-run then completes the same way. Small batches (bulk requests of 100
documents, `_msearch` requests of 100 counts) give several requests to fault in the middle of
(8 bulk and 5 msearch requests in the fault-free run).
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from entity_linking.io import InputError
from indexes import build_index, count_qa, open_index
from tests.faults.es_proxy import FaultProxy, Rule, free_port, running_noida
from tests.indexes.ix_testdata import new_index_name, write_corpus
from tests.paths import REPO

pytestmark = pytest.mark.slow

LTPROBE = str(Path(sys.executable).parent / "ltprobe")
N_DOCS = 400
N_QA = 150
CHUNK = 100
OUTCOMES: list[str] = []  # how the kill tests ended (printed at the end, for docs/reliability.md)


def _world() -> tuple[list[tuple[str, list[str], str]], list[dict]]:
    rng = random.Random(20)
    entities = [f"E{i:03d}" for i in range(60)]
    words = "alpha beta gamma delta river stone engine garden letter castle".split()
    docs = [(f"doc{i:04d}", rng.sample(entities, rng.randint(0, 4)),
             " ".join(rng.choice(words) for _ in range(rng.randint(5, 30)))) for i in range(N_DOCS)]
    qa = [{"id": f"qa{i}", "q_entities": rng.sample(entities, rng.randint(1, 2)),
           "a_entities": rng.sample(entities, rng.randint(1, 2))} for i in range(N_QA)]
    return docs, qa


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    docs, qa = _world()
    corpus, linked = write_corpus(tmp_path_factory.mktemp("es_world"), docs, shard_size=200)
    folder = tmp_path_factory.mktemp("embedded")
    build_index(corpus, linked, folder, progress=False)
    with open_index(folder) as index:
        reference = count_qa(index, qa)
    return {"corpus": corpus, "linked": linked, "qa": qa, "reference": reference}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from running_noida(tmp_path_factory.mktemp("noida"))
    print("\nkill outcomes:", OUTCOMES)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    from indexes.elastic import _client

    monkeypatch.setattr(_client, "BULK_CHUNK", CHUNK)
    monkeypatch.setattr(_client, "MSEARCH_BATCH", CHUNK)
    for var in ("ES_API_KEY", "ES_USERNAME", "ES_PASSWORD", "LTPROBE_ES_CONFIG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def proxy(server):
    proxy = FaultProxy(server.port).start()
    yield proxy
    proxy.close()


def _config(tmp_path: Path, **settings) -> Path:
    path = tmp_path / "es.json"
    path.write_text(json.dumps({"retries": 6, "retry_backoff": 0.1, **settings}))
    return path


def _build(world, url, name, out, config=None):
    return build_index(world["corpus"], world["linked"], out, backend="elasticsearch", es_url=url,
                       es_index=name, es_config=config, es_workers=2, progress=False)


def _counts(world, url, name, config=None):
    with open_index(es_url=url, es_index=name, es_config=config) as index:
        return count_qa(index, world["qa"])


def _stored(server, name) -> tuple[int, int]:
    """Documents and passages the server holds (asked directly, not through the proxy)."""
    from elasticsearch import Elasticsearch

    client = Elasticsearch(server.url, request_timeout=30)
    client.indices.refresh(index=[name, f"{name}-passages"])
    counts = (client.count(index=name)["count"], client.count(index=f"{name}-passages")["count"])
    client.close()
    return counts


def _complete(world, server, name, url, info=None, config=None):
    """The index holds every document and passage once, and counts as the embedded backend."""
    assert _stored(server, name) == (N_DOCS, N_DOCS)  # one passage per (short) document
    if info is not None:
        assert (info["n_docs"], info["n_passages"], info["failed"]) == (N_DOCS, N_DOCS, 0)
    assert _counts(world, url, name, config) == world["reference"]


def _one_line(exc: BaseException, *needles: str) -> str:
    message = str(exc)
    assert "\n" not in message and "Traceback" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_fault_free_run_counts_as_the_embedded_backend(world, server, proxy, tmp_path):
    name = new_index_name()
    info = _build(world, proxy.url, name, tmp_path / "ix")
    _complete(world, server, name, proxy.url, info)
    assert proxy.count("bulk") == 2 * N_DOCS // CHUNK and proxy.count("msearch") >= 3  # 5 here


def test_connection_refused_at_start_then_the_server_comes_up(world, server, tmp_path):
    port = free_port()  # nothing listens there for the first 1.5 s
    proxies: list[FaultProxy] = []
    timer = threading.Timer(1.5, lambda: proxies.append(FaultProxy(server.port, port=port).start()))
    timer.start()
    name = new_index_name()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        info = _build(world, url, name, tmp_path / "ix")
        assert time.monotonic() - started >= 1.5
        _complete(world, server, name, url, info)
    finally:
        timer.join()
        for p in proxies:
            p.close()


def test_429_and_503_answers_are_retried_with_backoff(world, server, proxy, tmp_path):
    rejected = Rule("msearch", "fail_items", status=429, items=30, times=2, after=4)  # 30 queries of 2 answers
    proxy.add(Rule("bulk", "status", status=429, times=2), Rule("bulk", "status", status=503, times=2, after=4),
              Rule("msearch", "status", status=503, times=2), Rule("msearch", "status", status=429, times=1, after=3),
              Rule("other", "status", status=503, times=1, after=3),
              rejected)
    name = new_index_name()
    info = _build(world, proxy.url, name, tmp_path / "ix", _config(tmp_path))
    _complete(world, server, name, proxy.url, info, _config(tmp_path))
    assert proxy.count("bulk", 429) == 2 and proxy.count("bulk", 503) == 2
    assert proxy.count("msearch", 503) == 2 and proxy.count("msearch", 429) == 1
    assert rejected.fired == 2  # and their 60 queries were sent again: the counts are complete


def test_503_that_does_not_end_is_one_line_then_the_rerun_completes(world, server, proxy, tmp_path):
    config = _config(tmp_path, retries=3, retry_backoff=0.1)
    name = new_index_name()
    proxy.add(Rule("bulk", "status", status=503, times=10**6, after=3))
    with pytest.raises(InputError) as info:
        _build(world, proxy.url, name, tmp_path / "ix", config)
    _one_line(info.value, f"Elasticsearch at {proxy.url} stopped answering", "HTTP 503", "re-run the same command")
    assert not (tmp_path / "ix" / "index.json").exists()
    proxy.rules.clear()
    _complete(world, server, name, proxy.url, _build(world, proxy.url, name, tmp_path / "ix", config), config)
    proxy.add(Rule("msearch", "status", status=503, times=10**6, after=1))
    with pytest.raises(InputError) as info:
        _counts(world, proxy.url, name, config)
    _one_line(info.value, "stopped answering (HTTP 503", "re-run the same command")


def test_partial_bulk_failures(world, server, proxy, tmp_path):
    # Items rejected with 429 (a full write queue) are sent again: complete, nothing lost.
    proxy.add(Rule("bulk", "fail_items", status=429, items=40, times=3))
    name = new_index_name()
    info = _build(world, proxy.url, name, tmp_path / "ix", _config(tmp_path))
    _complete(world, server, name, proxy.url, info)
    # Items refused for good (400) are named, with the command to re-run; the re-run completes.
    proxy.add(Rule("bulk", "fail_items", status=400, items=3, times=1, after=3))
    name = new_index_name()
    with pytest.raises(InputError) as info:
        _build(world, proxy.url, name, tmp_path / "ix2")
    message = _one_line(info.value, "3 documents failed to index", "re-run the same command")
    failed = (tmp_path / "ix2" / "failed_ids.txt").read_text().splitlines()
    assert len(failed) == 3 and all(line.split("\t")[0] in message or i >= 3 for i, line in enumerate(failed))
    info = _build(world, proxy.url, name, tmp_path / "ix2")
    _complete(world, server, name, proxy.url, info)
    assert not (tmp_path / "ix2" / "failed_ids.txt").exists()


def test_answers_slower_than_the_timeout(world, server, proxy, tmp_path):
    config = _config(tmp_path, request_timeout=1.0)
    # The server stores the bulk request, but answers after the client gave up: resent, stored once.
    proxy.add(Rule("bulk", "delay", delay=2.0, times=2), Rule("msearch", "delay", delay=2.0, times=1, after=1))
    name = new_index_name()
    info = _build(world, proxy.url, name, tmp_path / "ix", config)
    _complete(world, server, name, proxy.url, info, config)
    assert proxy.count("bulk") == 2 * N_DOCS // CHUNK + 2
    proxy.add(Rule("count", "delay", delay=2.0, times=10**6), Rule("msearch", "delay", delay=2.0, times=10**6))
    with pytest.raises(InputError) as info:
        _counts(world, proxy.url, name, _config(tmp_path, request_timeout=0.5, retries=2, retry_backoff=0.1))
    _one_line(info.value, "stopped answering (ConnectionTimeout)", "re-run the same command")


def test_dropped_connections_are_retried(world, server, proxy, tmp_path):
    proxy.add(Rule("bulk", "drop", times=2, after=1), Rule("msearch", "drop", times=2, after=1))
    name = new_index_name()
    info = _build(world, proxy.url, name, tmp_path / "ix", _config(tmp_path))
    _complete(world, server, name, proxy.url, info, _config(tmp_path))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_server_killed_mid_ingestion_and_restarted(world, server, proxy, tmp_path, sig):
    """SIGTERM: noida-db saves its data, the ingestion goes on after the restart and completes.
    SIGKILL: noida-db loses everything (a real Elasticsearch keeps what it acknowledged): the
    ingestion recreates the index, ends with one line saying to re-run, and the re-run completes."""
    config = _config(tmp_path)
    name = new_index_name()
    restarts: list[threading.Thread] = []
    proxy.add(Rule("bulk", "call", after=3, call=lambda: restarts.append(server.restart_later(sig, 1.5))))
    try:
        info = _build(world, proxy.url, name, tmp_path / "ix", config)
    except InputError as exc:
        assert sig == signal.SIGKILL
        _one_line(exc, f"index '{name}' at {proxy.url} holds", "re-run the same command")
        assert not (tmp_path / "ix" / "index.json").exists()
        OUTCOMES.append(f"ingest {sig.name}: error, re-run")
        info = _build(world, proxy.url, name, tmp_path / "ix", config)
    else:
        OUTCOMES.append(f"ingest {sig.name}: complete")
    for thread in restarts:
        thread.join()
    assert len(restarts) == 1 and proxy.count("bulk", 0) >= 1  # connections dropped while it was down
    _complete(world, server, name, proxy.url, info, config)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_server_killed_mid_count_and_restarted(world, server, proxy, tmp_path, sig):
    """SIGTERM: the counting goes on after the restart. SIGKILL: noida-db comes back with what it
    last saved: the counting completes if that held the index, else one line says to rebuild."""
    config = _config(tmp_path)
    name = new_index_name()
    _build(world, proxy.url, name, tmp_path / "ix", config)
    restarts: list[threading.Thread] = []
    proxy.add(Rule("msearch", "call", after=2, call=lambda: restarts.append(server.restart_later(sig, 1.5))))
    try:
        counts = _counts(world, proxy.url, name, config)
    except InputError as exc:
        assert sig == signal.SIGKILL
        _one_line(exc, f"no index '{name}' at {proxy.url} any more", "ltprobe index --backend elasticsearch")
        OUTCOMES.append(f"count {sig.name}: error")
    else:
        assert counts == world["reference"]
        OUTCOMES.append(f"count {sig.name}: complete")
    for thread in restarts:
        thread.join()
    assert len(restarts) == 1 and proxy.count("msearch", 0) >= 1


def test_index_deleted_mid_count_is_one_line(world, server, proxy, tmp_path):
    """What a cluster restarted without its data looks like to counting (deterministic here)."""
    from tests.indexes.ix_testdata import delete_es_indices

    name = new_index_name()
    _build(world, proxy.url, name, tmp_path / "ix")
    proxy.add(Rule("msearch", "call", after=1, call=lambda: delete_es_indices(server.url, name)))
    with pytest.raises(InputError) as info:
        _counts(world, proxy.url, name)
    _one_line(info.value, f"no index '{name}' at {proxy.url} any more", "ltprobe index --backend elasticsearch",
              "re-run the same command")


# -- credentials, through the real commands ------------------------------------------------

KEY = "k3y-Zq81-never-shown"
USER, PASSWORD = "probe-user", "pw-Xy7-never-shown"


def _ltprobe(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `ltprobe ARGS`; also read its command line (the process title) while it runs."""
    full = {**os.environ, **env, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([LTPROBE, *args], env=full, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    titles: set[str] = set()
    while proc.poll() is None:
        try:
            titles.add(Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace"))
            titles.add(Path(f"/proc/{proc.pid}/comm").read_text())
        except OSError:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), titles


def test_ltprobe_index_sigkilled_mid_ingestion_then_rerun(world, server, proxy, tmp_path):
    """The client side: `ltprobe index` SIGKILLed while its 3rd bulk request is in flight; the
    same command again completes the index, every document once, and writes index.json."""
    name = new_index_name()
    args = ["index", "--corpus", str(world["corpus"]), "--linked", str(world["linked"]), "--out",
            str(tmp_path / "ix"), "--backend", "elasticsearch", "--es-url", proxy.url, "--es-index", name,
            "--es-workers", "1"]
    full = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # 400 documents are one bulk request of 500 in the command: kill it during the passages' one.
    victim = subprocess.Popen([LTPROBE, *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proxy.add(Rule("bulk", "call", after=1, call=lambda: victim.kill()))
    victim.communicate(timeout=120)
    assert victim.returncode == -signal.SIGKILL
    assert not (tmp_path / "ix" / "index.json").exists()
    again = subprocess.run([LTPROBE, *args], env=full, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "ix" / "index.json").read_text())["n_docs"] == N_DOCS
    _complete(world, server, name, proxy.url)


def _secrets_nowhere(folder: Path, texts: list[str]) -> int:
    """No credential in any file under `folder` or in `texts`; returns the number of files read."""
    secrets = [KEY, PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in secrets), path
    for text in texts:
        assert not any(s in text for s in secrets), text
    return len(files)


@pytest.mark.parametrize("auth", ["api_key", "basic"])
def test_credentials_enforced_and_never_shown(world, server, tmp_path, auth):
    if auth == "api_key":
        required, good, bad = f"ApiKey {KEY}", {"ES_API_KEY": KEY}, {"ES_API_KEY": KEY[::-1]}
    else:
        required = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        good, bad = {"ES_USERNAME": USER, "ES_PASSWORD": PASSWORD}, {"ES_USERNAME": USER, "ES_PASSWORD": "nope"}
    proxy = FaultProxy(server.port, require=required).start()
    work = tmp_path / "run"
    work.mkdir()
    qa = work / "qa_entities.jsonl"
    qa.write_text("".join(json.dumps(r) + "\n" for r in world["qa"]))
    name = new_index_name()
    index = ["index", "--corpus", str(world["corpus"]), "--linked", str(world["linked"]), "--out",
             str(work / "ix"), "--backend", "elasticsearch", "--es-url", proxy.url, "--es-index", name]
    count = ["count", "--index", str(work / "ix"), "--qa-entities", str(qa), "--out", str(work / "counts.jsonl")]
    texts: list[str] = []
    try:
        for args in (index, count):
            wrong, titles = _ltprobe(args, bad, work)
            texts += [wrong.stdout, wrong.stderr, *titles]
            assert wrong.returncode == 2, wrong.stderr
            assert wrong.stderr.strip() == (f"ltprobe: error: Elasticsearch at {proxy.url} refused the credentials; "
                                            "set ES_API_KEY or ES_USERNAME/ES_PASSWORD (or --es-config)")
            if args is index:
                assert not (work / "ix").exists()
                assert proxy.count("any", 401) >= 1
            right, titles = _ltprobe(args, good, work)
            texts += [right.stdout, right.stderr, *titles]
            assert right.returncode == 0, right.stderr
        rows = [json.loads(line) for line in (work / "counts.jsonl").read_text().splitlines()]
        assert rows == world["reference"]
        assert _secrets_nowhere(work, texts) >= 3  # index.json, counts.jsonl, its manifest if any
    finally:
        proxy.close()
