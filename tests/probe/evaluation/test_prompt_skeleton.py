"""One prompt skeleton for every setting (issue 16): with the defaults of a job, closed-book
and retrieval prompts carry the same shots and differ only by the passages."""

from __future__ import annotations

import pytest

from probe.evaluation import build_prompt, evaluate, load_format
from probe.pipeline import load_config


class EchoGenerator:
    """A generator that answers the last word of its prompt: prompts are what is under test."""

    name = "echo"
    max_context = None
    tokenizer = None
    generated_tokens = 0

    def count_tokens(self, texts):
        return None

    def generate(self, prompts, max_tokens, stop=None):
        return [p.split()[-1] for p in prompts]


QA = [{"id": f"q{i}", "question": f"Where was person {i} born?", "answers": [f"City{i}", f"Town{i}"]}
      for i in range(24)]
# every question's own top-3 passages; some shots' passages do not contain their answer
PASSAGES = {r["id"]: [f"Person {i} lived somewhere {j}." if i % 3 else f"Person {i} was born in City{i} ({j})."
                      for j in range(3)] for i, r in enumerate(QA)}


def _strip_passages(prompt: str) -> str:
    lines = prompt.split("\n")
    kept = [line for line in lines if not line.startswith("Person ")]
    return "\n".join(kept)


def test_closed_book_and_retrieval_prompts_differ_only_by_the_passages():
    config = load_config(None, [])  # the demo keeps its own settings; check the package defaults
    from probe.pipeline._config import DEFAULTS

    eval_cfg, rag_cfg = DEFAULTS["eval"], DEFAULTS["rag"]
    assert eval_cfg["shots"] == 4 and rag_cfg["shots"] is None and rag_cfg["k"] == 3
    assert eval_cfg["prompt_format"] == "qa" and rag_cfg["prompt_format"] is None and not rag_cfg["filter_shots"]
    common = dict(pool_size=8, seed=0, progress=False, prompt_format=eval_cfg["prompt_format"])
    closed = evaluate(QA, EchoGenerator(), setting="closed_book", shots=eval_cfg["shots"], **common)
    rag = evaluate(QA, EchoGenerator(), setting="rag", shots=eval_cfg["shots"], passages=PASSAGES,
                   k=rag_cfg["k"], filter_shots=rag_cfg["filter_shots"], **common)
    assert [p["id"] for p in closed] == [p["id"] for p in rag] and len(closed) == 18  # 6 pool questions (a quarter) are not scored
    for c, r in zip(closed, rag):
        assert c["n_shots"] == r["n_shots"] == 4
        assert r["prompt"] != c["prompt"] and _strip_passages(r["prompt"]) == c["prompt"]
        # 4 shots with 3 passages each, and the question's own 3
        assert r["prompt"].count("\nPerson ") + r["prompt"].startswith("Person ") == 15
        assert r["prompt"].endswith(f"Q: {QA[int(r['id'][1:])]['question']}\nA:")
    # the demo keeps its own: a zero-shot cloze closed-book, its retrieval format with filtered shots, no shots
    assert config["rag"] == {**config["rag"], "prompt_format": "rag", "filter_shots": True, "shots": 0, "k": 1}
    assert config["eval"]["shots"] == 0 and config["eval"]["prompt_format"] == "cloze"


def test_filtered_shots_and_the_rag_format_are_still_available():
    rag = evaluate(QA, EchoGenerator(), setting="rag", shots=2, passages=PASSAGES, k=3, pool_size=8,
                   progress=False, filter_shots=True)
    for p in rag:
        for shot in p["prompt"].split("\n\n")[:-1]:  # each shot's passages contain its answer
            answer = shot.rsplit("Answer: ", 1)[1]
            assert answer in shot.rsplit("Question:", 1)[0]
    fmt = load_format("qa")
    assert build_prompt(fmt, "Who?") == "Q: Who?\nA:"  # closed-book prompts as before


@pytest.mark.parametrize("k", [1, 3])
def test_qa_format_puts_each_passage_on_a_line_before_its_question(k):
    from probe.evaluation import Shot

    fmt = load_format("qa")
    prompt = build_prompt(fmt, "Q2?", [Shot("Q1?", "A1", ["p one", "p  two"][:k])], ["p three", "p four"][:k])
    lines = ["p one", "p two"][:k] + ["Q: Q1?", "A: A1", ""] + ["p three", "p four"][:k] + ["Q: Q2?", "A:"]
    assert prompt == "\n".join(lines)
