"""Accuracy against relevant-document count: buckets, intervals, slopes, scaling.

`summarize(predictions, counts)` gives the `settings` part of `summary.json` (contract) plus
`count_dependence_reduction`. Definitions:

- Buckets: decades of the count, the zero bucket first: [0, 1), [1, 10), [10, 100), ...;
  `lo` inclusive, `hi` exclusive, up to the decade of the largest count (empty decades in
  between are listed with `n` 0). Every setting uses the same buckets. Buckets with fewer than
  `min_bucket` questions are `flagged`, never dropped.
- `ci`: 95% Wilson score interval of the bucket's accuracy.
- `slope_per_decade`: least-squares slope of correctness (0/1) on log10(count + 1); `slope_ci`
  the 2.5 and 97.5 percentiles over `n_boot` bootstrap resamples of the questions.
- `spearman`: rank correlation of count and correctness (null when either is constant).
- `logistic`: maximum-likelihood logistic regression of correctness on log10(count + 1).
- Questions whose count status is not `ok` (no linked question or answer entity) are left out
  of buckets, slope and correlation and counted in `n_unlinked`; `accuracy` is over all.
- `count_dependence_reduction` = 1 - slope_rag / slope_closed_book, its interval from paired
  bootstrap resamples of the questions scored in both settings (kept for the contract; the
  ratio blows up or flips sign when the closed-book slope is near 0, so read `count_dependence`).
- `count_dependence` (issue 16): `slope_difference` = slope_closed_book - slope_rag with a
  paired bootstrap interval (the same resampled questions for both settings); `reduction` =
  1 - slope_rag / slope_closed_book with its interval only where the closed-book slope's
  paired-bootstrap interval excludes 0, else null with the reason in `note`. Beside them the
  same difference fitted on questions with count >= 1 (`nonzero`, slope on log10(count)) and
  the zero-count questions' accuracy per setting (`zero_count`).
- Per setting, `slope_per_decade_nonzero` / `slope_nonzero_ci`: the slope on log10(count)
  over questions with count >= 1, and `zero_count` `{"n", "accuracy", "ci"}` beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(correct: int, n: int, z: float = Z95) -> list[float] | None:
    """95% Wilson score interval of `correct / n` (None when n is 0)."""
    if n == 0:
        return None
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def decade_edges(max_count: int) -> list[tuple[int, int]]:
    """`[(0, 1), (1, 10), (10, 100), ...]` up to the bucket holding `max_count`."""
    edges = [(0, 1)]
    lo = 1
    while lo <= max_count:
        edges.append((lo, lo * 10))
        lo *= 10
    return edges


def bucket_of(count: float | None) -> tuple[int, int] | None:
    """The decade bucket `[lo, hi)` of a relevant-document count: 0 -> (0, 1), 1-9 -> (1, 10),
    10-99 -> (10, 100), ...; None for a missing count (None or NaN)."""
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return None
    count = int(count)
    if count < 1:
        return 0, 1
    lo = 10 ** int(math.floor(math.log10(count)))
    if lo * 10 <= count:  # floating point at exact powers of ten
        lo *= 10
    elif lo > count:
        lo //= 10
    return lo, lo * 10


def bucket_label(lo: float, hi: float) -> str:
    """`"0"`, `"1-9"`, `"10-99"`, `"1e3-1e4"` ... for a bucket `[lo, hi)`."""
    lo, hi = int(lo), int(hi)
    if hi - lo == 1:
        return str(lo)
    if hi <= 10_000:
        return f"{lo}-{hi - 1}"
    return f"1e{round(math.log10(max(lo, 1)))}-1e{round(math.log10(hi))}"


def buckets(counts: Sequence[int], correct: Sequence[bool], *, min_bucket: int = 20,
            edges: Sequence[tuple[int, int]] | None = None) -> list[dict[str, Any]]:
    """Per decade bucket: `lo`, `hi`, `n`, `correct`, `accuracy`, `ci` (Wilson), `flagged`."""
    if edges is None:
        edges = decade_edges(max(counts, default=0))
    tally = {edge: [0, 0] for edge in edges}
    for c, y in zip(counts, correct):
        t = tally.setdefault(bucket_of(int(c)), [0, 0])
        t[0] += 1
        t[1] += int(bool(y))
    result = []
    for (lo, hi), (n, k) in sorted(tally.items()):
        result.append({"lo": lo, "hi": hi, "n": n, "correct": k, "accuracy": k / n if n else None,
                       "ci": wilson_interval(k, n), "flagged": n < min_bucket})
    return result


def _slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes along the last axis (nan where x is constant)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    var = (xc * xc).sum(axis=-1)
    cov = (xc * (y - y.mean(axis=-1, keepdims=True))).sum(axis=-1)
    spread = var > 1e-12 * x.shape[-1]  # equal counts leave rounding noise, not spread
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread, cov / np.where(spread, var, 1), np.nan)


def slope_per_decade(counts: Sequence[int], correct: Sequence[bool]) -> float | None:
    """Least-squares slope of correctness on log10(count + 1); None when undefined."""
    if len(counts) < 2:
        return None
    value = float(_slope(np.log10(np.asarray(counts, float) + 1), np.asarray(correct, float)))
    return None if math.isnan(value) else value


def _boot_indices(n: int, n_boot: int, rng: np.random.Generator, chunk: int = 200) -> Iterable[np.ndarray]:
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def bootstrap_slope_ci(counts: Sequence[int], correct: Sequence[bool], *, n_boot: int = 1000,
                       seed: int = 0) -> list[float] | None:
    """2.5/97.5 percentiles of the slope over bootstrap resamples of the questions."""
    if len(counts) < 2 or n_boot <= 0:
        return None
    x = np.log10(np.asarray(counts, float) + 1)
    y = np.asarray(correct, float)
    rng = np.random.default_rng(seed)
    slopes = np.concatenate([_slope(x[idx], y[idx]) for idx in _boot_indices(len(x), n_boot, rng)])
    slopes = slopes[~np.isnan(slopes)]
    if slopes.size == 0:
        return None
    return [float(np.percentile(slopes, 2.5)), float(np.percentile(slopes, 97.5))]


def spearman(counts: Sequence[float], correct: Sequence[float]) -> float | None:
    """Spearman rank correlation (average ranks for ties); None when either side is constant."""
    if len(counts) < 2:
        return None
    from scipy.stats import rankdata

    a = rankdata(np.asarray(counts, float))
    b = rankdata(np.asarray(correct, float))
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def logistic_fit(counts: Sequence[int], correct: Sequence[bool], *, l2: float = 1e-6,
                 iterations: int = 100) -> dict[str, Any] | None:
    """Logistic regression of correctness on log10(count + 1) by Newton's method.

    Returns `intercept`, `slope` (log-odds per decade), `converged`, `count_at_half` (the count
    where the fitted accuracy crosses 0.5, when it is below 0.5 at count 0 and rising; else
    None) and `above_half_at_zero`. A tiny ridge
    term keeps separable data finite (then `converged` may be false).
    """
    if len(counts) < 2:
        return None
    x = np.log10(np.asarray(counts, float) + 1)
    y = np.asarray(correct, float)
    X = np.column_stack([np.ones_like(x), x])
    w = np.zeros(2)
    converged = False
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(X @ w, -30, 30)))
        grad = X.T @ (y - p) - l2 * w
        hess = -(X.T * (p * (1 - p))) @ X - l2 * np.eye(2)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        w = w - step
        if np.max(np.abs(step)) < 1e-8:
            converged = True
            break
    intercept, slope = float(w[0]), float(w[1])
    half = None
    if slope > 0 and intercept < 0:  # below 0.5 at count 0, rising: it crosses 0.5 at a count > 0
        exponent = -intercept / slope
        half = float(10 ** exponent - 1) if exponent < 300 else None
    return {"intercept": intercept, "slope": slope, "converged": converged, "count_at_half": half,
            "above_half_at_zero": intercept >= 0}


def _count_table(counts: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c["id"]): c for c in counts}


def _linked(record: Mapping[str, Any] | None) -> bool:
    return record is not None and record.get("status", "ok") == "ok" and record.get("count") is not None


def summarize_setting(predictions: Sequence[Mapping[str, Any]], counts: Mapping[str, Mapping[str, Any]], *,
                      edges: Sequence[tuple[int, int]], min_bucket: int = 20, n_boot: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    """The summary of one setting's predictions (see the module docstring)."""
    xs, ys = [], []
    n_unlinked = 0
    for p in predictions:
        c = counts.get(str(p["id"]))
        if _linked(c):
            xs.append(int(c["count"]))  # type: ignore[index]
            ys.append(bool(p["correct"]))
        else:
            n_unlinked += 1
    n = len(predictions)
    n_correct = sum(bool(p["correct"]) for p in predictions)
    slope = slope_per_decade(xs, ys)
    nonzero = [(x, y) for x, y in zip(xs, ys) if x >= 1]
    zero = [y for x, y in zip(xs, ys) if x == 0]
    nz_x = [x - 1 for x, _ in nonzero]  # log10((x - 1) + 1) = log10(x): decades of the count itself
    nz_y = [y for _, y in nonzero]
    return {
        "n": n,
        "accuracy": n_correct / n if n else None,
        "accuracy_ci": wilson_interval(n_correct, n),
        "n_unlinked": n_unlinked,
        "n_errors": sum(1 for p in predictions if p.get("error")),
        "buckets": buckets(xs, ys, min_bucket=min_bucket, edges=edges),
        "slope_per_decade": slope,
        "slope_ci": bootstrap_slope_ci(xs, ys, n_boot=n_boot, seed=seed),
        "slope_per_decade_nonzero": slope_per_decade(nz_x, nz_y),
        "slope_nonzero_ci": bootstrap_slope_ci(nz_x, nz_y, n_boot=n_boot, seed=seed),
        "zero_count": {"n": len(zero), "accuracy": sum(zero) / len(zero) if zero else None,
                       "ci": wilson_interval(sum(zero), len(zero))},
        "spearman": spearman(xs, ys),
        "logistic": logistic_fit(xs, ys),
        "em": _share(predictions, "em"),
        "contains": _share(predictions, "contains"),
    }


def _share(predictions: Sequence[Mapping[str, Any]], key: str) -> float | None:
    values = [bool(p[key]) for p in predictions if key in p]
    return sum(values) / len(values) if values else None


def count_dependence_reduction(pred_closed: Sequence[Mapping[str, Any]], pred_rag: Sequence[Mapping[str, Any]],
                               counts: Mapping[str, Mapping[str, Any]], *, n_boot: int = 1000,
                               seed: int = 0) -> dict[str, Any]:
    """`1 - slope_rag / slope_closed_book` on the linked questions scored in both settings,
    with a paired bootstrap interval. `value` is None when the closed-book slope is 0 or undefined."""
    closed = {str(p["id"]): bool(p["correct"]) for p in pred_closed}
    rag = {str(p["id"]): bool(p["correct"]) for p in pred_rag}
    ids = sorted(i for i in closed.keys() & rag.keys() if _linked(counts.get(i)))
    result: dict[str, Any] = {"value": None, "ci": None, "n": len(ids)}
    if len(ids) < 2:
        return result
    x = np.log10(np.array([counts[i]["count"] for i in ids], float) + 1)
    yc = np.array([closed[i] for i in ids], float)
    yr = np.array([rag[i] for i in ids], float)
    sc, sr = float(_slope(x, yc)), float(_slope(x, yr))
    if math.isnan(sc) or sc == 0 or math.isnan(sr):
        return result
    result["value"] = 1 - sr / sc
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        values = []
        for idx in _boot_indices(len(ids), n_boot, rng):
            bc, br = _slope(x[idx], yc[idx]), _slope(x[idx], yr[idx])
            with np.errstate(invalid="ignore", divide="ignore"):
                v = 1 - br / bc
            values.append(v[np.isfinite(v) & (bc != 0)])
        values_all = np.concatenate(values)
        if values_all.size:
            result["ci"] = [float(np.percentile(values_all, 2.5)), float(np.percentile(values_all, 97.5))]
    return result


def _percentiles(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def _paired(x: np.ndarray, yc: np.ndarray, yr: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """Slopes of both settings and their difference on the same questions, with intervals over
    the same bootstrap resamples of the questions (paired)."""
    sc, sr = float(_slope(x, yc)), float(_slope(x, yr))
    out: dict[str, Any] = {"n": int(len(x)), "slope_closed_book": None if math.isnan(sc) else sc,
                           "slope_closed_book_ci": None, "slope_rag": None if math.isnan(sr) else sr,
                           "slope_difference": None if math.isnan(sc - sr) else sc - sr,
                           "slope_difference_ci": None, "ratio_boot": np.zeros(0)}
    if n_boot <= 0 or len(x) < 2:
        return out
    rng = np.random.default_rng(seed)
    bcs, brs = [], []
    for idx in _boot_indices(len(x), n_boot, rng):
        bcs.append(_slope(x[idx], yc[idx]))
        brs.append(_slope(x[idx], yr[idx]))
    bc, br = np.concatenate(bcs), np.concatenate(brs)
    out["slope_closed_book_ci"] = _percentiles(bc)
    out["slope_difference_ci"] = _percentiles(bc - br)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["ratio_boot"] = np.where(bc != 0, 1 - br / np.where(bc != 0, bc, 1), np.nan)
    return out


def count_dependence(pred_closed: Sequence[Mapping[str, Any]], pred_rag: Sequence[Mapping[str, Any]],
                     counts: Mapping[str, Mapping[str, Any]], *, n_boot: int = 1000,
                     seed: int = 0) -> dict[str, Any]:
    """How much retrieval weakens the count dependence, soundly (issue 16; module docstring).

    `{"slope_difference", "slope_difference_ci", "reduction", "reduction_ci", "note", "n",
    "slope_closed_book", "slope_closed_book_ci", "slope_rag", "nonzero": {...}, "zero_count":
    {...}}`, on the linked questions scored in both settings.
    """
    closed = {str(p["id"]): bool(p["correct"]) for p in pred_closed}
    rag = {str(p["id"]): bool(p["correct"]) for p in pred_rag}
    ids = sorted(i for i in closed.keys() & rag.keys() if _linked(counts.get(i)))
    raw = np.array([counts[i]["count"] for i in ids], float)
    yc = np.array([closed[i] for i in ids], float)
    yr = np.array([rag[i] for i in ids], float)
    main = _paired(np.log10(raw + 1), yc, yr, n_boot, seed)
    ratios = main.pop("ratio_boot")
    result: dict[str, Any] = {"slope_difference": main["slope_difference"],
                              "slope_difference_ci": main["slope_difference_ci"],
                              "reduction": None, "reduction_ci": None, "note": None, **main}
    sc, ci = main["slope_closed_book"], main["slope_closed_book_ci"]
    if sc is None:
        result["note"] = (f"no closed-book slope on {len(ids)} questions scored in both settings "
                          "(too few, or every count equal): no reduction to report")
    elif ci is None:
        result["note"] = "no bootstrap interval of the closed-book slope (n_boot is 0): the ratio is not reported"
    elif ci[0] <= 0 <= ci[1]:
        result["note"] = (f"the closed-book slope's 95% interval [{ci[0]:+.3f}, {ci[1]:+.3f}] includes 0: "
                          "closed-book accuracy shows no count dependence to reduce, so the ratio "
                          "1 - slope_rag / slope_closed_book is undefined; read slope_difference")
    elif main["slope_rag"] is not None:
        result["reduction"] = 1 - main["slope_rag"] / sc
        result["reduction_ci"] = _percentiles(ratios)
        result["note"] = ("the closed-book slope's 95% interval excludes 0, so the ratio is reported; "
                          "intervals are paired bootstrap percentiles")
    mask = raw >= 1
    nonzero = _paired(np.log10(raw[mask]), yc[mask], yr[mask], n_boot, seed)
    nonzero.pop("ratio_boot")
    result["nonzero"] = {"slope_difference": nonzero["slope_difference"],
                         "slope_difference_ci": nonzero["slope_difference_ci"],
                         "slope_closed_book": nonzero["slope_closed_book"], "slope_rag": nonzero["slope_rag"],
                         "n": nonzero["n"]}
    zero = ~mask
    result["zero_count"] = {"n": int(zero.sum()),
                            "accuracy_closed_book": float(yc[zero].mean()) if zero.any() else None,
                            "accuracy_rag": float(yr[zero].mean()) if zero.any() else None}
    return result


def summarize(predictions: Sequence[Mapping[str, Any]], counts: Iterable[Mapping[str, Any]], *,
              min_bucket: int = 20, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """`{"settings": {setting: summary}, "count_dependence_reduction": x, ...}` for summary.json.

    Extras beside the contract: `count_dependence_reduction_ci`, `count_dependence` (closed
    book against rag; `count_dependence_oracle` against the oracle), the same for the oracle
    setting (`count_dependence_reduction_oracle`, `..._oracle_ci`), and per setting `n`,
    `accuracy_ci`, `n_unlinked`, `n_errors`, `logistic`, `em`, `contains`, bucket `correct`
    and `flagged`.
    """
    table = _count_table(counts)
    by_setting: dict[str, list[Mapping[str, Any]]] = {}
    for p in predictions:
        by_setting.setdefault(p["setting"], []).append(p)
    oracle_sources = None
    if by_setting.get("oracle"):
        by_setting["oracle"], oracle_sources = _one_passage_source(by_setting["oracle"])
    linked_counts = [int(c["count"]) for c in table.values() if _linked(c)]
    edges = decade_edges(max(linked_counts, default=0))
    from probe.evaluation import setting_order

    names = sorted(by_setting, key=setting_order)
    settings = {name: summarize_setting(by_setting[name], table, edges=edges, min_bucket=min_bucket,
                                        n_boot=n_boot, seed=seed) for name in names}
    if oracle_sources is not None:
        settings["oracle"].update(oracle_sources)
    result: dict[str, Any] = {"settings": settings, "count_dependence_reduction": None,
                              "count_dependence_reduction_ci": None,
                              "count_dependence": {
                                  "slope_difference": None, "slope_difference_ci": None, "reduction": None,
                                  "reduction_ci": None, "note": "needs the closed_book and rag settings"}}
    for other, suffix in (("rag", ""), ("oracle", "_oracle")):
        if "closed_book" in by_setting and other in by_setting:
            r = count_dependence_reduction(by_setting["closed_book"], by_setting[other], table,
                                           n_boot=n_boot, seed=seed)
            result[f"count_dependence_reduction{suffix}"] = r["value"]
            result[f"count_dependence_reduction{suffix}_ci"] = r["ci"]
            result[f"count_dependence{suffix}"] = count_dependence(
                by_setting["closed_book"], by_setting[other], table, n_boot=n_boot, seed=seed)
    result["n_unlinked"] = sum(1 for c in table.values() if not _linked(c))
    return result


def _one_passage_source(oracle: list[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], dict[str, Any] | None]:
    """The oracle predictions of one passage source, and what the summary says of the sources.

    An oracle curve is drawn from one kind of passage only (issue 16): the data set's gold
    passages where there are any, else the most frequent pseudo-oracle source; the others are
    reported beside it by accuracy (`by_passage_source`), never mixed into the buckets.
    Predictions without `passage_source` (written before it existed) are kept as they are."""
    sources: dict[str, list[bool]] = {}
    for p in oracle:
        sources.setdefault(p.get("passage_source") or "none", []).append(bool(p["correct"]))
    if set(sources) == {"none"}:
        return oracle, None
    main = "gold" if "gold" in sources else max(sources, key=lambda s: (len(sources[s]), s != "none"))
    kept = [p for p in oracle if (p.get("passage_source") or "none") == main]
    by_source = {s: {"n": len(ys), "correct": sum(ys), "accuracy": sum(ys) / len(ys),
                     "accuracy_ci": wilson_interval(sum(ys), len(ys))} for s, ys in sorted(sources.items())}
    note = None
    if len(sources) > 1:
        left_out = sum(len(ys) for s, ys in sources.items() if s != main)
        note = (f"the oracle curve uses the {main} passages only ({len(kept)} questions); {left_out} "
                f"question(s) with other passages are reported by source in by_passage_source")
    return kept, {"passage_source": main, "pseudo_oracle": main != "gold", "by_passage_source": by_source,
                  "passage_source_note": note}


def scaling(models: Sequence[Mapping[str, Any]], counts: Iterable[Mapping[str, Any]], *,
            max_count: int = 100, target_accuracy: float | None = None,
            setting: str = "closed_book") -> dict[str, Any]:
    """The original study's scaling analysis over several models.

    `models`: `{"model", "parameters", "predictions"}` each. Accuracy on low-count questions
    (linked, count < `max_count`) is fitted linearly against log10(parameters); returns the
    points, `slope` (accuracy per tenfold parameters), `intercept`, `r2`, and, for
    `target_accuracy`, `parameters_for_target` (10^((target - intercept) / slope), None when
    the slope is not positive).
    """
    table = _count_table(counts)
    points = []
    for m in models:
        ys = [bool(p["correct"]) for p in m["predictions"] if p.get("setting", setting) == setting
              and _linked(table.get(str(p["id"]))) and table[str(p["id"])]["count"] < max_count]
        points.append({"model": m["model"], "parameters": float(m["parameters"]), "n": len(ys),
                       "accuracy": sum(ys) / len(ys) if ys else None, "ci": wilson_interval(sum(ys), len(ys))})
    usable = [p for p in points if p["accuracy"] is not None and p["parameters"] > 0]
    result: dict[str, Any] = {"max_count": max_count, "setting": setting, "points": points, "slope": None,
                              "intercept": None, "r2": None, "target_accuracy": target_accuracy,
                              "parameters_for_target": None}
    if len({p["parameters"] for p in usable}) < 2:
        return result
    x = np.log10([p["parameters"] for p in usable])
    y = np.array([p["accuracy"] for p in usable])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = ((y - y.mean()) ** 2).sum()
    result.update(slope=float(slope), intercept=float(intercept),
                  r2=float(1 - (residual ** 2).sum() / total) if total > 0 else None)
    if target_accuracy is not None and slope > 0:
        exponent = (target_accuracy - intercept) / slope
        result["parameters_for_target"] = float(10 ** exponent) if exponent < 300 else math.inf
    return result


def summarize_models(predictions: Sequence[Mapping[str, Any]], counts: Iterable[Mapping[str, Any]], *,
                     parameters: Mapping[str, float] | None = None, min_bucket: int = 20, n_boot: int = 1000,
                     seed: int = 0, max_count: int = 100,
                     target_accuracy: float | None = None) -> dict[str, Any]:
    """The analysis part of `summary.json` for the predictions of one or several models.

    Predictions are grouped by their `model`, in order of first appearance; the first model is
    the primary one. The result holds `summarize`'s keys for the primary model (so the
    contract's `settings` and `count_dependence_reduction` mean what they mean for a single
    model) and, with several models, `models` (per model: `model`, `parameters`,
    `n_questions` and its own `summarize` keys) and `scaling` (`scaling` over the models whose
    `parameters` are known, in the closed-book setting when there is one, else the first).
    """
    counts = list(counts)
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for p in predictions:
        by_model.setdefault(str(p.get("model")), []).append(p)
    options = {"min_bucket": min_bucket, "n_boot": n_boot, "seed": seed}
    per_model = {name: summarize(preds, counts, **options) for name, preds in by_model.items()}
    result = dict(next(iter(per_model.values()))) if per_model else summarize([], counts, **options)
    if len(per_model) < 2:
        return result
    parameters = parameters or {}
    result["models"] = [{"model": name, "parameters": parameters.get(name),
                         "n_questions": len({str(p["id"]) for p in by_model[name]}), **summary}
                        for name, summary in per_model.items()]
    settings = [p["setting"] for p in predictions]
    setting = "closed_book" if "closed_book" in settings else settings[0]
    result["scaling"] = scaling([{"model": name, "parameters": parameters[name], "predictions": preds}
                                 for name, preds in by_model.items() if parameters.get(name)],
                                counts, max_count=max_count, target_accuracy=target_accuracy, setting=setting)
    return result


def diagnose(summary: Mapping[str, Any], *, trained_world: bool = False, min_bucket: int = 20) -> list[dict[str, str]]:
    """Plain warnings about what a run's numbers can and cannot show, for the headline and the
    report: a model that answers (almost) nothing, one that did not learn the facts its corpus
    repeats most, one that does not use the passages, a slope whose interval includes 0.

    `trained_world`: the model was trained on a generated world here, so it is expected to know
    the facts stated 100+ times and to read the passage (the demo's own criteria). Each warning
    is `{"code", "message"}`."""
    settings = summary.get("settings") or {}
    warnings: list[dict[str, str]] = []

    def usable(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [b for b in entry.get("buckets") or [] if b.get("n", 0) >= min_bucket and b.get("accuracy") is not None]

    cb, rag = settings.get("closed_book"), settings.get("rag")
    if isinstance(cb, Mapping) and usable(cb):
        top = max(usable(cb), key=lambda b: b["lo"])
        every = max(b["accuracy"] for b in usable(cb))
        ci = cb.get("slope_ci")
        if every < 0.1:
            warnings.append({"code": "closed_book_near_zero", "message": (
                f"closed-book accuracy is below 10% in every bucket (at most {every:.0%}): the model answers almost "
                "nothing, so the closed-book slope is no evidence about how knowledge depends on the count")})
        elif trained_world and top["lo"] >= 100 and top["accuracy"] < 0.95:
            warnings.append({"code": "facts_not_learned", "message": (
                f"the trained model did not learn the facts its corpus states most often: closed-book accuracy "
                f"{top['accuracy']:.0%} on questions with {top['lo']}+ relevant documents (the demo recipe "
                "reaches at least 95%); train longer, or check the recipe's precision and steps")})
        if ci and ci[0] <= 0 <= ci[1]:
            warnings.append({"code": "closed_book_slope_includes_zero", "message": (
                f"the closed-book slope's interval [{ci[0]:+.3f}, {ci[1]:+.3f}] includes 0: this run does not "
                "show that accuracy depends on the count, and any reduction by retrieval is undefined")})
    if isinstance(rag, Mapping) and usable(rag):
        zero = next((b for b in usable(rag) if b["lo"] == 0), None)
        if trained_world and zero is not None and zero["accuracy"] < 0.5:
            warnings.append({"code": "passages_not_read", "message": (
                f"with retrieval, accuracy on facts stated in no document is {zero['accuracy']:.0%}: the trained "
                "model did not learn to read the passage (the demo recipe reaches at least 50%)")})
        elif isinstance(cb, Mapping) and rag.get("accuracy") is not None and cb.get("accuracy") is not None \
                and rag["accuracy"] <= cb["accuracy"] + 0.02:
            warnings.append({"code": "retrieval_no_gain", "message": (
                f"retrieval does not raise accuracy ({cb['accuracy']:.1%} closed-book, {rag['accuracy']:.1%} with "
                "passages): the model may not use the passages, or retrieval finds the wrong ones (see recall@k)")})
    return warnings

def count_dependence_lines(summary: Mapping[str, Any]) -> list[str]:
    """`count_dependence` of a summary in plain lines (what `ltprobe run` and `ltprobe eval` print)."""
    lines = []
    for key, other in (("count_dependence", "rag"), ("count_dependence_oracle", "oracle")):
        cd = summary.get(key)
        if not isinstance(cd, Mapping) or cd.get("slope_difference") is None:
            continue
        ci = cd.get("slope_difference_ci")
        text = (f"count dependence ({other}): slope difference (closed_book - {other}) "
                f"{cd['slope_difference']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""))
        if cd.get("reduction") is not None:
            rci = cd.get("reduction_ci")
            text += f"; reduction {cd['reduction']:.2f}" + (f" [{rci[0]:.2f}, {rci[1]:.2f}]" if rci else "")
        else:
            text += f"; no reduction ratio: {cd.get('note')}"
        nonzero = cd.get("nonzero") or {}
        if nonzero.get("slope_difference") is not None:
            text += f"; on count >= 1: {nonzero['slope_difference']:+.3f}"
        lines.append(text)
    return lines
