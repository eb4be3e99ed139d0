"""Check a run's counts by training step against a brute-force count: for every QA pair and
checkpoint step, the documents trained on before that step (from the model's
`train_order.npz`) that hold both the question and the answer entity by the world's gold links.

    python scripts/check_counts_by_step.py RUN_DIR

RUN_DIR is an `ltprobe run` folder of a generated world with `learning.checkpoints` (the demo).
Prints one JSON line (`checked`, `equal`) and exits 1 when any count differs.
"""

import json
import sys

import numpy as np


def main(run: str) -> int:
    order = np.load(f"{run}/model/train_order.npz", allow_pickle=False)
    ids, positions, offsets = order["ids"], order["positions"], order["step_offsets"]
    holders: dict[str, set[str]] = {}  # entity -> documents whose gold links hold it
    with open(f"{run}/world/corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            for entity in doc["entities"]:
                holders.setdefault(entity, set()).add(doc["id"])
    with open(f"{run}/world/qa.jsonl", encoding="utf-8") as f:
        qa = {r["id"]: r for r in map(json.loads, f)}
    with open(f"{run}/counts_by_step.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    steps = sorted({s for r in rows if r["seen"] is not None for s in r["steps"]})
    trained = {s: {str(ids[p]) for p in positions[:offsets[s]]} for s in steps}
    checked = equal = 0
    for r in rows:
        if r["seen"] is None:
            continue
        q = qa[r["id"]]
        relevant = holders.get(q["q_entity"], set()) & holders.get(q["a_entity"], set())
        for step, seen in zip(r["steps"], r["seen"]):
            checked += 1
            equal += len(relevant & trained[step]) == seen
    print(json.dumps({"qa_pairs": len(rows), "steps": steps, "checked": checked, "equal": equal}))
    return 0 if checked and checked == equal else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
