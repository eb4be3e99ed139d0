"""`ltprobe bench link` on a small generated world (the full size runs from the CLI)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_bench_link_small(cli, capsys):
    status, out, err = cli(capsys, "bench", "link", "--docs", "400", "--aliases", "4000")
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("docs_per_s_per_core", "spacy_docs_per_s_per_core", "agreement", "f1", "ambiguous_f1",
                "peak_rss_mb_1x", "peak_rss_mb_5x"):
        assert key in result, key
    assert result["docs"] == 400 and result["aliases"] >= 4000
    assert result["agreement"] >= 0.99
    assert result["f1"] >= 0.95 and result["ambiguous_f1"] >= 0.85 and result["ambiguous_mentions"] > 50
    assert result["docs_per_s_per_core"] > result["spacy_docs_per_s_per_core"]
    assert result["peak_rss_mb_5x"] <= 1.2 * result["peak_rss_mb_1x"]
    assert "fast path" in err and "spaCy component" in err


@pytest.mark.slow
def test_bench_scale_small(cli, capsys):
    pytest.importorskip("ray")
    status, out, err = cli(capsys, "bench", "scale", "--docs", "600", "--aliases", "2000", "--files", "4")
    assert status == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("docs_per_s_1", "docs_per_s_2", "efficiency", "local_docs_per_s_1", "local_docs_per_s_2"):
        assert result[key] > 0, key
    assert result["identical_shards"] is True
