"""The count record: one line of `counts.jsonl` (`ltprobe count`, `indexes.write_counts`).

Like the records of `entity_linking.records`: `to_json()` gives the contract's keys in their
order, then what the backend adds; `from_json()` checks a decoded line (`ValueError` with the
reason) and keeps unknown keys, so a file read and written again is byte-identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from entity_linking.records import check_id, extra_keys

CountStatus = Literal["ok", "no_q_entity", "no_a_entity"]
STATUSES = ("ok", "no_q_entity", "no_a_entity")


@dataclass(slots=True)
class Count:
    """The relevant-document count of one QA pair (methods.md §1)."""

    id: str | int
    """The id of the QA pair (as in `qa_entities.jsonl`)."""
    count: int | None
    """Documents that contain both entities of `pair`: the largest over question entity x
    salient answer entity. None unless `status` is "ok"."""
    q_count: int | None
    """The largest document frequency of a question entity; None without question entities."""
    a_count: int | None
    """The largest document frequency of an answer candidate; None without answer entities."""
    pair: list[str] | None
    """`[question entity, answer entity]` that gave `count` (the first in question-then-answer
    order on ties); None unless `status` is "ok"."""
    status: CountStatus
    """"ok", "no_q_entity" (nothing linked in the question, after the stop-list) or
    "no_a_entity" (no answer entity left)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields a backend adds, written last in their order (infini-gram: `backend`, `mode`,
    `approx`, `q_count_approx`, `a_count_approx`...)."""

    FIELDS = frozenset({"id", "count", "q_count", "a_count", "pair", "status"})

    def to_json(self) -> dict[str, Any]:
        """The `counts.jsonl` line: `{"id", "count", "q_count", "a_count", "pair", "status", ...extra}`."""
        out = {"id": self.id, "count": self.count, "q_count": self.q_count, "a_count": self.a_count,
               "pair": self.pair, "status": self.status}
        if self.extra:
            out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> Count:
        """Check and wrap one decoded line; `ValueError` with the reason when it is malformed."""
        qa_id = check_id(record)
        numbers = []
        for key in ("count", "q_count", "a_count"):
            if key not in record:
                raise ValueError(f"missing field {key!r}")
            value = record[key]
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"field {key!r} must be a count (an integer >= 0) or null")
            numbers.append(value)
        pair = record.get("pair")
        if pair is not None and not (type(pair) is list and len(pair) == 2 and all(type(e) is str for e in pair)):
            raise ValueError("field 'pair' must be [question entity, answer entity] or null")
        status = record.get("status")
        if status not in STATUSES:
            raise ValueError(f"field 'status' must be one of {', '.join(STATUSES)}, got {status!r}")
        return cls(qa_id, numbers[0], numbers[1], numbers[2], pair, status, extra_keys(record, cls.FIELDS))
