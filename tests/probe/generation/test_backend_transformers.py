"""The transformers backend's candidate scoring against the model computed by hand."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # trains the shared tiny model on first use


def _by_hand(model_dir, prompt: str, candidate: str) -> float:
    """log P(candidate | prompt), summed over the candidate's tokens, straight from the model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + candidate)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids
    with torch.inference_mode():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    return float(sum(logp[i - 1, ids[i]] for i in range(len(prompt_ids), len(ids))))


def test_candidates_sharing_a_first_token_are_scored_by_their_whole_continuation(
        tiny_model, closed_book_prompts, hf_generator):
    tokenizer = hf_generator.tokenizer
    first = {c: tokenizer(c, add_special_tokens=False)["input_ids"] for c in (" Yes", " No")}
    # The tiny model's tokenizer splits both into pieces with the same first token (" "), so a
    # first-token comparison would tie at a yes-probability of exactly 0.5.
    assert first[" Yes"][0] == first[" No"][0] and len(first[" Yes"]) > 1
    prompts = closed_book_prompts[:3]
    got = hf_generator.next_token_logprobs(prompts, [" Yes", " No", " yes"])
    for prompt, scores in zip(prompts, got):
        assert scores[" Yes"] != scores[" No"]
        for candidate, value in scores.items():
            assert value == pytest.approx(_by_hand(tiny_model, prompt, candidate), abs=1e-4)
