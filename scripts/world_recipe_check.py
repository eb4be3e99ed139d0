"""Judge a training recipe on a generated world: greedy-decode the world's QA pairs with
transformers and print accuracy by true-count bucket, closed-book (3-shot `Q:/A:`) and with the
person's encyclopedia article as the passage (`Passage:/Question:/Answer:`), plus the slope
per decade of count.

    python scripts/world_recipe_check.py MODEL_DIR WORLD_DIR [N_QUESTIONS]

Also works on the checkpoints `train_model` writes with `checkpoint_every`. A quick look, not
the evaluation: `ltprobe run` scores with vLLM and the retrieved passages.
"""

import collections
import json
import math
import random
import re
import string
import sys


def main(model_dir: str, world: str, n: int = 600) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    load = lambda p: [json.loads(line) for line in open(p, encoding="utf-8")]  # noqa: E731
    qa = load(f"{world}/qa.jsonl")
    truth = {t["id"]: t["count"] for t in load(f"{world}/truth.jsonl")}
    articles = {next(e for e in d["entities"] if e.startswith("per_")): d["text"]
                for d in load(f"{world}/encyclopedia.jsonl")}
    shots, sample = qa[:3], random.Random(0).sample(qa[3:], min(n, len(qa) - 3))

    def norm(s: str) -> str:
        s = "".join(c for c in s.lower() if c not in string.punctuation)
        return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()

    def generate(prompts: list[str], batch: int = 64) -> list[str]:
        out = []
        for i in range(0, len(prompts), batch):
            enc = tok(prompts[i:i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
            out += [tok.decode(r, skip_special_tokens=True).split("\n")[0].strip()
                    for r in ids[:, enc.input_ids.shape[1]:]]
        return out

    prefix = "".join(f"Q: {s['question']}\nA: {s['answers'][0]}\n\n" for s in shots)
    prompts = {"closed": [prefix + f"Q: {q['question']}\nA:" for q in sample],
               "passage": [f"Passage: {articles[q['q_entity']]}\nQuestion: {q['question']}\nAnswer:" for q in sample]}
    lengths = [len(tok(p, add_special_tokens=False).input_ids) for p in prompts["passage"]]
    print(f"passage prompt tokens: mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)}")
    correct = {}
    for name, batch in prompts.items():
        outs = generate(batch)
        correct[name] = [any(norm(o) == norm(a) for a in q["answers"]) for o, q in zip(outs, sample)]
        for q, o in list(zip(sample, outs))[:3]:
            print(f"  {name}: {q['question']!r} -> {o!r} (gold {q['answers'][0]!r})")

    def bucket(c: int) -> int:
        return 0 if c == 0 else min(6, 1 + int(math.log2(c)))

    labels = ["0", "1", "2-3", "4-7", "8-15", "16-31", "32+"]
    table = collections.defaultdict(lambda: [0, 0, 0])
    for q, a, b in zip(sample, correct["closed"], correct["passage"]):
        row = table[bucket(truth[q["id"]])]
        row[0], row[1], row[2] = row[0] + 1, row[1] + a, row[2] + b
    print("count      n  closed  passage")
    for k in sorted(table):
        m, a, b = table[k]
        print(f"{labels[k]:>6} {m:6d}   {a / m:.2f}    {b / m:.2f}")
    xs = [math.log10(truth[q["id"]] + 1) for q in sample]

    def slope(ys: list[bool]) -> float:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)

    print(f"accuracy closed {sum(correct['closed']) / len(sample):.3f}, passage "
          f"{sum(correct['passage']) / len(sample):.3f}; slope per decade closed {slope(correct['closed']):.3f}, "
          f"passage {slope(correct['passage']):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 600)
