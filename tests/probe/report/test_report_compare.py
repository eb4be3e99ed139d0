"""compare_runs and `ltprobe compare`: several runs side by side."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

import probe
from entity_linking.io import InputError
from tests.probe.report.test_report_html import _unbalanced_tags


def test_compare_writes_table_html_and_plots(synthetic_run, minimal_run, tmp_path):
    out = probe.compare_runs([synthetic_run, minimal_run], tmp_path / "cmp")
    assert out == tmp_path / "cmp" / "compare.html"
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert [r["run"] for r in rows] == ["full", "minimal"]
    for row, run_dir in zip(rows, (synthetic_run, minimal_run)):
        summary = json.loads((run_dir / "summary.json").read_text())
        for setting in ("closed_book", "rag", "oracle"):
            entry = summary["settings"][setting]
            assert float(row[f"{setting}_accuracy"]) == pytest.approx(entry["accuracy"])
            assert float(row[f"{setting}_slope"]) == pytest.approx(entry["slope_per_decade"])
            assert float(row[f"{setting}_slope_ci_low"]) == pytest.approx(entry["slope_ci"][0])
        assert float(row["count_dependence_reduction"]) == pytest.approx(summary["count_dependence_reduction"])
    assert rows[0]["recall_at_3"] and rows[1]["recall_at_3"] == ""  # absent in the minimal run
    md = (tmp_path / "cmp" / "compare.md").read_text().splitlines()
    assert md[0].startswith("| run | model |") and len(md) == 4 and "minimal-model" in md[3]
    text = out.read_text()
    assert "full" in text and "minimal" in text and "src='data:image/png;base64," in text
    assert _unbalanced_tags(text) == []
    for setting in ("closed_book", "rag", "oracle", "slopes"):
        assert (tmp_path / "cmp" / "plots" / f"compare_{setting}.png").exists()
        assert (tmp_path / "cmp" / "plots" / f"compare_{setting}.svg").exists()


def test_labels_same_folder_names_and_errors(minimal_run, tmp_path):
    a, b = tmp_path / "a" / "run", tmp_path / "b" / "run"
    shutil.copytree(minimal_run, a)
    shutil.copytree(minimal_run, b)
    probe.compare_runs([a, b], tmp_path / "cmp")
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert [r["run"] for r in rows] == ["a/run", "b/run"]
    probe.compare_runs([a, b], tmp_path / "cmp2", labels=["small", "large"])
    assert [r["run"] for r in csv.DictReader((tmp_path / "cmp2" / "compare.csv").open())] == ["small", "large"]
    with pytest.raises(InputError, match="1 label"):
        probe.compare_runs([a, b], tmp_path / "cmp3", labels=["x"])
    with pytest.raises(InputError, match="no such run folder"):
        probe.compare_runs([a, tmp_path / "missing"], tmp_path / "cmp4")


def test_cli_compare(synthetic_run, minimal_run, tmp_path, capsys):
    from tests.probe.report.test_report_html import _cli  # noqa: PLC0415

    assert _cli(["compare", str(synthetic_run), str(minimal_run), "--out", str(tmp_path / "c")]) == 0
    assert "compare.csv" in capsys.readouterr().out
    assert (tmp_path / "c" / "compare.html").exists()
