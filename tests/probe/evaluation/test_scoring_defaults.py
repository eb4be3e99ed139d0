"""Scoring defaults follow each QA set's publication (issue 16): PopQA by alias containment."""

from probe.cli import build_parser
from probe.cli._eval import _scoring
from probe.data import default_scoring
from probe.pipeline import load_config


def test_popqa_preset_is_scored_by_containment_by_default():
    assert default_scoring("popqa") == "contains"
    assert default_scoring("trivia_qa") == default_scoring("nq_open") == default_scoring(None) == "em"
    parser = build_parser()
    base = ["--qa", "popqa", "--model", "m", "--out", "o"]
    for command in ("eval", "rag"):
        extra = ["--index", "ix"] if command == "rag" else []
        assert _scoring(parser.parse_args([command, *base, "--preset", "popqa", *extra])) == "contains"
        assert _scoring(parser.parse_args([command, *base, "--preset", "popqa", "--scoring", "em", *extra])) == "em"
        assert _scoring(parser.parse_args([command, *base, "--preset", "trivia_qa", *extra])) == "em"


def test_the_demo_keeps_exact_match_explicitly():
    assert load_config(None)["eval"]["scoring"] == "em"
    assert load_config(None, ["data.preset=popqa", "eval.scoring=null"])["eval"]["scoring"] is None
