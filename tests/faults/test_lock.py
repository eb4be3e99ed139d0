"""One job per run folder, with real `ltprobe run` processes.

A first job is stopped inside its lock (`LTPROBE_FAULT=run:locked:hang`); a second job on the
same folder must stop at once, naming the first; after the first is SIGKILLed, a third takes the
stale lock over.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

LTPROBE = str(Path(sys.executable).parent / "ltprobe")


def _start(out: Path, *args: str, fault: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "LTPROBE_FAULT"}
    if fault:
        env["LTPROBE_FAULT"] = fault
    return subprocess.Popen([LTPROBE, "run", "--out", str(out), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_holder(lock: Path, pid: int, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if lock.exists() and lock.read_text().strip():
            record = json.loads(lock.read_text())
            if record["pid"] == pid:
                return record
        time.sleep(0.05)
    raise AssertionError(f"{lock}: pid {pid} never took the lock")


def test_second_job_stops_at_once_naming_the_first_and_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "job.yaml"  # fails right after taking the lock: no data, no world
    config.write_text("world: null\nmodel: {path: some/model}\n")
    first = _start(out, str(config), fault="run:locked:hang")
    try:
        holder = _wait_for_holder(out / ".ltprobe.lock", first.pid)
        assert holder["host"] == socket.gethostname()

        started = time.time()
        second = subprocess.run([LTPROBE, "run", str(config), "--out", str(out)],
                                capture_output=True, text=True, timeout=60)
        took = time.time() - started
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "in use by another ltprobe job" in lines[0]
        assert f"pid {first.pid}" in lines[0]
        assert f"on host {socket.gethostname()}" in lines[0]
        assert f"started {holder['started']}" in lines[0]
        assert "Traceback" not in second.stderr
        assert took < 20  # at once: no waiting for the lock (the CLI's start-up is most of it)
        assert first.poll() is None  # the first job is untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)

    # The killed job's lock file still names it; the kernel dropped its lock, so it is stale.
    assert json.loads((out / ".ltprobe.lock").read_text())["pid"] == first.pid
    third = subprocess.run([LTPROBE, "run", str(config), "--out", str(out)],
                           capture_output=True, text=True, timeout=60)
    assert f"took over the lock of a job that is gone (pid {first.pid}" in third.stderr
    assert third.returncode == 2 and "data.qa must be given" in third.stderr  # it went on to work
    assert (out / ".ltprobe.lock").read_text() == ""  # released cleanly at its end


def test_lock_is_not_held_by_forked_children(tmp_path):
    """A child forked by the job (a vLLM engine, a linking worker) that outlives a SIGKILLed
    parent must not keep the folder locked."""
    script = (
        "import os, sys, time\n"
        "from probe.pipeline._lock import RunLock\n"
        "lock = RunLock(sys.argv[1]).acquire()\n"
        "if os.fork() == 0:\n"
        "    time.sleep(60); os._exit(0)\n"
        "print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        from probe.pipeline._lock import FolderInUse, RunLock

        try:
            RunLock(tmp_path).acquire()
            raise AssertionError("the folder should be held by the live parent")
        except FolderInUse as exc:
            assert f"pid {proc.pid}" in str(exc)
        proc.send_signal(signal.SIGKILL)  # the parent only; the forked child lives on
        proc.wait(timeout=30)
        lock = RunLock(tmp_path).acquire()
        assert lock.previous["pid"] == proc.pid
        lock.release()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


def test_lock_record_hides_secret_options(tmp_path, monkeypatch):
    from probe.pipeline._lock import RunLock

    monkeypatch.setattr(sys, "argv", ["ltprobe", "run", "--out", "x", "--set", "index.es_api_key=hunter2",
                                      "--password", "hunter3"])
    with RunLock(tmp_path):
        text = (tmp_path / ".ltprobe.lock").read_text()
    assert "hunter2" not in text and "hunter3" not in text
    assert "index.es_api_key=***" in text
