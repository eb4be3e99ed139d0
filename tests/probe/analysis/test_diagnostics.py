"""Warnings that keep a run whose model learned nothing from presenting a flat curve as a finding."""

from probe.analysis import diagnose, summarize
from probe.analysis._analysis import logistic_fit


def _summary(closed, rag):
    """A summary from per-bucket (count, n, correct) lists for closed-book and rag."""
    preds, counts, i = [], [], 0
    for setting, table in (("closed_book", closed), ("rag", rag)):
        j = 0
        for count, n, k in table:
            for m in range(n):
                qid = str(j)
                j += 1
                if setting == "closed_book":
                    counts.append({"id": qid, "count": count, "status": "ok"})
                preds.append({"id": qid, "setting": setting, "correct": m < k, "em": m < k, "contains": m < k})
                i += 1
    return summarize(preds, counts, min_bucket=20, n_boot=200, seed=0)


LEARNED_CB = [(0, 100, 1), (5, 100, 33), (50, 100, 97), (500, 100, 100)]
LEARNED_RAG = [(0, 100, 98), (5, 100, 98), (50, 100, 98), (500, 100, 99)]


def test_a_model_that_learned_gets_no_warning():
    assert diagnose(_summary(LEARNED_CB, LEARNED_RAG), trained_world=True) == []


def test_a_model_that_learned_nothing_is_named_in_plain_words():
    flat = [(0, 100, 2), (5, 100, 2), (50, 100, 3), (500, 100, 4)]
    codes = [w["code"] for w in diagnose(_summary(flat, LEARNED_RAG), trained_world=True)]
    assert "closed_book_near_zero" in codes and "closed_book_slope_includes_zero" in codes


def test_a_trained_world_model_that_misses_its_most_repeated_facts():
    weak = [(0, 100, 0), (5, 100, 10), (50, 100, 40), (500, 100, 60)]
    warnings = diagnose(_summary(weak, LEARNED_RAG), trained_world=True)
    assert [w["code"] for w in warnings] == ["facts_not_learned"]
    assert "60%" in warnings[0]["message"] and "100+" in warnings[0]["message"]
    # On real data nobody promised 95% on frequent facts: no such warning.
    assert diagnose(_summary(weak, LEARNED_RAG), trained_world=False) == []


def test_a_model_that_does_not_read_the_passage():
    no_reading = [(0, 100, 10), (5, 100, 40), (50, 100, 97), (500, 100, 100)]
    codes = [w["code"] for w in diagnose(_summary(LEARNED_CB, no_reading), trained_world=True)]
    assert codes == ["passages_not_read"]
    useless = [(0, 100, 1), (5, 100, 33), (50, 100, 97), (500, 100, 100)]
    codes = [w["code"] for w in diagnose(_summary(LEARNED_CB, useless), trained_world=False)]
    assert codes == ["retrieval_no_gain"]


def test_logistic_midpoint_is_never_a_negative_count():
    counts = [0, 9, 99, 999] * 25
    correct = [1, 1, 1, 1] * 20 + [0, 1, 1, 1] * 5  # above 50% already at count 0, rising a little
    fit = logistic_fit(counts, correct)
    assert fit["slope"] > 0 and fit["count_at_half"] is None and fit["above_half_at_zero"]
