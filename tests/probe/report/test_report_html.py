"""write_report, the headline, the figures and `ltprobe report` on run folders with known numbers."""

from __future__ import annotations

import argparse
import json
import re
import shutil

import numpy as np
import pytest
from matplotlib.image import imread

import probe
from entity_linking.io import InputError
from probe.report._plots import plot_accuracy_vs_count
from probe.report._report import headline

SECTIONS = ["Finding", "Accuracy against relevant-document count", "Count dependence", "Retrieval",
            "Scaling across model sizes", "Counts against the world&#x27;s true counts",
            "Causal check: retraining without the relevant documents", "Long-tail test statements (LINK)",
            "Run manifest"]
FIGURES = ["accuracy_vs_count", "slopes", "recall_at_k", "scaling", "counterfactual", "link_head_tail"]


@pytest.fixture(scope="module")
def full_report(synthetic_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full_report") / "run"
    shutil.copytree(synthetic_run, run_dir)
    return probe.write_report(run_dir)


def _unbalanced_tags(text: str) -> list[str]:
    """Open/close tag mismatches of an HTML document (void elements aside)."""
    from html.parser import HTMLParser

    void = {"meta", "img", "br", "hr", "link", "input"}
    problems: list[str] = []
    stack: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in void:
                stack.append(tag)

        def handle_endtag(self, tag):
            if not stack or stack[-1] != tag:
                problems.append(f"</{tag}> closes <{stack[-1] if stack else None}> at {self.getpos()}")
            else:
                stack.pop()

    Checker().feed(text)
    return problems + [f"<{t}> never closed" for t in stack]


def _h2(text: str) -> list[str]:
    return re.findall(r"<h2>([^<]*)</h2>", text)


def test_full_report_has_every_section_and_is_self_contained(full_report):
    text = full_report.read_text()
    assert full_report.name == "report.html"
    assert _h2(text) == SECTIONS
    assert "could not be drawn" not in text
    assert _unbalanced_tags(text) == []
    # self-contained: every image is embedded, nothing is fetched
    sources = re.findall(r"""(?:src|href)=['"]([^'"]*)['"]""", text)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert len(sources) == len(FIGURES)
    summary = json.loads((full_report.parent / "summary.json").read_text())
    # the numbers in the text are the summary's
    assert f"{summary['settings']['closed_book']['slope_per_decade']:+.3f}" in text
    assert f"{summary['count_dependence_reduction']:.0%}" in text
    assert "0123456789abcdef" in text  # the manifest's commit
    assert ("Setup: a generated controlled world of 300 people (seed 0); the model tiny-llama; evaluated "
            "closed-book, retrieval (RAG), oracle passage with 3-shot closed-book prompts.") in text
    assert f"{summary['scaling']['parameters_for_target']:.2g}" in text  # scaling extrapolation
    assert "of the top-3 passages contain an answer alias" in text  # retrieval precision
    assert "retrieve when count &lt; " in text  # adaptive retrieval threshold
    link = text[text.index("Long-tail test statements"):text.index("Run manifest")]
    assert "Per rule (generation_summary.json)" in link and "Probing: does the model judge" in link
    row = r"<td>allergy</td><td>25</td><td>25</td><td>-2\.\d\d</td><td>-3\.\d\d</td><td>\+1\.\d\d</td>"
    assert re.search(row, link)
    assert re.search(r"<td>\[\+\d\.\d\d, \+\d\.\d\d\] excludes 0</td>", link)  # the gap's bootstrap interval


def test_truth_section_says_where_and_why_counts_differ(full_report):
    import pandas as pd

    run_dir = full_report.parent
    counts = pd.read_json(run_dir / "counts.jsonl", lines=True)
    truth = pd.read_json(run_dir / "world" / "truth.jsonl", lines=True).rename(columns={"count": "true"})
    merged = counts.merge(truth, on="id")
    equal = int((merged["count"] == merged["true"]).sum())
    higher = int((merged["count"] > merged["true"]).sum())
    lower = int((merged["count"] < merged["true"]).sum())
    unlinked = int(merged["count"].isna().sum())
    assert equal + higher + lower + unlinked == len(merged) and higher and lower and unlinked
    text = full_report.read_text()
    section = text[text.index("Counts against the world"):text.index("Causal check")]
    cells = re.sub(r"<[^>]+>", "|", section)
    assert f"|equal||{equal}||{equal / len(merged):.1%}|" in cells
    assert f"|higher than true||{higher}|" in cells and f"|lower than true||{lower}|" in cells
    assert f"|no count||{unlinked}|" in cells
    assert "Where: by true count" in section and "Examples (" in section


def test_plots_are_written_readable_at_paper_size(full_report):
    plots = full_report.parent / "plots"
    for name in FIGURES:
        png, svg = plots / f"{name}.png", plots / f"{name}.svg"
        assert png.stat().st_size > 10_000 and svg.read_text().lstrip().startswith("<?xml")
        image = imread(png)
        assert image.shape[1] == 1300  # 6.5 inches at 200 dpi
        assert image[..., :3].std() > 0.05  # not blank


def test_headline_says_what_the_numbers_say(synthetic_run):
    summary = json.loads((synthetic_run / "summary.json").read_text())
    text = " ".join(headline(summary))
    assert text.startswith("Closed-book accuracy rises with the number of relevant pretraining documents")
    assert "Retrieval reduces the dependence of accuracy on the count by" in text
    assert "had no linked entity" in text

    flat = json.loads(json.dumps(summary))
    flat["settings"]["closed_book"]["slope_ci"] = [-0.01, 0.05]
    flat["count_dependence_reduction"] = -0.3
    flat.pop("count_dependence_reduction_ci")
    text = " ".join(headline(flat))
    assert "shows no clear dependence (the slope's interval includes 0)" in text
    assert "does not reduce the dependence" in text and "reduction -30%" in text

    flat["settings"]["closed_book"]["slope_ci"] = [-0.3, -0.1]
    assert "Closed-book accuracy falls" in headline(flat)[0]
    assert headline({}) == ["This run has no accuracy results yet (summary.json has no settings)."]

    flat["settings"]["closed_book"].update(accuracy=0.0, slope_per_decade=0.0, slope_ci=[0.0, 0.0])
    assert headline(flat)[0].startswith("Closed-book accuracy is 0% on every question, so this run cannot show")


def test_setup_sentence_from_a_pipeline_config():
    from probe.report._report import setup_sentence

    config = {"world": {"seed": 7, "people": 2000}, "model": {"train": {"steps": 3100, "hidden_size": 256,
                                                                          "layers": 4}},
              "eval": {"settings": ["closed_book", "rag"], "shots": 3, "scoring": "em"}, "rag": {"k": 3},
              "index": {"backend": "embedded"}}
    assert setup_sentence({"config": config}, {}) == (
        "Setup: a generated controlled world of 2,000 people (seed 7); a model trained on its corpus for "
        "3,100 steps (hidden size 256, 4 layers); evaluated closed-book, retrieval (RAG) with 3-shot "
        "closed-book prompts and the top 3 retrieved passage(s) for retrieval, scored by exact match; "
        "counts from the embedded index.")
    assert setup_sentence({}, {}) is None
    assert setup_sentence({"config": {"data": {"qa": "nq_open"}, "model": {"path": "gpt2"}}}, {}) == \
        "Setup: questions from nq_open; the model gpt2."


def test_minimal_run_gives_the_contract_sections_only(minimal_run, tmp_path):
    out = probe.write_report(minimal_run, tmp_path / "elsewhere" / "r.html")
    text = out.read_text()
    assert _h2(text) == ["Finding", "Accuracy against relevant-document count", "Count dependence", "Run manifest"]
    assert "No manifest.json" in text
    assert sorted(p.name for p in (tmp_path / "elsewhere" / "plots").iterdir()) == \
        ["accuracy_vs_count.png", "accuracy_vs_count.svg", "slopes.png", "slopes.svg"]


def test_odd_shapes_of_optional_parts_never_fail(minimal_run, tmp_path, caplog):
    run_dir = tmp_path / "odd"
    shutil.copytree(minimal_run, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update({"scaling": "not run", "truth_agreement": 0.97, "adaptive_retrieval": [1, 2],
                    "retrieval": {"precision": {"overall": 0.4, "buckets": [{"lo": 0, "hi": 1, "precision": 0.3},
                                                                            {"lo": 1, "hi": 10, "precision": 0.5}]},
                                  # recall@k laid out per k instead of per bucket
                                  "recall_at_k": {"1": {"overall": 0.25, "buckets": [
                                      {"lo": 0, "hi": 1, "n": 4, "recall": 0.125},
                                      {"lo": 1, "hi": 10, "n": 4, "recall": 0.375}]},
                                      "5": {"overall": 0.5, "buckets": [{"lo": 0, "hi": 1, "n": 4, "recall": 0.5}]}}},
                    "a_new_figure": {"nested": {"value": 3.5}}})
    summary["settings"]["rag"]["buckets"].append({"lo": 5})  # a bucket without hi is ignored
    # an empty decade, as the analysis lists between filled ones
    summary["settings"]["closed_book"]["buckets"].append({"lo": 10**4, "hi": 10**5, "n": 0, "accuracy": None,
                                                          "ci": None, "flagged": True})
    (run_dir / "summary.json").write_text(json.dumps(summary))
    # a counterfactual.json of the wrong shape: the section says so, the report is written
    (run_dir / "counterfactual.json").write_text(json.dumps({"buckets": [{"n": 3}]}))
    text = probe.write_report(run_dir).read_text()
    assert "Retrieval precision: <b>0.40</b> overall" in text
    assert (run_dir / "plots" / "retrieval_precision.png").exists()
    assert (run_dir / "plots" / "recall_at_k.png").exists() and "recall@5" in text and "0.38" in text
    assert "a_new_figure.nested.value" in text and "3.5" in text
    assert "<td>1e4-1e5</td><td>0</td><td>–</td>" in text
    assert "Other figures in summary.json" in text
    assert "This section could not be drawn" in text  # the malformed counterfactual only
    assert text.count("could not be drawn") == 1
    (warning,) = [r for r in caplog.records if "could not be drawn" in r.getMessage()]  # logged, not printed
    assert warning.levelname == "WARNING" and "section 'Causal check" in warning.getMessage()


def test_accuracy_figure_draws_the_buckets(synthetic_run):
    run = probe.load_run(synthetic_run)
    frames = {s: run.buckets(s) for s in run.settings}
    fig = plot_accuracy_vs_count(frames)
    top, hist = fig.axes[0], fig.axes[1]
    assert hist.get_xscale() == "symlog" and top.get_xscale() == "symlog"  # shared log count axis
    assert top.get_xlim()[0] == 0  # the zero-count bucket is on the axis
    plotted = [line.get_ydata() for line in top.get_lines() if line.get_linestyle() == "-"]
    assert len(plotted) == 3
    for ydata, frame in zip(plotted, frames.values()):
        assert np.allclose(ydata, frame["accuracy"])
    heights = [p.get_height() for p in hist.patches]
    assert heights == list(frames["closed_book"]["n"])
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["closed-book", "retrieval (RAG)", "oracle passage"]


def _cli(argv):
    """Parse with a parser holding only this area's commands (others' modules may be in progress)."""
    from probe.cli import Commands
    from probe.cli import _report as _cli_report

    parser = argparse.ArgumentParser(prog="ltprobe")
    sub = parser.add_subparsers(dest="command")
    bench = sub.add_parser("bench").add_subparsers()
    _cli_report.register(Commands(sub, bench))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_report_and_its_errors(minimal_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(minimal_run, run_dir)
    assert _cli(["report", "--run", str(run_dir)]) == 0
    assert f"report: {run_dir / 'report.html'}" in capsys.readouterr().out
    assert (run_dir / "report.html").exists()
    with pytest.raises(InputError, match="no such run folder"):
        _cli(["report", "--run", str(tmp_path / "nope")])
    with pytest.raises(SystemExit):
        _cli(["report", "--help"])
    helptext = capsys.readouterr().out
    assert "report.html" in helptext and "--on-error" in helptext and "--generation" in helptext


def test_ltprobe_main_prints_one_line_for_user_errors(tmp_path, capsys):
    from probe import cli

    try:
        status = cli.main(["report", "--run", str(tmp_path / "nope")])
    except AttributeError as exc:  # another area's command module is still being written
        pytest.skip(f"ltprobe's parser cannot be built yet: {exc}")
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "no such run folder" in err[0]


def test_count_dependence_is_reported_and_the_ratio_withheld_when_undefined(full_report, synthetic_run):
    """Issue 16: the slope difference with its paired interval; no ratio where the closed-book
    slope's interval includes 0, and the reason in its place."""
    text = full_report.read_text()
    summary = json.loads((full_report.parent / "summary.json").read_text())
    cd = summary["count_dependence"]
    assert "Slope difference, closed-book minus retrieval" in text
    assert f"{cd['slope_difference']:+.3f}" in text and "at count 0" in text
    assert "slope on count ≥ 1" in text
    flat = json.loads((synthetic_run / "summary.json").read_text())
    flat["count_dependence"].update(reduction=None, reduction_ci=None,
                                    note="the closed-book slope's 95% interval [-0.010, +0.050] includes 0")
    sentence = " ".join(headline(flat))
    assert "no reduction ratio is reported because the closed-book slope's 95% interval" in sentence
    assert "Retrieval reduces the dependence" not in sentence
