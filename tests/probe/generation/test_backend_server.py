"""A real vLLM OpenAI-compatible server process on 127.0.0.1 (started once for this module):
greedy answers and log-probabilities agree with transformers; a dead server gives a clear
error after retries."""

from __future__ import annotations

import socket
import time

import pytest

from probe.evaluation import evaluate
from probe.generation import GenerationError, start_vllm_server
from probe.generation import OpenAIGenerator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tiny_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    with start_vllm_server(str(tiny_model), served_model_name="tiny", dtype="float32", max_model_len=512,
                           extra_args=["--enforce-eager"], log_file=log) as running:
        yield running
    assert running.process.poll() is not None  # stopped, nothing left behind


@pytest.fixture(scope="module")
def client(server, tiny_model):
    generator = server.generator(tokenizer=str(tiny_model), concurrency=4, batch_size=4)
    yield generator
    generator.close()


def test_server_greedy_matches_transformers(closed_book_prompts, client, hf_generator):
    assert client.name == "tiny" and client.max_context == 512
    assert client.generate(closed_book_prompts, 16, ["\n"]) == hf_generator.generate(closed_book_prompts, 16, ["\n"])


def test_prompt_lengths_from_the_servers_tokenize_endpoint(server, closed_book_prompts, hf_generator):
    bare = server.generator()  # no local tokenizer for the served name "tiny"
    assert bare.tokenizer is None
    assert bare.count_tokens(closed_book_prompts[:5]) == hf_generator.count_tokens(closed_book_prompts[:5])
    bare.close()


def test_server_log_probabilities_match_transformers(world_qa, closed_book_prompts, client, hf_generator):
    texts = [f"{r['question']} {r['answers'][0]}." for r in world_qa[:6]]
    assert client.mean_logprob(texts) == pytest.approx(hf_generator.mean_logprob(texts), abs=1e-3)
    got = client.next_token_logprobs(closed_book_prompts[:3], [" yes", " no", " Yes", " No"])
    want = hf_generator.next_token_logprobs(closed_book_prompts[:3], [" yes", " no", " Yes", " No"])
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-3)


def test_evaluate_through_the_server(world_qa, client, hf_generator, tmp_path):
    got = evaluate(world_qa, client, shots=2, cache_dir=tmp_path, progress=False)
    want = evaluate(world_qa, hf_generator, shots=2, progress=False)
    assert [p["completion"] for p in got] == [p["completion"] for p in want]
    assert {p["model"] for p in got} == {"tiny"}
    samples = client.sample(["Q: Who?\nA:"], n=2, max_tokens=4, seed=1)
    assert len(samples) == 1 and len(samples[0]) == 2


def test_a_dead_server_fails_clearly_after_retries():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    generator = OpenAIGenerator("tiny", base_url=f"http://127.0.0.1:{port}/v1", retries=2, timeout=5)
    start = time.monotonic()
    with pytest.raises(GenerationError, match=r"failed 3 times in a row .* rerun to resume"):
        generator.generate(["Q: x?\nA:"], 4, ["\n"])
    assert time.monotonic() - start < 30
    generator.close()
