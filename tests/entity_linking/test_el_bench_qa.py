"""`ltprobe bench qa-link` on the real data (fewer EntityQuestions questions than the default)."""

from __future__ import annotations

import json

import pytest

from tests.paths import SHARED_DATA


@pytest.mark.slow
def test_bench_qa_link(cli, capsys):
    data = SHARED_DATA / "real"
    if not (data / "mintaka" / "mintaka_dev.json").exists():
        pytest.skip("shared data not available")
    status, out, err = cli(capsys, "bench", "qa-link", "--data", data, "--eq-per-relation", "30")
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    before, after = result["before"], result["after"]
    assert result["questions"]["mintaka"] == 2000 and result["corpus_docs"] > 3000
    # the new defaults: far fewer false question entities, little recall lost on named gold
    assert after["mintaka"]["precision"] > before["mintaka"]["precision"] + 0.2
    assert after["entityquestions"]["precision"] > before["entityquestions"]["precision"] + 0.3
    assert after["mintaka_named"]["recall"] >= before["mintaka_named"]["recall"]
    # namesakes: the question no longer commits to the one the corpus did not choose
    assert after["google_re_counts"]["missed"] < before["google_re_counts"]["missed"]
    assert after["google_re_counts"]["exact"] > before["google_re_counts"]["exact"]
    assert "before" in err and "after nil=0.2" in err
