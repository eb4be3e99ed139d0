"""The contract's `kb.jsonl` (`.gz`/`.zst` too): one entity record a line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from entity_linking.io import OnError, SkipCounter, read_records
from entity_linking.kb._entity import Entity


def jsonl_entities(path: str | os.PathLike, on_error: OnError = "fail",
                   skips: SkipCounter | None = None) -> Iterator[tuple[str, Entity]]:
    """`(FILE:LINE, Entity)` of each record of a `kb.jsonl` (bad records raise or are skipped)."""
    skips = skips if skips is not None else SkipCounter()
    for lineno, record in read_records(path, on_error=on_error, skips=skips,
                                       required={"id": (str, int), "name": str}):
        try:
            entity = entity_from_record(record)
        except ValueError as exc:
            skips.bad_record(f"{path}:{lineno}: {exc}", on_error)
            continue
        yield f"{path}:{lineno}", entity


def entity_from_record(record: dict[str, Any]) -> Entity:
    """An `Entity` from a `kb.jsonl` record; `ValueError` (with a reason) when a field has the wrong type."""
    aliases = record.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ValueError("field 'aliases' must be a list of strings")
    for name in ("type", "description"):
        if record.get(name) is not None and not isinstance(record[name], str):
            raise ValueError(f"field {name!r} must be a string")
    prior = record.get("prior", 0.0)
    if prior is None:
        prior = 0.0
    if not isinstance(record.get("id"), (str, int)) or isinstance(record.get("id"), bool) or str(record["id"]) == "":
        raise ValueError("field 'id' must be a non-empty string")
    if not isinstance(record.get("name"), str):
        raise ValueError("field 'name' must be a string")
    return Entity(id=str(record["id"]), name=record["name"], aliases=aliases,
                  type=record.get("type") or "", description=record.get("description") or "",
                  prior=prior)
