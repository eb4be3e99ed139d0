"""Check a demo-style run folder (a generated world) against the demo's science criteria
(issue 21): closed-book slope interval above 0, closed-book accuracy >= 0.95 on questions with
100+ relevant documents, retrieval accuracy >= 0.5 on zero-count questions, and counts equal to
the world's true counts. Reads only the run's own files.

    python scripts/check_demo_criteria.py RUN [RUN ...]

Prints one line per run and exits 1 when a run misses a criterion.
"""

import json
import sys
from pathlib import Path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check(run: Path) -> bool:
    summary = json.loads((run / "summary.json").read_text())
    if not {"closed_book", "rag"} <= set(summary["settings"]):
        print(f"{run}: needs the closed_book and rag settings, has {sorted(summary['settings'])}: FAIL")
        return False
    closed, rag = summary["settings"]["closed_book"], summary["settings"]["rag"]
    frequent = [b for b in closed["buckets"] if b["lo"] >= 100]
    n_frequent = sum(b["n"] for b in frequent)
    acc_frequent = sum(b["accuracy"] * b["n"] for b in frequent) / max(1, n_frequent)
    zero = next((b for b in rag["buckets"] if b["lo"] == 0), {"n": 0, "accuracy": 0.0})
    truth = {t["id"]: t["count"] for t in _lines(run / "world" / "truth.jsonl")}
    counts = _lines(run / "counts.jsonl")
    exact = sum(truth[c["id"]] == c["count"] for c in counts)
    passed = (closed["slope_ci"][0] > 0 and n_frequent > 0 and acc_frequent >= 0.95
              and zero["n"] > 0 and zero["accuracy"] >= 0.5 and exact == len(counts))
    lo, hi = closed["slope_ci"]
    print(f"{run}: closed-book slope {closed['slope_per_decade']:+.3f} [{lo:+.3f}, {hi:+.3f}]; "
          f"accuracy on 100+ {acc_frequent:.2f} (n {n_frequent}); retrieval on count 0 {zero['accuracy']:.3f} "
          f"(n {zero['n']}); counts exact {exact}/{len(counts)}: {'pass' if passed else 'FAIL'}")
    return passed


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    results = [check(Path(run)) for run in sys.argv[1:]]
    sys.exit(0 if all(results) else 1)
