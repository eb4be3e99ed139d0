"""Analysis with known answers: buckets, Wilson intervals, slopes, bootstrap, reduction, scaling."""

import json
import math

import pytest

from probe.analysis import (
    bucket_of,
    buckets,
    count_dependence_reduction,
    decade_edges,
    scaling,
    summarize,
    wilson_interval,
)
from probe.analysis._analysis import bootstrap_slope_ci, count_dependence, logistic_fit, slope_per_decade, spearman
from probe.evaluation import adaptive_retrieval


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(0, 0) is None


def test_decade_buckets_zero_first_lo_inclusive_hi_exclusive():
    assert [bucket_of(c) for c in (0, 1, 9, 10, 99, 100, 999, 1000, 10**6)] == [
        (0, 1), (1, 10), (1, 10), (10, 100), (10, 100), (100, 1000), (100, 1000), (1000, 10000),
        (10**6, 10**7)]
    assert decade_edges(0) == [(0, 1)]
    assert decade_edges(500) == [(0, 1), (1, 10), (10, 100), (100, 1000)]
    got = buckets([0, 1, 9, 10, 99, 100, 1000], [1, 0, 1, 1, 1, 0, 1], min_bucket=2)
    assert [(b["lo"], b["hi"], b["n"], b["correct"], b["flagged"]) for b in got] == [
        (0, 1, 1, 1, True), (1, 10, 2, 1, False), (10, 100, 2, 2, False), (100, 1000, 1, 0, True),
        (1000, 10000, 1, 1, True)]
    # An empty decade in the middle is listed (n 0), not skipped.
    gap = buckets([0, 500], [0, 1], min_bucket=1)
    assert [(b["lo"], b["n"], b["accuracy"], b["ci"]) for b in gap][1:3] == [(1, 0, None, None), (10, 0, None, None)]


def test_slope_per_decade_least_squares():
    # x = log10(count + 1) = 0, 0, 1, 1, 2, 2; y = 0, 0, 0, 1, 1, 1 -> slope 0.5 exactly.
    assert slope_per_decade([0, 0, 9, 9, 99, 99], [0, 0, 0, 1, 1, 1]) == pytest.approx(0.5)
    assert slope_per_decade([5, 5, 5], [0, 1, 1]) is None  # no spread in counts
    assert slope_per_decade([3], [1]) is None


def test_bootstrap_interval_excludes_zero_for_a_real_trend_and_covers_it_without_one():
    counts = [0, 9, 99, 999] * 50
    trend = [0, 0, 1, 1] * 50
    lo, hi = bootstrap_slope_ci(counts, trend, n_boot=500, seed=1)
    assert 0 < lo < slope_per_decade(counts, trend) < hi
    flat = [(i // 4) % 2 for i in range(200)]  # half right at every count: no dependence
    lo, hi = bootstrap_slope_ci(counts, flat, n_boot=500, seed=1)
    assert lo < 0 < hi
    assert bootstrap_slope_ci(counts, trend, n_boot=500, seed=1) == bootstrap_slope_ci(counts, trend, n_boot=500, seed=1)


def test_spearman_and_logistic():
    assert spearman([1, 2, 3, 4], [0, 0, 1, 1]) == pytest.approx(2 / math.sqrt(5), abs=1e-9)
    assert spearman([1, 2, 3], [1, 1, 1]) is None
    counts = [0, 9, 99, 999] * 25
    correct = [0, 0, 1, 1] * 24 + [1, 1, 0, 0]  # mostly rising, not separable
    fit = logistic_fit(counts, correct)
    assert fit["converged"] and fit["slope"] > 0
    assert 9 < fit["count_at_half"] < 99  # the crossover sits between the 9 and 99 groups


def _preds(setting, correct):
    return [{"id": str(i), "setting": setting, "correct": bool(c), "em": bool(c), "contains": bool(c)}
            for i, c in enumerate(correct)]


def test_count_dependence_reduction_paired():
    counts = {str(i): {"id": str(i), "count": c, "status": "ok"} for i, c in enumerate([0, 0, 9, 9, 99, 99] * 20)}
    closed = _preds("closed_book", [0, 0, 0, 1, 1, 1] * 20)         # slope 0.5
    rag_flat = _preds("rag", [1, 1, 1, 1, 1, 1] * 20)               # slope 0 -> reduction 1
    rag_half = _preds("rag", [0, 1, 1, 1, 1, 1] * 20)               # slope 0.25 -> reduction 0.5
    r = count_dependence_reduction(closed, rag_flat, counts, n_boot=200)
    assert r["value"] == pytest.approx(1.0) and r["n"] == 120
    r = count_dependence_reduction(closed, rag_half, counts, n_boot=200)
    assert r["value"] == pytest.approx(0.5)
    assert r["ci"][0] <= 0.5 <= r["ci"][1]


def test_count_dependence_slope_difference_and_ratio_with_paired_intervals():
    counts = {str(i): {"id": str(i), "count": c, "status": "ok"} for i, c in enumerate([0, 0, 9, 9, 99, 99] * 20)}
    closed = _preds("closed_book", [0, 0, 0, 1, 1, 1] * 20)         # slope 0.5
    rag_half = _preds("rag", [0, 1, 1, 1, 1, 1] * 20)               # slope 0.25
    r = count_dependence(closed, rag_half, counts, n_boot=300)
    assert r["slope_difference"] == pytest.approx(0.25) and r["n"] == 120
    lo, hi = r["slope_difference_ci"]
    assert 0 < lo <= 0.25 <= hi
    assert r["reduction"] == pytest.approx(0.5) and r["reduction_ci"][0] <= 0.5 <= r["reduction_ci"][1]
    assert r["slope_closed_book_ci"][0] > 0 and "excludes 0" in r["note"]
    # paired: the same resampled questions for both settings. With rag = closed-book answers
    # on every question, each resample's difference is exactly 0, so the interval is [0, 0]
    # (independent resamples would spread it around 0).
    same = count_dependence(closed, _preds("rag", [0, 0, 0, 1, 1, 1] * 20), counts, n_boot=300)
    assert same["slope_difference_ci"] == [0.0, 0.0] and same["reduction"] == pytest.approx(0.0)
    # count >= 1 only (slope on log10(count), not log10(count + 1)) and zero-count beside it
    assert r["nonzero"]["n"] == 80 and r["nonzero"]["slope_closed_book"] == pytest.approx(0.5 / (math.log10(99) - math.log10(9)))
    assert r["nonzero"]["slope_rag"] == pytest.approx(0.0)
    assert r["zero_count"] == {"n": 40, "accuracy_closed_book": 0.0, "accuracy_rag": 0.5}


def test_count_dependence_ratio_is_null_with_a_reason_when_closed_book_is_flat():
    """A small model: closed-book accuracy barely depends on the count. The old ratio is huge
    and meaningless; `reduction` is null and the note says why; the difference is still there."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 400
    raw = rng.integers(0, 1000, size=n)
    counts = {str(i): {"id": str(i), "count": int(c), "status": "ok"} for i, c in enumerate(raw)}
    closed = _preds("closed_book", (rng.random(n) < 0.1).tolist())  # no dependence at all
    rag = _preds("rag", (rng.random(n) < 0.6).tolist())
    r = count_dependence(closed, rag, counts, n_boot=400)
    lo, hi = r["slope_closed_book_ci"]
    assert lo <= 0 <= hi
    assert r["reduction"] is None and r["reduction_ci"] is None
    assert "includes 0" in r["note"] and "slope_difference" in r["note"]
    assert r["slope_difference"] is not None and r["slope_difference_ci"] is not None
    old = count_dependence_reduction(closed, rag, counts, n_boot=0)["value"]
    assert old is not None  # the contract's ratio is still computed, for comparison
    # too few questions: no slope, a reason
    tiny = count_dependence(closed[:1], rag[:1], counts, n_boot=10)
    assert tiny["reduction"] is None and "no closed-book slope" in tiny["note"]


def test_summarize_has_the_contract_fields_and_excludes_unlinked():
    ids = range(60)
    counts = [{"id": str(i), "count": [0, 9, 99][i % 3], "status": "ok"} for i in ids]
    counts[0] = {"id": "0", "count": None, "status": "no_q_entity"}
    predictions = _preds("closed_book", [i % 3 != 0 for i in ids]) + _preds("rag", [True] * 60)
    summary = summarize(predictions, counts, min_bucket=25, n_boot=100, seed=0)
    json.dumps(summary)  # serialisable as summary.json
    cb = summary["settings"]["closed_book"]
    for key in ("accuracy", "buckets", "slope_per_decade", "slope_ci", "spearman"):
        assert key in cb
    assert cb["accuracy"] == pytest.approx(40 / 60)  # over all questions
    assert cb["n_unlinked"] == 1 and summary["n_unlinked"] == 1
    assert [(b["lo"], b["hi"], b["n"]) for b in cb["buckets"]] == [(0, 1, 19), (1, 10, 20), (10, 100, 20)]
    assert cb["buckets"][0]["accuracy"] == 0.0 and cb["buckets"][0]["flagged"]  # 19 < 25: flagged, kept
    assert cb["slope_per_decade"] > 0 and cb["slope_ci"][0] > 0
    assert summary["settings"]["rag"]["slope_per_decade"] == pytest.approx(0.0)
    assert summary["count_dependence_reduction"] == pytest.approx(1.0)
    cd = summary["count_dependence"]
    assert set(cd) >= {"slope_difference", "slope_difference_ci", "reduction", "reduction_ci", "note"}
    assert cd["reduction"] == pytest.approx(1.0) and cd["slope_difference"] == pytest.approx(cb["slope_per_decade"])
    assert cb["zero_count"]["n"] == 19 and cb["zero_count"]["accuracy"] == 0.0
    assert cb["slope_per_decade_nonzero"] == pytest.approx(0.0)  # 9 and 99 both right
    assert list(summary["settings"]) == ["closed_book", "rag"]


def test_scaling_fit_and_extrapolation():
    counts = [{"id": str(i), "count": c, "status": "ok"} for i, c in enumerate([5, 50, 5000, 5, 50, 5000, 5, 50, 5000, 5])]
    models = []
    for params, n_right in ((1e8, 1), (1e9, 2), (1e10, 3)):  # accuracy on count < 100: 0.1, 0.2, 0.3 of 7
        right = set([i for i, c in enumerate(counts) if c["count"] < 100][:n_right])
        models.append({"model": f"m{params:g}", "parameters": params,
                       "predictions": _preds("closed_book", [i in right or counts[i]["count"] >= 100 for i in range(10)])})
    result = scaling(models, counts, max_count=100, target_accuracy=1.0)
    assert [p["n"] for p in result["points"]] == [7, 7, 7]
    assert result["slope"] == pytest.approx(1 / 7) and result["r2"] == pytest.approx(1.0)
    # accuracy = 1/7 * (log10 P - 7): reaching 1.0 needs 10^14 parameters.
    assert math.log10(result["parameters_for_target"]) == pytest.approx(14.0)


def test_adaptive_retrieval_finds_the_crossover():
    n = 400
    counts = [{"id": str(i), "count": (i * 37) % 1000, "status": "ok"} for i in range(n)]
    low = [(i * 37) % 1000 < 100 for i in range(n)]
    closed = _preds("closed_book", [not x for x in low])  # knows the head, not the tail
    rag = _preds("rag", low)                              # retrieval rescues the tail, distracts the head
    result = adaptive_retrieval(closed, rag, counts, seed=3)
    assert result["n_fit"] == 200 and result["n_report"] == 200
    assert result["adaptive"]["accuracy"] == 1.0
    assert result["always"]["accuracy"] < 1.0 and result["never"]["accuracy"] < 1.0
    assert result["retrieved_share"] == pytest.approx(sum(low[int(i)] for i in range(n)) / n, abs=0.1)
    assert 90 <= result["threshold"] <= 101


def test_adaptive_retrieval_per_relation_on_count_and_popularity():
    """PopQA's choice: a threshold per relation, on popularity where the QA set has it, and on
    the count; both reported. Relation a crosses over at count 100, relation b at 10."""
    from probe.evaluation import adaptive_retrieval_by_relation

    n = 2000
    raw = [(i * 37) % 500 for i in range(n)]
    qa = [{"id": str(i), "relation": "a" if i % 2 else "b", "pop": 10 * raw[i]} for i in range(n)]
    low = [raw[i] < (100 if i % 2 else 30) for i in range(n)]
    counts = [{"id": str(i), "count": raw[i], "status": "ok"} for i in range(n)]
    closed, rag = _preds("closed_book", [not x for x in low]), _preds("rag", low)
    result = adaptive_retrieval_by_relation(closed, rag, counts, qa, seed=1)
    by_count, by_pop = result["count"], result["popularity"]
    assert 90 <= by_count["thresholds"]["a"] <= 101 and 20 <= by_count["thresholds"]["b"] <= 31
    assert 900 <= by_pop["thresholds"]["a"] <= 1010 and 200 <= by_pop["thresholds"]["b"] <= 310
    assert by_count["adaptive"]["accuracy"] >= 0.99 and by_pop["adaptive"]["accuracy"] >= 0.99
    pooled = adaptive_retrieval(closed, rag, counts, seed=1)
    assert pooled["adaptive"]["accuracy"] < 0.97  # one pooled threshold cannot fit both relations
    no_pop = adaptive_retrieval_by_relation(closed, rag, counts, [dict(r, pop=None) for r in qa], seed=1)
    assert no_pop["popularity"] is None and no_pop["count"]["thresholds"]
    assert adaptive_retrieval_by_relation(closed, rag, counts, [{"id": r["id"]} for r in qa]) is None


def test_oracle_curve_keeps_one_passage_source_and_reports_the_others():
    # Issue 16: gold passages for the count >= 1 questions, pseudo-oracle ("search") for the zero-count
    # ones; mixing them would draw a curve falling with the count. The curve keeps the gold ones only.
    count_of = [0, 0, 9, 9, 99, 99] * 20
    counts = [{"id": str(i), "count": c, "status": "ok"} for i, c in enumerate(count_of)]
    oracle = _preds("oracle", [1 if c == 0 else 0 for c in count_of])
    for p, c in zip(oracle, count_of):
        p["passage_source"] = "search" if c == 0 else "gold"
    entry = summarize(oracle + _preds("closed_book", [0] * 120), counts, n_boot=50)["settings"]["oracle"]
    assert entry["passage_source"] == "gold" and entry["pseudo_oracle"] is False
    assert entry["n"] == 80 and entry["accuracy"] == 0.0
    assert all(b["lo"] >= 1 for b in entry["buckets"] if b["n"])  # no zero-count question in the curve
    assert entry["by_passage_source"]["search"] == {"n": 40, "correct": 40, "accuracy": 1.0,
                                                    "accuracy_ci": wilson_interval(40, 40)}
    assert "40 question(s) with other passages" in entry["passage_source_note"]
    # No gold passage at all: a labelled pseudo-oracle from the most frequent source.
    for p in oracle:
        p["passage_source"] = "linked" if p["passage_source"] == "gold" else "search"
    entry = summarize(oracle, counts, n_boot=50)["settings"]["oracle"]
    assert entry["passage_source"] == "linked" and entry["pseudo_oracle"] is True and entry["n"] == 80
    # Predictions written before passage_source existed: one curve, as before.
    for p in oracle:
        del p["passage_source"]
    entry = summarize(oracle, counts, n_boot=50)["settings"]["oracle"]
    assert entry["n"] == 120 and "passage_source" not in entry
