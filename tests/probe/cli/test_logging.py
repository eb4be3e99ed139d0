"""Where `ltprobe`'s output goes: results on stdout, messages through logging on stderr
(`--log-level`, `--quiet`), progress bars only on a terminal, and a run folder's `run.log`."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.paths import REPO

SMOKE = REPO / "configs" / "smoke.yaml"


def ltprobe(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != "LTPROBE_PROGRESS"}, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "probe.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def link_qa_args(world: Path, out: Path) -> list[str]:
    return ["link-qa", "--qa", str(world / "qa.jsonl"), "--kb", str(world / "kb.jsonl"), "--out", str(out)]


def test_messages_on_stderr_by_level_and_no_progress_bar_off_a_terminal(tiny_world, tmp_path):
    result = ltprobe(*link_qa_args(tiny_world, tmp_path / "a.jsonl"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # link-qa's result is its file
    assert re.fullmatch(r"linked \d+ QA pairs: .* -> \S+a\.jsonl\n", result.stderr)  # INFO: the message alone

    # --quiet before or after the command name: warnings and errors only
    for args in (["--quiet", *link_qa_args(tiny_world, tmp_path / "b.jsonl")],
                 [*link_qa_args(tiny_world, tmp_path / "c.jsonl"), "--quiet"],
                 [*link_qa_args(tiny_world, tmp_path / "d.jsonl"), "--log-level", "warning"]):
        result = ltprobe(*args)
        assert result.returncode == 0 and result.stderr == "" and result.stdout == "", args

    result = ltprobe("--log-level", "debug", *link_qa_args(tiny_world, tmp_path / "e.jsonl"))
    lines = result.stderr.splitlines()
    assert result.returncode == 0 and lines[0] == f"ltprobe: debug: command: ltprobe --log-level debug link-qa " \
        f"--qa {tiny_world / 'qa.jsonl'} --kb {tiny_world / 'kb.jsonl'} --out {tmp_path / 'e.jsonl'}"
    assert lines[-1].startswith("linked ")
    assert (tmp_path / "e.jsonl").read_text() == (tmp_path / "a.jsonl").read_text()


def test_progress_bar_on_a_terminal_or_when_forced_never_when_quiet(tiny_world, tmp_path):
    forced = ltprobe(*link_qa_args(tiny_world, tmp_path / "a.jsonl"), env={"LTPROBE_PROGRESS": "1"})
    assert forced.returncode == 0 and "linking QA" in forced.stderr and " questions" in forced.stderr
    quiet = ltprobe("--quiet", *link_qa_args(tiny_world, tmp_path / "b.jsonl"), env={"LTPROBE_PROGRESS": "1"})
    assert quiet.returncode == 0 and quiet.stderr == ""

    # stderr a terminal: the bar shows without being forced
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a new one is 0 columns wide
    env = {**{k: v for k, v in os.environ.items() if k != "LTPROBE_PROGRESS"}, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "probe.cli", *link_qa_args(tiny_world, tmp_path / "c.jsonl")],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert proc.wait(timeout=120) == 0, shown[-2000:]
    assert b"linking QA" in shown and b"linked " in shown


def test_a_job_that_stops_at_once_logs_why(tmp_path):
    config = tmp_path / "job.yaml"  # fails right after taking the lock: no data, no world
    config.write_text("world: null\nmodel: {path: some/model}\n")
    result = ltprobe("run", str(config), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and result.stdout == ""
    first, last = (tmp_path / "run" / "run.log").read_text().splitlines()
    assert first.endswith(f" INFO ltprobe: ltprobe run into {tmp_path / 'run'}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ERROR ltprobe: stopped: InputError: "
                        r".*data\.qa must be given", last)


@pytest.mark.slow
def test_a_run_folder_keeps_its_log(tmp_path):
    """`ltprobe run` appends its stage messages to DIR/run.log with time and level, and the reason it
    stopped; --quiet leaves stderr to the one-line error. (The smoke job on a model folder that does not
    exist: the stages before evaluation run, evaluation stops.)"""
    out = tmp_path / "run"
    job = [str(SMOKE), "--out", str(out), "--set", "model.train=null", "--set", f"model.path={tmp_path / 'none'}",
           "--set", "model.backend=transformers", "--set", "model.options={}"]
    first = ltprobe("run", *job, "--quiet")
    assert first.returncode == 2 and first.stdout == ""
    (error,) = first.stderr.splitlines()
    assert error.startswith("ltprobe: error: ") and "could not load model" in error
    log = (out / "run.log").read_text()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.match(rf"{stamp} INFO ltprobe: ltprobe run into {re.escape(str(out))}\n", log)
    for stage in ("world", "qa", "link-qa", "link-corpus", "index", "count"):
        assert re.search(rf"^{stamp} INFO probe\.pipeline\._stages: \[{stage}\] running: first run$", log, re.M), stage
        assert f"[{stage}] finished in " in log
    assert re.search(rf"^{stamp} INFO probe\.pipeline\._stages: \[eval\] running", log, re.M)
    assert re.search(rf"^{stamp} ERROR ltprobe: stopped: InputError: .*could not load model", log.splitlines()[-1])
    assert "DEBUG" not in log

    again = ltprobe("run", *job, "--log-level", "debug")  # appended; the stage messages on stderr too
    assert again.returncode == 2 and again.stdout == ""
    assert "[world] done already" in again.stderr and "ltprobe: debug: [world] fingerprint " in again.stderr
    assert again.stderr.splitlines()[-1] == error
    appended = (out / "run.log").read_text()[len(log):]
    assert re.match(rf"{stamp} INFO ltprobe: ltprobe run into {re.escape(str(out))}\n", appended)
    assert re.search(rf"^{stamp} DEBUG probe\.pipeline\._stages: \[count\] fingerprint [0-9a-f]+$", appended, re.M)
    assert re.search(rf"^{stamp} INFO probe\.pipeline\._stages: \[count\] done already", appended, re.M)
    assert "stopped: InputError" in appended.splitlines()[-1]


@pytest.mark.parametrize("forced, terminal, quiet, shown", [
    (None, False, False, False), (None, True, False, True), (None, True, True, False),
    ("1", False, False, True), ("1", True, True, False), ("0", True, False, False)])
def test_progress_decision(monkeypatch, forced, terminal, quiet, shown):
    from entity_linking.logs import progress_bar, quiet_progress, show_progress

    monkeypatch.delenv("LTPROBE_PROGRESS", raising=False)
    if forced is not None:
        monkeypatch.setenv("LTPROBE_PROGRESS", forced)
    monkeypatch.setattr(sys, "stderr", type("Err", (), {"isatty": lambda self: terminal, "write": lambda self, s: None,
                                                         "flush": lambda self: None})())
    with quiet_progress(quiet):
        assert show_progress() is shown
        with progress_bar(range(3), desc="x") as bar:
            assert bar.disable is not shown and list(bar) == [0, 1, 2]  # a disabled bar still iterates
        assert progress_bar(total=3, enabled=False).disable
    assert show_progress() is (forced == "1" if forced else terminal)  # quiet ends with its block
