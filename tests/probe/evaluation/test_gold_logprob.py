"""The gold answer's log-probability (issue 19): summed over the answer's tokens, best alias;
transformers and vLLM (prompt_logprobs, one pass) give the same quantity."""

from __future__ import annotations

import math

import pytest

from probe.evaluation import evaluate
from probe.evaluation._evaluate import gold_logprobs


class _ThroughNextToken:
    """A backend seen only through the generic interface (as the OpenAI-compatible one is)."""

    def __init__(self, inner):
        self.inner = inner

    def next_token_logprobs(self, prompts, candidates):
        return self.inner.next_token_logprobs(prompts, candidates)


def _by_hand(model_dir, prompt: str, alias: str) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    p = tok(prompt)["input_ids"]
    full = tok(prompt + " " + alias)["input_ids"]
    assert full[:len(p)] == p
    with torch.no_grad():
        logits = model(torch.tensor([full])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[i - 1, full[i]] for i in range(len(p), len(full))))


def test_gold_logprob_is_the_best_alias_sum(tiny_model, world_qa, closed_book_prompts, hf_generator):
    prompts = closed_book_prompts[:6]
    answers = [r["answers"] + ["Zzyzx Quorble"] for r in world_qa[:6]]  # an unlikely extra alias
    values = gold_logprobs(hf_generator, prompts, answers)
    assert all(isinstance(v, float) and v < 0 for v in values)
    assert values == pytest.approx(gold_logprobs(_ThroughNextToken(hf_generator), prompts, answers), abs=1e-4)
    for prompt, aliases, value in zip(prompts[:2], answers[:2], values[:2]):
        assert value == pytest.approx(max(_by_hand(tiny_model, prompt, a) for a in aliases), abs=1e-3)
    assert gold_logprobs(hf_generator, prompts[:1], [[]]) == [None]


def test_evaluate_writes_gold_logprob(world_qa, hf_generator):
    predictions = evaluate(world_qa, hf_generator, shots=2, progress=False, gold_logprob=True)
    assert predictions and all(isinstance(p["gold_logprob"], float) for p in predictions)
    assert all(math.isfinite(p["gold_logprob"]) for p in predictions)
    assert "gold_logprob" not in evaluate(world_qa[:12], hf_generator, shots=2, progress=False)[0]


@pytest.mark.slow
def test_vllm_prompt_logprobs_agree_with_transformers(tiny_model, world_qa, hf_generator):
    from probe.generation import get_generator

    generator = get_generator("vllm", str(tiny_model), dtype="float32", max_model_len=512, enforce_eager=True)
    try:
        got = evaluate(world_qa, generator, shots=2, progress=False, gold_logprob=True)
    finally:
        generator.close()
    want = evaluate(world_qa, hf_generator, shots=2, progress=False, gold_logprob=True)
    assert [p["prompt"] for p in got] == [p["prompt"] for p in want]
    assert [p["gold_logprob"] for p in got] == pytest.approx([p["gold_logprob"] for p in want], abs=2e-3)
