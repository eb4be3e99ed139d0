"""A real ES-API server (`noida-db`) that tests can kill and restart, and a small fault-injecting
HTTP proxy in front of it (stdlib only), for the Elasticsearch fault tests.

The proxy forwards every request to the server and, by the rules a test sets, answers the
first N requests of a kind (`bulk`, `msearch`, `count`, `search`, `other`, or `any`) itself with
a status (429, 503), drops the connection without an answer, answers only after a delay, marks
items of a bulk or msearch answer failed, or calls a function first (to kill the server). It
can require an `Authorization` header (API key or basic auth) and answers 401 otherwise. It
logs (kind, status) per request, never a header. While the server is down it drops the
client's connection, as a load balancer in front of a dead node would.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def noida_binary() -> str | None:
    found = shutil.which("noida-db") or str(Path(sys.executable).parent / "noida-db")
    return found if Path(found).exists() else None


def running_noida(folder: Path) -> Iterator[NoidaServer]:
    """A started noida-db server in `folder` for a fixture to yield (the test skips where
    noida-db is missing or cannot run); SIGKILLed afterwards."""
    import pytest

    if noida_binary() is None:
        pytest.skip("noida-db is not installed (pip install noida-db)")
    server = NoidaServer(folder)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"noida-db cannot run here: {exc}")
    yield server
    server.stop(signal.SIGKILL)


class NoidaServer:
    """`noida-db` on 127.0.0.1:`port` with its data in `data`. SIGTERM saves its data; SIGKILL
    loses everything since the last save (noida-db keeps data in memory: a real Elasticsearch
    keeps what it acknowledged in its translog)."""

    def __init__(self, data: Path, port: int | None = None):
        self.data = data
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 30) -> None:
        binary = noida_binary()
        if binary is None:
            raise RuntimeError("noida-db is not installed")
        log = open(self.data / "server.log", "ab")
        self.process = subprocess.Popen(
            [binary, "start", "--only", "elasticsearch", "--data-dir", str(self.data / "db"),
             "--elasticsearch-port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("noida-db did not start: "
                                   + (self.data / "server.log").read_text(errors="replace")[-500:])
            time.sleep(0.05)
        self.starts += 1

    def _answers(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server with `sig` and wait until its port is closed."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        self.process.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                break
            time.sleep(0.02)
        self.process = None

    def restart_later(self, sig: int, down_for: float) -> threading.Thread:
        """Stop with `sig` now; start again after `down_for` seconds (in a thread)."""
        self.stop(sig)

        def again() -> None:
            time.sleep(down_for)
            self.start()

        thread = threading.Thread(target=again, daemon=True)
        thread.start()
        return thread


def kind_of(path: str) -> str:
    for kind in ("bulk", "msearch", "count", "search"):
        if f"/_{kind}" in path:
            return kind
    return "other"


@dataclass
class Rule:
    """Do `action` to the first `times` requests of `kind` after skipping `after` of them.

    action: "status" (answer `status` at once), "drop" (close the connection, no answer),
    "delay" (forward, then answer after `delay` s), "fail_items" (forward, then mark the first
    `items` items of the bulk/msearch answer failed with `status`), "call" (run `call()` first)."""

    kind: str
    action: str
    times: int = 1
    after: int = 0
    status: int = 503
    delay: float = 0.0
    items: int = 1
    call: Callable[[], Any] | None = None
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of `upstream_port` (see the module docstring)."""

    def __init__(self, upstream_port: int, *, require: str | None = None, port: int | None = None):
        self.upstream_port = upstream_port
        self.require = require
        self.rules: list[Rule] = []
        self.log: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: ThreadingHTTPServer | None = None

    def add(self, *rules: Rule) -> FaultProxy:
        with self.lock:
            self.rules.extend(rules)
        return self

    def count(self, kind: str, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for k, s in self.log if (kind == "any" or k == kind) and (status is None or s == status))

    def _match(self, kind: str) -> list[Rule]:
        matched = []
        with self.lock:
            for rule in self.rules:
                if rule.kind not in (kind, "any"):
                    continue
                rule.seen += 1
                if rule.seen > rule.after and rule.fired < rule.times:
                    rule.fired += 1
                    matched.append(rule)
        return matched

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet; the proxy keeps its own log
                pass

            def _record(self, kind: str, status: int) -> None:
                with proxy.lock:
                    proxy.log.append((kind, status))

            def _drop(self, kind: str) -> None:
                self._record(kind, 0)
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _answer(self, kind: str, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
                self._record(kind, status)
                try:
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                except OSError:  # the client gave up (its timeout)
                    self.close_connection = True

            def _error(self, kind: str, status: int, error: str, extra: list[tuple[str, str]] = ()) -> None:
                body = json.dumps({"error": {"type": error, "reason": f"injected {error}",
                                             "root_cause": [{"type": error, "reason": f"injected {error}"}]},
                                   "status": status}).encode()
                self._answer(kind, status, body, [("Content-Type", "application/json"),
                                                  ("X-Elastic-Product", "Elasticsearch"), *extra])

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = kind_of(self.path)
                if proxy.require is not None and self.headers.get("Authorization") != proxy.require:
                    self._error(kind, 401, "security_exception",
                                [("WWW-Authenticate", 'ApiKey, Basic realm="security"')])
                    return
                rules = proxy._match(kind)
                for rule in rules:
                    if rule.action == "call" and rule.call is not None:
                        rule.call()
                for rule in rules:
                    if rule.action == "status":
                        name = "es_rejected_execution_exception" if rule.status == 429 else "unavailable"
                        self._error(kind, rule.status, name)
                        return
                    if rule.action == "drop":
                        self._drop(kind)
                        return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                try:
                    upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    answer = response.read()
                    status, answer_headers = response.status, response.getheaders()
                    upstream.close()
                except OSError:  # the server is down
                    self._drop(kind)
                    return
                for rule in rules:
                    if rule.action == "fail_items" and status == 200:
                        answer = _fail_items(answer, kind, rule.items, rule.status)
                    if rule.action == "delay":
                        time.sleep(rule.delay)
                self._answer(kind, status, answer, answer_headers)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _fail_items(answer: bytes, kind: str, n: int, status: int) -> bytes:
    """Mark the first `n` items of a bulk (or msearch) answer failed with `status`."""
    data = json.loads(answer)
    error = {"type": "es_rejected_execution_exception" if status == 429 else "mapper_parsing_exception",
             "reason": f"injected item failure {status}"}
    if kind == "bulk":
        for item in data["items"][:n]:
            detail = next(iter(item.values()))
            detail.pop("result", None)
            detail.update(status=status, error=error)
        data["errors"] = True
    elif kind == "msearch":
        for i in range(min(n, len(data["responses"]))):
            data["responses"][i] = {"error": error, "status": status}
    return json.dumps(data).encode()
