"""The records that cross the first stages: a QA pair (`qa.jsonl`) and a linked QA pair
(`qa_entities.jsonl`).

Each record is a dataclass with `to_json()` (the dict written as one JSONL line, its keys in
the contract's order, then any extra keys in the order they came) and `from_json(record)`
(checks the types and raises `ValueError` with a reason, which the readers turn into
`FILE:LINE: reason`). `from_json(r).to_json() == r` for every line these stages write, key
order included, so a file read and written again is byte-identical. See
docs/contract.md for the shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def check_id(record: Mapping[str, Any]) -> str | int:
    """The record's `id` (a string, or an integer as some QA files have); `ValueError` otherwise."""
    if "id" not in record:
        raise ValueError("missing field 'id'")
    value = record["id"]
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError(f"field 'id' must be str/int, got {type(value).__name__}")
    return value


def check_strings(record: Mapping[str, Any], key: str, what: str = "strings") -> list[str]:
    """`record[key]` when it is a list of strings; `ValueError` naming the field otherwise."""
    value = record.get(key)
    if type(value) is not list or not all(type(v) is str for v in value):
        raise ValueError(f"field {key!r} must be a list of {what}")
    return value


def extra_keys(record: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The keys of `record` that are not fields of the record type, in their order."""
    if len(record) <= len(known) and all(k in known for k in record):
        return {}
    return {k: v for k, v in record.items() if k not in known}


@dataclass(slots=True)
class QAPair:
    """A question with its accepted answers: one line of `qa.jsonl` (or of a QA file given to
    `ltprobe link-qa`)."""

    id: str | int
    """Unique id of the question in its set (`load_qa` makes every id a string; files given
    to `ltprobe link-qa` may use integers, which are kept as they are)."""
    question: str
    """The question text."""
    answers: list[str]
    """Accepted answer aliases; a completion is scored against each of them."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other fields of the source, kept unchanged and written after `answers` in their
    order: the world's gold links (`q_entity`, `a_entity`), `relation`, `pop`, passages..."""

    FIELDS = frozenset({"id", "question", "answers"})

    def to_json(self) -> dict[str, Any]:
        """The `qa.jsonl` line: `{"id", "question", "answers", ...extra}`."""
        return {"id": self.id, "question": self.question, "answers": self.answers, **self.extra}

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> QAPair:
        """Check and wrap one decoded line; `ValueError` with the reason when it is malformed."""
        qa_id = check_id(record)
        if "question" not in record:
            raise ValueError("missing field 'question'")
        question = record["question"]
        if not isinstance(question, str):
            raise ValueError(f"field 'question' must be str, got {type(question).__name__}")
        answers = check_strings(record, "answers")
        return cls(qa_id, question, answers, extra_keys(record, cls.FIELDS))


@dataclass(slots=True)
class LinkedQAPair:
    """The entities of one QA pair: one line of `qa_entities.jsonl` (`ltprobe link-qa`, or
    `ltprobe import kandpal`)."""

    id: str | int
    """The id of the QA pair (as in the QA file)."""
    q_entities: list[str]
    """Entity ids linked in the question, in order of first mention, without repeats."""
    a_entities: list[str]
    """The salient answer entities: those with the most mentions in the answers (ties kept),
    question entities left out."""
    a_entity_votes: dict[str, int] | None = None
    """Mentions of every entity linked in the answers (question entities included), in order
    of first mention; `ltprobe count` recomputes the salient answers from them after its
    stop-list. None: not recorded (each of `a_entities` then counts as one vote)."""
    q_mentions: list[list[str]] | None = None
    """`[text, entity id]` of each question mention (its best candidate), for reading the links;
    None: not recorded."""
    q_candidates: list[list[Any]] | None = None
    """`[text, [entity ids]]` of each question mention: every candidate at or above the linker's
    NIL threshold, best first (all of them are in `q_entities`, so counting's maximum over pairs
    chooses among namesakes); None: not recorded."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other fields of the line, kept unchanged and written last."""

    FIELDS = frozenset({"id", "q_entities", "a_entities", "a_entity_votes", "q_mentions", "q_candidates"})

    def to_json(self) -> dict[str, Any]:
        """The `qa_entities.jsonl` line: `{"id", "q_entities", "a_entities"[, "a_entity_votes"]
        [, "q_mentions"][, "q_candidates"], ...extra}`."""
        out: dict[str, Any] = {"id": self.id, "q_entities": self.q_entities, "a_entities": self.a_entities}
        if self.a_entity_votes is not None:
            out["a_entity_votes"] = self.a_entity_votes
        if self.q_mentions is not None:
            out["q_mentions"] = self.q_mentions
        if self.q_candidates is not None:
            out["q_candidates"] = self.q_candidates
        if self.extra:
            out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> LinkedQAPair:
        """Check and wrap one decoded line; `ValueError` with the reason when it is malformed."""
        qa_id = check_id(record)
        q = check_strings(record, "q_entities", "entity id strings")
        a = check_strings(record, "a_entities", "entity id strings")
        votes = record.get("a_entity_votes")
        if votes is not None and not (type(votes) is dict and all(
                type(n) is int and n > 0 for n in votes.values())):
            raise ValueError("field 'a_entity_votes' must map entity ids to positive mention counts")
        mentions = record.get("q_mentions")
        if mentions is not None and not (type(mentions) is list and all(
                type(m) is list and len(m) == 2 and all(type(x) is str for x in m) for m in mentions)):
            raise ValueError("field 'q_mentions' must be a list of [text, entity id] pairs")
        candidates = record.get("q_candidates")
        if candidates is not None and not (type(candidates) is list and all(
                type(c) is list and len(c) == 2 and type(c[0]) is str and type(c[1]) is list
                and all(type(x) is str for x in c[1]) for c in candidates)):
            raise ValueError("field 'q_candidates' must be a list of [text, [entity ids]] pairs")
        return cls(qa_id, q, a, votes, mentions, candidates, extra_keys(record, cls.FIELDS))

    def answer_votes(self) -> dict[str, int]:
        """Mention votes of the answer entities: `a_entity_votes`, or one per `a_entities` id."""
        return self.a_entity_votes or dict.fromkeys(self.a_entities, 1)
