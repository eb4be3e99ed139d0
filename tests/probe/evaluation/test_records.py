"""The prediction record (issue 17): `predictions.jsonl` lines read and written again byte for
byte (optional fields present or absent as written, Unicode), bad lines rejected with a reason,
and `evaluate` writing the bytes of the dict-building code the record replaced (the expected
lines below were written by it, with the scripted generator below)."""

from __future__ import annotations

import json

import pytest

from probe.evaluation import Prediction, evaluate

PREDICTION_LINES = [
    '{"id": "qa_00000", "setting": "closed_book", "model": "fake/model-é", "prompt": "Q: Which organisation does '
    'Ingrið Larrabee work for?\\nA: Evergreen Mills\\n\\nQ: In what city was Rudolf Orlov born?\\nA:", '
    '"completion": "Saint Vous", "em": true, "contains": true, "correct": true, "n_shots": 1, "n_passages": 0}',
    '{"id": "qa_00000", "setting": "rag", "model": "fake/model-é", "prompt": "Passage: Passage 0 about Saint Vous '
    'and more words\\nQuestion: In what city was Rudolf Orlov born?\\nAnswer:", "completion": "Saint Vous", '
    '"em": true, "contains": true, "correct": true, "n_shots": 0, "n_passages": 1, "passage_ids": [["d0", 0]], '
    '"dropped": 2, "gold_logprob": -11.0}',
    '{"id": "qa_00000", "setting": "oracle", "model": "fake/model-é", "prompt": "Question: In what city was Rudolf '
    'Orlov born?\\nAnswer:", "completion": "", "em": false, "contains": false, "correct": false, "n_shots": 0, '
    '"n_passages": 0, "passage_ids": [], "dropped": 4, "error": "prompt longer than the model\'s context even '
    'without shots and passages"}',
    '{"id": "q9", "setting": "rag", "model": "m", "prompt": "p", "completion": "Zürich", "em": false, '
    '"contains": true, "correct": true, "n_shots": 4, "n_passages": 3, "passage_ids": [null, ["d1", "d1#0"]], '
    '"gold_logprob": null, "judge": {"score": 0.5}}',
    '{"id": "q10", "setting": "oracle", "model": "m", "prompt": "p", "completion": "Lyon", "em": true, '
    '"contains": true, "correct": true, "n_shots": 4, "n_passages": 1, "passage_ids": [["gold", "q10#gold0"]], '
    '"passage_source": "gold"}',
]


@pytest.mark.parametrize("line", PREDICTION_LINES)
def test_prediction_round_trips_a_real_line_byte_for_byte(line):
    prediction = Prediction.from_json(json.loads(line))
    assert json.dumps(prediction.to_json(), ensure_ascii=False) == line


def test_prediction_fields_are_typed():
    rag = Prediction.from_json(json.loads(PREDICTION_LINES[1]))
    assert (rag.setting, rag.correct, rag.dropped, rag.gold_logprob, rag.error) == ("rag", True, 2, -11.0, None)
    closed = Prediction.from_json(json.loads(PREDICTION_LINES[0]))
    assert closed.passage_ids is None and "gold_logprob" not in closed.to_json()
    other = Prediction.from_json(json.loads(PREDICTION_LINES[3]))
    assert other.gold_logprob is None and other.to_json()["gold_logprob"] is None
    assert other.extra == {"judge": {"score": 0.5}}
    assert Prediction.from_json(json.loads(PREDICTION_LINES[4])).passage_source == "gold"
    assert "passage_source" not in rag.to_json()


@pytest.mark.parametrize("change, reason", [
    ({"setting": "open_book"}, "field 'setting' must be one of closed_book, rag, oracle, got 'open_book'"),
    ({"correct": 1}, "field 'correct' must be bool, got int"),
    ({"id": 3}, "field 'id' must be str, got int"),
    ({"n_shots": "4"}, "field 'n_shots' must be int, got str"),
    ({"dropped": None}, "field 'dropped' must be int, got NoneType"),
    ({"error": 5}, "field 'error' must be a string"),
    ({"gold_logprob": "low"}, "field 'gold_logprob' must be a number or null"),
    ({"passage_ids": "d1"}, "field 'passage_ids' must be a list"),
    ({"passage_source": 1}, "field 'passage_source' must be a string"),
])
def test_prediction_rejects_a_bad_line_with_a_reason(change, reason):
    with pytest.raises(ValueError, match=f"^{reason}$"):
        Prediction.from_json({**json.loads(PREDICTION_LINES[3]), **change})
    line = json.loads(PREDICTION_LINES[0])
    del line["em"]
    with pytest.raises(ValueError, match="^missing field 'em'$"):
        Prediction.from_json(line)


class Scripted:
    """A generator without a model: a fixed answer for the first prompt of a batch, the third
    word from the end of the prompt for the others; contexts of `max_context` words."""

    name = "fake/model-é"
    tokenizer = None
    generated_tokens = 0

    def __init__(self, max_context):
        self.max_context = max_context

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def generate(self, prompts, max_tokens, stop=None):
        return [(" " + p.split()[-3] + " ünï\n") if i % 3 else " Saint Vous" for i, p in enumerate(prompts)]

    def next_token_logprobs(self, prompts, continuations):
        return [{c: -float(len(c)) for c in continuations}]

    def close(self):
        pass


BEFORE = [
    '{"id": "q1", "setting": "rag", "model": "fake/model-é", "prompt": "Question: Où est né Zoë O\'Brien?\\nAnswer:", '
    '"completion": "", "em": false, "contains": false, "correct": false, "n_shots": 0, "n_passages": 0, '
    '"passage_ids": [], "dropped": 1, "error": "prompt longer than the model\'s context even without shots and '
    'passages", "gold_logprob": null}',
    '{"id": "q2", "setting": "rag", "model": "fake/model-é", "prompt": "Question: Who?\\nAnswer:", "completion": "", '
    '"em": false, "contains": false, "correct": false, "n_shots": 0, "n_passages": 0, "passage_ids": [], '
    '"dropped": 1, "error": "prompt longer than the model\'s context even without shots and passages", '
    '"gold_logprob": null}',
    '{"id": "q1", "setting": "closed_book", "model": "fake/model-é", "prompt": "Q: Où est né Zoë O\'Brien?\\nA:", '
    '"completion": "Saint Vous", "em": false, "contains": false, "correct": false, "n_shots": 0, "n_passages": 0}',
    '{"id": "q2", "setting": "closed_book", "model": "fake/model-é", "prompt": "Q: Who?\\nA:", "completion": '
    '"Q: ünï", "em": false, "contains": false, "correct": false, "n_shots": 0, "n_passages": 0}',
]
"""What `evaluate` wrote for the two questions below before the record (dicts built by hand)."""


def test_evaluate_writes_the_same_predictions_as_before_the_record():
    qa = [{"id": "q1", "question": "Où est né Zoë O'Brien?", "answers": ["Zürich"], "extra": 1},
          {"id": "q2", "question": "Who?", "answers": ["Ada"]}]
    passages = {"q1": [{"doc_id": "d1", "passage_id": 0, "text": "Zoë was born in Zürich"}], "q2": ["Ada wrote"]}
    out = evaluate(qa, Scripted(6), setting="rag", shots=0, pool_size=0, passages=passages, progress=False,
                   gold_logprob=True)
    out += evaluate(qa, Scripted(None), setting="closed_book", shots=0, pool_size=0, progress=False,
                    scoring="contains")
    assert [json.dumps(p, ensure_ascii=False) for p in out] == BEFORE
    assert [Prediction.from_json(p).to_json() for p in out] == out
