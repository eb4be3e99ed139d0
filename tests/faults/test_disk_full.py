"""A full disk in each writing stage: one clear line, earlier outputs intact, then a resume.

The run folder is a small tmpfs the test mounts (root only; skipped elsewhere) and grows step
by step (`mount -o remount,size=...`): each too-small size stops `ltprobe run` in some stage
with a one-line error naming the file and saying to run again, leaves every output finished
before it byte for byte as it was, and the last size lets the job finish. Without root the same
is checked with RLIMIT_FSIZE (a file-size limit) on the stage commands.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.fault_job import CONFIG

LTPROBE = str(Path(sys.executable).parent / "ltprobe")
SIZES_KB = [150, 700, 2400, 2800, 3100, 3400, 3700, 4000, 6000, 8000]
"""tmpfs sizes tried in turn (the whole job writes about 5-6 MB)."""


def _can_mount(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], check=True)
    return True


def _digests(folder: Path) -> dict[str, str]:
    """Digests of the finished outputs: not the files rewritten at every start, nor a model
    folder without its completeness marker (training stopped there, and starts again)."""
    skip = {"manifest.json", ".ltprobe.lock", "run.log"}  # run.log: appended at every start
    unfinished_model = not (folder / "model" / "ltprobe_train.json").exists()
    return {name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()
            for name in [str(p.relative_to(folder))]
            if name not in skip and not (unfinished_model and name.startswith("model/"))}


def _stage(stderr: str) -> str:
    running = re.findall(r"\[([a-z-]+)\] running", stderr)
    return running[-1] if running else "start"


@pytest.mark.slow
def test_full_disk_in_each_stage_is_one_line_and_keeps_earlier_outputs(tmp_path):
    disk = tmp_path / "disk"
    if not _can_mount(disk):
        pytest.skip("mounting a tmpfs needs root")
    config = tmp_path / "job.yaml"
    config.write_text(CONFIG)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZES_KB[0]}k", "tmpfs", str(disk)], check=True)
    out = disk / "run"
    failed_in = []
    try:
        for size in SIZES_KB:
            subprocess.run(["mount", "-o", f"remount,size={size}k", str(disk)], check=True)
            before = _digests(out) if out.exists() else {}
            result = subprocess.run([LTPROBE, "run", str(config), "--out", str(out)],
                                    capture_output=True, text=True, timeout=900)
            after = _digests(out)
            changed = [name for name, digest in before.items() if after.get(name) != digest]
            assert changed == [], f"{size} kB: finished outputs changed or vanished: {changed}"
            if result.returncode == 0:
                break
            errors = [line for line in result.stderr.splitlines() if line.startswith("ltprobe: error:")]
            assert result.returncode == 2, result.stderr[-3000:]
            assert "Traceback" not in result.stderr, result.stderr[-3000:]
            assert len(errors) == 1 and "No space left on device" in errors[0], result.stderr[-3000:]
            assert "run the same command again" in errors[0]
            assert re.search(r"error: /\S+: No space", errors[0]), errors[0]  # names the file
            failed_in.append((size, _stage(result.stderr)))
        else:
            pytest.fail(f"the job never finished; stopped in {failed_in}")
        assert len({stage for _, stage in failed_in}) >= 3, failed_in
        assert (out / "report.html").exists() and (out / "summary.json").exists()
        leftovers = [p.name for p in out.rglob(".*") if p.name != ".ltprobe.lock"]
        assert leftovers == [], leftovers
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _no_big_files():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@pytest.mark.slow
def test_file_size_limit_in_a_stage_command_is_one_line(tiny_world, tmp_path):
    """A file-size limit (RLIMIT_FSIZE, no root needed) stops `ltprobe index` with one line."""
    out = tmp_path / "linked"
    linked = subprocess.run([LTPROBE, "link-corpus", "--corpus", str(tiny_world / "corpus.jsonl"),
                             "--kb", str(tiny_world / "kb.jsonl"), "--out", str(out), "--workers", "1"],
                            capture_output=True, text=True, timeout=600)
    assert linked.returncode == 0, linked.stderr[-2000:]
    before = _digests(out)
    index = subprocess.run([LTPROBE, "index", "--corpus", str(tiny_world / "corpus.jsonl"), "--linked", str(out),
                            "--out", str(tmp_path / "index")], capture_output=True, text=True, timeout=600,
                           preexec_fn=_no_big_files)
    assert index.returncode == 2, index.stderr[-3000:]
    assert "Traceback" not in index.stderr
    errors = [line for line in index.stderr.splitlines() if line.startswith("ltprobe: error:")]
    assert len(errors) == 1 and "File too large" in errors[0], index.stderr[-2000:]
    assert _digests(out) == before
    assert not (tmp_path / "index").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
