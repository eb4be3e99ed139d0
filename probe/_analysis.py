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
  bootstrap resamples of the questions scored in both settings.
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


def bucket_of(count: int) -> tuple[int, int]:
    """The decade bucket `(lo, hi)` of a count."""
    if count < 1:
        return 0, 1
    lo = 10 ** int(math.floor(math.log10(count)))
    if lo * 10 <= count:  # floating point at exact powers of ten
        lo *= 10
    elif lo > count:
        lo //= 10
    return lo, lo * 10


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
    return {
        "n": n,
        "accuracy": n_correct / n if n else None,
        "accuracy_ci": wilson_interval(n_correct, n),
        "n_unlinked": n_unlinked,
        "n_errors": sum(1 for p in predictions if p.get("error")),
        "buckets": buckets(xs, ys, min_bucket=min_bucket, edges=edges),
        "slope_per_decade": slope,
        "slope_ci": bootstrap_slope_ci(xs, ys, n_boot=n_boot, seed=seed),
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


def summarize(predictions: Sequence[Mapping[str, Any]], counts: Iterable[Mapping[str, Any]], *,
              min_bucket: int = 20, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """`{"settings": {setting: summary}, "count_dependence_reduction": x, ...}` for summary.json.

    Extras beside the contract: `count_dependence_reduction_ci`, the same for the oracle
    setting (`count_dependence_reduction_oracle`, `..._oracle_ci`), and per setting `n`,
    `accuracy_ci`, `n_unlinked`, `n_errors`, `logistic`, `em`, `contains`, bucket `correct`
    and `flagged`.
    """
    table = _count_table(counts)
    by_setting: dict[str, list[Mapping[str, Any]]] = {}
    for p in predictions:
        by_setting.setdefault(p["setting"], []).append(p)
    linked_counts = [int(c["count"]) for c in table.values() if _linked(c)]
    edges = decade_edges(max(linked_counts, default=0))
    order = ["closed_book", "rag", "oracle"]
    names = sorted(by_setting, key=lambda s: (order.index(s) if s in order else len(order), s))
    settings = {name: summarize_setting(by_setting[name], table, edges=edges, min_bucket=min_bucket,
                                        n_boot=n_boot, seed=seed) for name in names}
    result: dict[str, Any] = {"settings": settings, "count_dependence_reduction": None,
                              "count_dependence_reduction_ci": None}
    for other, suffix in (("rag", ""), ("oracle", "_oracle")):
        if "closed_book" in by_setting and other in by_setting:
            r = count_dependence_reduction(by_setting["closed_book"], by_setting[other], table,
                                           n_boot=n_boot, seed=seed)
            result[f"count_dependence_reduction{suffix}"] = r["value"]
            result[f"count_dependence_reduction{suffix}_ci"] = r["ci"]
    result["n_unlinked"] = sum(1 for c in table.values() if not _linked(c))
    return result


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
