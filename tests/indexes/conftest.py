"""Fixtures of the index tests: small real corpora with linked shards, and real backends.

`backend_index` is the contract suite's parametrized fixture: every test that uses it runs
unchanged against the embedded index, against a local ES-API-compatible server (`noida-db`,
started on 127.0.0.1 on a free port; skipped only if its binary cannot run here), and against
a real Elasticsearch cluster when `ES_URL` is set.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.indexes.ix_testdata import DOCS, delete_es_indices, es_url_for, new_index_name, write_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> tuple[Path, Path]:
    return write_corpus(tmp_path_factory.mktemp("tiny_corpus"), DOCS)


# -- Elasticsearch-compatible servers ------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _noida_binary() -> str | None:
    found = shutil.which("noida-db") or str(Path(sys.executable).parent / "noida-db")
    return found if Path(found).exists() else None


@pytest.fixture(scope="session")
def noida_url(tmp_path_factory):
    """URL of a `noida-db` Elasticsearch-API server on 127.0.0.1 (stopped at the end)."""
    binary = _noida_binary()
    if binary is None:
        pytest.skip("noida-db is not installed (pip install noida-db)")
    port = _free_port()
    data = tmp_path_factory.mktemp("noida")
    log = open(data / "server.log", "wb")
    try:
        process = subprocess.Popen(
            [binary, "start", "--only", "elasticsearch", "--data-dir", str(data / "db"),
             "--elasticsearch-port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        pytest.skip(f"noida-db cannot run here: {exc}")
    url = f"http://127.0.0.1:{port}"
    try:
        from elasticsearch import Elasticsearch

        client = Elasticsearch(url, request_timeout=2)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.info()
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (data / "server.log").read_text(errors="replace")[-500:]
                    pytest.skip(f"noida-db did not start: {tail}")
                time.sleep(0.2)
        client.close()
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def es_targets() -> list:
    """Parameters of the contract suite: the embedded index and the Elasticsearch servers."""
    params = ["embedded", pytest.param("noida", marks=pytest.mark.slow)]
    params.append(pytest.param("es_url", marks=pytest.mark.skipif(
        not os.environ.get("ES_URL"), reason="set ES_URL to run against a real Elasticsearch cluster")))
    return params


@pytest.fixture(scope="module", params=es_targets())
def backend_index(request, tiny_corpus, tmp_path_factory):
    """An open `DocumentIndex` of the hand-made corpus, on each backend."""
    from indexes import build_index, open_index

    corpus, linked = tiny_corpus
    out = tmp_path_factory.mktemp(f"index_{request.param}")
    if request.param == "embedded":
        build_index(corpus, linked, out, progress=False)
        index = open_index(out)
        yield index
        index.close()
        return
    url = es_url_for(request.param, request)
    name = new_index_name()
    build_index(corpus, linked, out, backend="elasticsearch", es_url=url, es_index=name, progress=False)
    index = open_index(out)  # through index.json, which points to the cluster
    try:
        yield index
    finally:
        index.close()
        delete_es_indices(url, name, f"{name}-passages")
