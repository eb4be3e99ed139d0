"""SQuAD normalisation, exact match and alias containment."""

import pytest

from probe.evaluation import contains_answer, exact_match, normalize_answer
from probe.evaluation._scoring import score


def test_normalize_answer_follows_squad():
    assert normalize_answer("  The  Eiffel-Tower! ") == "eiffeltower"
    assert normalize_answer("An apple, a pear") == "apple pear"
    assert normalize_answer("Ｔｏｋｙｏ") == "tokyo"  # full-width letters fold (NFKC)
    assert normalize_answer("Théâtre") == "théâtre"  # accents are kept, as in SQuAD


def test_exact_match_against_any_alias():
    aliases = ["Yuri Gagarin", "Gagarin"]
    assert exact_match("gagarin.", aliases)
    assert exact_match("The Yuri Gagarin", aliases)
    assert not exact_match("Yuri Gagarin was first", aliases)
    assert not exact_match("", ["", "a"])  # an empty prediction never matches an empty alias


def test_contains_matches_whole_words_only():
    assert contains_answer("He was a politician in Ohio", ["politician"])
    assert not contains_answer("the police came", ["pol"])  # PopQA's short alias, not a substring hit
    assert contains_answer("pol.", ["pol"])


def test_score_picks_the_configured_field():
    s = score("politician and writer", ["politician"], "contains")
    assert s == {"em": False, "contains": True, "correct": True}
    assert score("politician and writer", ["politician"])["correct"] is False
    with pytest.raises(ValueError):
        score("x", ["x"], "f1")
