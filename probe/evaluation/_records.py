"""The prediction record: one line of `predictions.jsonl` (`ltprobe eval`, `ltprobe run`).

Like the records of `entity_linking.records`: `to_json()` writes the keys in today's order
(the contract's `id`, `setting`, `model`, `prompt`, `completion`, then the scores with
`correct` after `em` and `contains`, then ours), optional fields only when they are set;
`from_json()` checks a decoded line (`ValueError` with the reason) and keeps unknown keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from entity_linking.records import extra_keys
from probe.evaluation._settings import SETTINGS

Setting = Literal["closed_book", "rag", "oracle"]


class _NotScored:
    """The value of `Prediction.gold_logprob` when it was not asked for (the key is left out;
    None means asked for, but the prompt did not fit)."""

    def __repr__(self) -> str:
        return "NOT_SCORED"


NOT_SCORED: Any = _NotScored()


@dataclass(slots=True)
class Prediction:
    """A model's answer to one question in one setting, scored."""

    id: str
    """The id of the QA pair."""
    setting: Setting
    """"closed_book" (the question alone), "rag" (retrieved passages) or "oracle" (a passage
    that states the answer: the data set's gold passage, else a pseudo-oracle; see
    `passage_source`)."""
    model: str
    """The model's name (its folder or hub id, or the name an OpenAI-compatible server serves)."""
    prompt: str
    """The prompt as sent, shots and passages included (empty shots/passages fitted away)."""
    completion: str
    """The completion, stripped; empty for a prompt that did not fit the context."""
    em: bool
    """SQuAD-normalised exact match with some answer alias."""
    contains: bool
    """Some normalised alias occurs in the normalised completion, on word boundaries."""
    correct: bool
    """The score chosen by `eval.scoring` (a copy of `em` or `contains`)."""
    n_shots: int
    """In-context examples kept in the prompt."""
    n_passages: int
    """Passages kept in the prompt."""
    passage_ids: list[list[Any] | None] | None = None
    """`[doc_id, passage_id]` of each passage in the prompt, best first (None for a passage
    without ids); None (not written) in the closed-book setting."""
    dropped: int = 0
    """Shots plus passages dropped to fit the context; written only when not 0."""
    error: str | None = None
    """Why the question was scored wrong without asking the model; None (not written) otherwise."""
    gold_logprob: float | None = NOT_SCORED
    """Log-probability of the best gold alias after the prompt (`eval.gold_logprob`); None for
    a prompt that did not fit; `NOT_SCORED` (not written) when not asked for."""
    passage_source: str | None = None
    """Oracle setting: where its passage came from, `gold` (the data set's passage stating the
    fact), `linked` (a corpus document linked to both entities that contains an answer alias)
    or `search` (a retrieved passage containing an answer alias); None (not written) otherwise."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other fields of the line, kept unchanged and written last."""

    FIELDS = frozenset({"id", "setting", "model", "prompt", "completion", "em", "contains", "correct",
                        "n_shots", "n_passages", "passage_ids", "dropped", "error", "gold_logprob",
                        "passage_source"})

    def to_json(self) -> dict[str, Any]:
        """The `predictions.jsonl` line."""
        out: dict[str, Any] = {"id": self.id, "setting": self.setting, "model": self.model, "prompt": self.prompt,
                               "completion": self.completion, "em": self.em, "contains": self.contains,
                               "correct": self.correct, "n_shots": self.n_shots, "n_passages": self.n_passages}
        if self.passage_ids is not None:
            out["passage_ids"] = self.passage_ids
        if self.dropped:
            out["dropped"] = self.dropped
        if self.error is not None:
            out["error"] = self.error
        if self.gold_logprob is not NOT_SCORED:
            out["gold_logprob"] = self.gold_logprob
        if self.passage_source is not None:
            out["passage_source"] = self.passage_source
        if self.extra:
            out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> Prediction:
        """Check and wrap one decoded line; `ValueError` with the reason when it is malformed."""
        for key, kind in _REQUIRED:
            if key not in record:
                raise ValueError(f"missing field {key!r}")
            if type(record[key]) is not kind:
                raise ValueError(f"field {key!r} must be {kind.__name__}, got {type(record[key]).__name__}")
        setting = record["setting"]
        if setting not in SETTINGS:
            raise ValueError(f"field 'setting' must be one of {', '.join(SETTINGS)}, got {setting!r}")
        dropped = record.get("dropped", 0)
        if type(dropped) is not int:
            raise ValueError(f"field 'dropped' must be int, got {type(dropped).__name__}")
        passage_ids = record.get("passage_ids")
        if passage_ids is not None and type(passage_ids) is not list:
            raise ValueError("field 'passage_ids' must be a list")
        error = record.get("error")
        if error is not None and type(error) is not str:
            raise ValueError("field 'error' must be a string")
        gold = record.get("gold_logprob", NOT_SCORED)
        if gold is not NOT_SCORED and gold is not None and type(gold) not in (int, float):
            raise ValueError("field 'gold_logprob' must be a number or null")
        source = record.get("passage_source")
        if source is not None and type(source) is not str:
            raise ValueError("field 'passage_source' must be a string")
        return cls(record["id"], setting, record["model"], record["prompt"], record["completion"], record["em"],
                   record["contains"], record["correct"], record["n_shots"], record["n_passages"], passage_ids,
                   dropped, error, gold, source, extra_keys(record, cls.FIELDS))


_REQUIRED = (("id", str), ("setting", str), ("model", str), ("prompt", str), ("completion", str), ("em", bool),
             ("contains", bool), ("correct", bool), ("n_shots", int), ("n_passages", int))
