"""vLLM in this process on the tiny model: greedy answers, log-probabilities and evaluation
agree with transformers."""

from __future__ import annotations

import pytest

from probe.evaluation import evaluate
from probe.generation import get_generator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vllm_generator(tiny_model):
    generator = get_generator("vllm", str(tiny_model), dtype="float32", max_model_len=512, enforce_eager=True)
    yield generator
    generator.close()


def test_greedy_completions_match_transformers(closed_book_prompts, vllm_generator, hf_generator):
    prompts = closed_book_prompts
    got = vllm_generator.generate(prompts, 16, ["\n"])
    want = hf_generator.generate(prompts, 16, ["\n"])
    assert got == want
    # Without a stop string the completions run to max_tokens and still agree.
    assert vllm_generator.generate(prompts[:8], 24) == hf_generator.generate(prompts[:8], 24)
    assert vllm_generator.max_context == 512 and vllm_generator.generated_tokens > 0


def test_log_probabilities_match_transformers(world_qa, closed_book_prompts, vllm_generator, hf_generator):
    texts = [f"{r['question']} {r['answers'][0]}." for r in world_qa[:10]]
    assert vllm_generator.mean_logprob(texts) == pytest.approx(hf_generator.mean_logprob(texts), abs=1e-3)
    prompts = closed_book_prompts[:5]
    got = vllm_generator.next_token_logprobs(prompts, [" yes", " no", " Yes", " No"])
    want = hf_generator.next_token_logprobs(prompts, [" yes", " no", " Yes", " No"])
    for g, w in zip(got, want):
        assert set(g) == {" yes", " no", " Yes", " No"} and g == pytest.approx(w, abs=1e-3)


def test_sampling_is_seeded(closed_book_prompts, vllm_generator):
    prompts = closed_book_prompts[:4]
    first = vllm_generator.sample(prompts, n=3, max_tokens=8, temperature=1.0, seed=5)
    assert [len(s) for s in first] == [3, 3, 3, 3]
    assert vllm_generator.sample(prompts, n=3, max_tokens=8, temperature=1.0, seed=5) == first


def test_evaluate_through_vllm_matches_transformers(world_qa, vllm_generator, hf_generator):
    got = evaluate(world_qa, vllm_generator, shots=2, progress=False)
    want = evaluate(world_qa, hf_generator, shots=2, progress=False)
    assert [p["completion"] for p in got] == [p["completion"] for p in want]
    assert [p["prompt"] for p in got] == [p["prompt"] for p in want]
