"""Prompt formats from the template files, and fitting prompts into the context."""

import json

import pytest

from entity_linking.io import InputError
from probe.evaluation import Shot, build_prompt, load_format, prompt_formats, relation_question
from probe.evaluation._prompts import fit_prompts


def test_closed_book_format_is_the_studys():
    fmt = load_format("qa")
    prompt = build_prompt(fmt, "Who wrote Emma?", [Shot("Capital of France?", "Paris"), Shot("2+2?", "4")])
    assert prompt == "Q: Capital of France?\nA: Paris\n\nQ: 2+2?\nA: 4\n\nQ: Who wrote Emma?\nA:"
    assert fmt.stop == ("\n",)


def test_retrieval_format_puts_passages_before_each_question():
    fmt = load_format("rag")
    prompt = build_prompt(fmt, "Who wrote Emma?", [Shot("Capital of France?", "Paris", ["Paris is the\ncapital."])],
                          ["Emma is a novel by Jane Austen.", "Austen lived in Bath."])
    assert prompt == ("Passage: Paris is the capital.\nQuestion: Capital of France?\nAnswer: Paris\n\n"
                      "Passage: Emma is a novel by Jane Austen.\nPassage: Austen lived in Bath.\n"
                      "Question: Who wrote Emma?\nAnswer:")


def test_cloze_format_asks_the_statement_the_answer_completes():
    fmt = load_format("cloze")
    assert "cloze" in prompt_formats() and fmt.field == "cloze" and fmt.passage is None
    prompt = build_prompt(fmt, "Ada Lovelace was born in", [Shot("Emil Zola works as a", "novelist")])
    assert prompt == "Emil Zola works as a novelist.\nAda Lovelace was born in"
    assert build_prompt(fmt, " Ada Lovelace was born in ") == "Ada Lovelace was born in"
    assert set(fmt.stop) == {"\n", ". "}  # the end of the sentence, so "Paris. She..." is "Paris"


def test_a_format_field_must_be_a_placeholder_of_its_query(tmp_path):
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"field": "statement", "shot": "{statement} {answer}\n", "query": "{statement}"}))
    fmt = load_format(own)
    assert build_prompt(fmt, "Paris is in", [Shot("Rome is in", "Italy")]) == "Rome is in Italy\nParis is in"
    for bad in ({"field": "statement", "shot": "{question}", "query": "Q: {question}"},
                {"field": 3, "shot": "", "query": ""}):
        own.write_text(json.dumps(bad))
        with pytest.raises(InputError, match="field"):
            load_format(own)


def test_popqa_relation_templates():
    assert relation_question("place of birth", "Ada Lovelace") == "In what city was Ada Lovelace born?"


def _words(texts):
    return [len(t.split()) for t in texts]


def test_fit_drops_shots_from_the_left_then_passages_then_marks():
    fmt = load_format("rag")
    shots = [Shot(f"q{i}", f"a{i}", [f"p{i}"]) for i in range(3)]
    items = [("short?", shots, ["one two", "three four"]), ("x " * 50, [], ["p"]), ("ok?", [], [])]
    fitted = fit_prompts(fmt, items, _words, limit=15)
    first = fitted[0]
    assert first.n_shots == 1 and "q2" in first.prompt and "q0" not in first.prompt  # kept the last shot
    assert first.n_passages == 2 and first.dropped == 2 and not first.too_long
    assert _words([first.prompt])[0] <= 15
    assert fitted[1].too_long and fitted[1].n_passages == 0
    assert not fitted[2].dropped and not fitted[2].too_long
    # Without a token counter nothing is dropped.
    assert fit_prompts(fmt, items, None, limit=15)[0].n_shots == 3


def test_chat_template_wraps_the_prompt_as_one_user_turn():
    import pytest
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from entity_linking.io import InputError
    from probe.evaluation._prompts import chat_wrapper

    backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
    with pytest.raises(InputError, match="no chat template"):
        chat_wrapper(tokenizer)
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    wrap = chat_wrapper(tokenizer)
    assert wrap("Q: Who?\nA:") == "<|user|>Q: Who?\nA:\n<|assistant|>"
