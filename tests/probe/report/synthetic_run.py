"""A realistic run folder written in the contract's shapes from a small synthetic question set.

Used by the report tests until (and besides) the lead's `small_run` fixture, which runs the real
pipeline: this one is fast and lets the tests control every number (and every optional part).
The numbers are computed here from the records, the way the analysis does, so the report's
figures and text can be checked against them.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

SETTINGS = ("closed_book", "rag", "oracle")


def _bucket(count: int) -> tuple[int, int]:
    if count < 1:
        return (0, 1)
    lo = 10 ** (len(str(count)) - 1)
    return (lo, lo * 10)


def _wilson(k: int, n: int) -> list[float]:
    if n == 0:
        return [0.0, 0.0]
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


def make_run(out: Path, *, n: int = 300, seed: int = 0, rag_slope_factor: float = 0.25,
             closed_book_strength: float = 1.0, extras: bool = True, generation: bool = True,
             counterfactual: bool = True, model: str = "tiny-llama") -> dict:
    """Write a run folder at `out` and return its summary."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    qa, ents, counts, preds = [], [], [], []
    truth_diff, truth = [], []
    for i in range(n):
        qid = f"q{i}"
        person, city = f"Person {i}", f"City {i % 17}"
        qa.append({"id": qid, "question": f"Where was {person} born?", "answers": [city, city.upper()],
                   "q_entity": f"P{i}", "a_entity": f"C{i % 17}", "relation": "born_in"})
        if i % 40 == 39:  # an unlinked question now and then
            truth.append({"id": qid, "count": 3})
            truth_diff.append({"id": qid, "count": None, "true": 3, "status": "no_q_entity"})
            ents.append({"id": qid, "q_entities": [], "a_entities": [f"C{i % 17}"]})
            counts.append({"id": qid, "count": None, "q_count": 0, "a_count": 50, "pair": None,
                           "status": "no_q_entity"})
            continue
        count = 0 if rng.random() < 0.2 else int(10 ** rng.uniform(0, 3.3))
        ents.append({"id": qid, "q_entities": [f"P{i}"], "a_entities": [f"C{i % 17}"]})
        counts.append({"id": qid, "count": count, "q_count": count + rng.randint(0, 5),
                       "a_count": count + rng.randint(10, 100), "pair": [f"P{i}", f"C{i % 17}"],
                       "status": "ok"})
        true = count + 1 if i % 23 == 5 else max(count - 1, 0) if i % 31 == 7 else count
        truth.append({"id": qid, "count": true})
        if true != count:
            truth_diff.append({"id": qid, "count": count, "true": true, "status": "ok"})
        x = math.log10(count + 1)
        p_cb = min(0.97, 0.03 + 0.3 * closed_book_strength * x)
        p_rag = min(0.97, 0.55 + 0.3 * rag_slope_factor * x)
        for setting, p in zip(SETTINGS, (p_cb, p_rag, 0.9)):
            correct = rng.random() < p
            preds.append({"id": qid, "setting": setting, "model": model,
                          "prompt": f"Q: Where was {person} born?\nA:",
                          "completion": f" {city if correct else 'Nowhere'}", "correct": correct,
                          "em": correct, "contains": correct})
    # a second, smaller model for the scaling section
    for p in preds[: len(preds)]:
        if p["setting"] == "closed_book":
            preds.append({**p, "model": "tiny-llama-small", "correct": p["correct"] and rng.random() < 0.6})

    by_id = {c["id"]: c for c in counts}
    summary = {"model": model, "index": "embedded", "n_questions": n, "settings": {},
               "n_unlinked": sum(c["status"] != "ok" for c in counts)}
    for setting in SETTINGS:
        rows = [(by_id[p["id"]]["count"], p["correct"]) for p in preds
                if p["setting"] == setting and p["model"] == model and by_id[p["id"]]["status"] == "ok"]
        groups: dict[tuple[int, int], list[bool]] = {}
        for count, correct in rows:
            groups.setdefault(_bucket(count), []).append(correct)
        buckets = []
        for (lo, hi), values in sorted(groups.items()):
            k = sum(values)
            buckets.append({"lo": lo, "hi": hi, "n": len(values), "accuracy": k / len(values),
                            "ci": _wilson(k, len(values)), "flagged": len(values) < 20})
        xs = [math.log10(c + 1) for c, _ in rows]
        ys = [float(v) for _, v in rows]
        slope = _slope(xs, ys)
        boot = []
        for _ in range(200):
            idx = [rng.randrange(len(xs)) for _ in xs]
            boot.append(_slope([xs[j] for j in idx], [ys[j] for j in idx]))
        boot.sort()
        summary["settings"][setting] = {
            "accuracy": sum(ys) / len(ys), "buckets": buckets, "slope_per_decade": slope,
            "slope_ci": [boot[4], boot[194]], "spearman": 0.3 * (slope > 0), "n_unlinked": summary["n_unlinked"]}
    cb = summary["settings"]["closed_book"]["slope_per_decade"]
    summary["count_dependence_reduction"] = 1 - summary["settings"]["rag"]["slope_per_decade"] / cb
    if extras:
        # The toolkit's own analysis and retrieval measurements over these records (real code, so
        # the report is tested against the shapes the pipeline writes).
        from probe.analysis import scaling, summarize
        from probe.evaluation import adaptive_retrieval, recall_at_k, retrieval_precision

        primary = [p for p in preds if p["model"] == model]
        summary.update(summarize(primary, counts, min_bucket=20, n_boot=200, seed=seed))
        passages = {}
        for q in qa:  # the answer at a random rank (or missing), more often near the top for frequent facts
            texts = [f"A passage about someone else {j}." for j in range(20)]
            rank = rng.choice([0, 0, 1, 2, 4, 9, 15, None])
            if rank is not None:
                texts[rank] = f"{q['question'][10:-6]} was born in {q['answers'][0]}."
            passages[q["id"]] = texts
        summary["retrieval"] = {"recall_at_k": recall_at_k(passages, qa, counts),
                                "precision": retrieval_precision(passages, qa, 3)}
        summary["adaptive_retrieval"] = adaptive_retrieval(
            [p for p in primary if p["setting"] == "closed_book"], [p for p in primary if p["setting"] == "rag"],
            counts, seed=seed)
        small = [p for p in preds if p["model"] == "tiny-llama-small"]
        summary["scaling"] = scaling([{"model": "tiny-llama-small", "parameters": 1.3e6, "predictions": small},
                                      {"model": model, "parameters": 5.25e6, "predictions": primary}],
                                     counts, target_accuracy=0.9)
        summary["truth_agreement"] = {"n": n, "equal": n - len(truth_diff),
                                      "share": (n - len(truth_diff)) / n, "differences": truth_diff[:20]}

    def dump(name: str, records: list[dict]) -> None:
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    dump("qa.jsonl", qa)
    dump("qa_entities.jsonl", ents)
    dump("counts.jsonl", counts)
    dump("predictions.jsonl", preds)
    if extras:  # a generated world's true counts
        (out / "world").mkdir(exist_ok=True)
        dump("world/truth.jsonl", truth)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (out / "manifest.json").write_text(json.dumps({
        "config": {"world": {"people": 300, "seed": seed}, "eval": {"settings": list(SETTINGS), "shots": 3}},
        "versions": {"ltprobe": "0.1.0", "vllm": "0.32.0", "torch": "2.13.0+cpu"},
        "git_commit": "0123456789abcdef", "seeds": {"world": seed, "train": 0, "bootstrap": 0}}, indent=2))
    if generation:  # a LINK generation run in the shapes `ltprobe generate` writes
        gen = out / "generation"
        gen.mkdir(exist_ok=True)
        stmts, rules = [], {}
        for rule in ("allergy", "born_in"):
            rows = []
            for beam, base in (("head", -2.0), ("tail", -3.2)):
                for j in range(25):
                    count = int(10 ** rng.uniform(2, 3) if beam == "head" else 10 ** rng.uniform(0, 1))
                    rows.append({"id": f"{rule}:{beam}:{j}", "rule": rule, "beam": beam, "rank": j,
                                 "values": {"P": "PersonX", "A": f"value {beam} {j}"},
                                 "statement": f"If PersonX is allergic to {beam} {j}, PersonX cannot eat it.",
                                 "statement_full": f"PersonX is allergic to {beam} {j}. So PersonX cannot eat it.",
                                 "loglik": base + rng.gauss(0, 0.4), "count": count, "count_status": "ok",
                                 "score": base, "critic": {"mean": 0.9, "checks": {"fact": 0.9}},
                                 "thresholds": {"fact": 0.85}, "partial": "PersonX is allergic to ..."})
            stmts += rows

            def describe(xs):
                return {"n": len(xs), "mean": sum(xs) / len(xs), "median": sorted(xs)[len(xs) // 2],
                        "min": min(xs), "max": max(xs)}

            ll = {b: describe([r["loglik"] for r in rows if r["beam"] == b]) for b in ("head", "tail")}
            cnt = {b: dict(describe([float(r["count"]) for r in rows if r["beam"] == b]), zero=0, unlinked=0,
                           mean_log10=sum(math.log10(r["count"] + 1) for r in rows if r["beam"] == b) / 25)
                   for b in ("head", "tail")}
            rules[rule] = {"status": "ok", "domain": "food", "n": {"head": 25, "tail": 25},
                           "loglik": dict(ll, gap=ll["head"]["mean"] - ll["tail"]["mean"],
                                             gap_ci=[ll["head"]["mean"] - ll["tail"]["mean"] - 0.3,
                                                     ll["head"]["mean"] - ll["tail"]["mean"] + 0.3]),
                           "count": dict(cnt, gap_log10=cnt["head"]["mean_log10"] - cnt["tail"]["mean_log10"]),
                           "overlap": 0, "critic": {b: describe([0.9] * 25) for b in ("head", "tail")},
                           "steps": [{"variable": "A", "calls": 2, "accepted": 25}],
                           "probing": {"n": 100, "accuracy": 0.6, "head": {"n": 50, "accuracy": 0.7},
                                       "tail": {"n": 50, "accuracy": 0.5}, "gap": 0.2}}
        dump("generation/statements.jsonl", stmts)
        gaps = [r["loglik"]["gap"] for r in rules.values()]
        (gen / "generation_summary.json").write_text(json.dumps({
            "models": {"knowledge": "tiny", "critic": "tiny", "oracle": "tiny", "probe": "tiny"},
            "reranker": "likelihood", "index": None, "config": {"beam_size": 25, "samples": 50},
            "n_statements": len(stmts), "mean_loglik_gap": sum(gaps) / len(gaps),
            "probing": {"n": 200, "accuracy": 0.6, "head": {"n": 100, "accuracy": 0.7},
                        "tail": {"n": 100, "accuracy": 0.5}, "gap": 0.2,
                        "by_template": {"yes_no": {"head": {"n": 50, "accuracy": 0.7},
                                                   "tail": {"n": 50, "accuracy": 0.5}}},
                        "by_polarity": {"original": {"head": {"n": 50, "accuracy": 0.8},
                                                     "tail": {"n": 50, "accuracy": 0.6}}}},
            "rules": rules, "warnings": []}))
    if counterfactual:
        cf_buckets = [{"lo": lo, "hi": hi, "n": 10, "docs_removed": dr, "before": b, "after": a,
                       "drop": b - a, "drop_ci": [b - a - 0.2, b - a + 0.2]}
                      for lo, hi, dr, b, a in ((1, 10, 40, 0.2, 0.1), (10, 100, 400, 0.6, 0.2),
                                               (100, 1000, 3000, 0.9, 0.3))]
        (out / "counterfactual.json").write_text(json.dumps({"buckets": cf_buckets, "control": {
            "n": 30, "before": 0.5, "after": 0.48, "drop": 0.02, "drop_ci": [-0.1, 0.14]}}))
    return summary
