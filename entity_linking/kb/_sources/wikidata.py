"""A Wikidata JSON dump (`.json`, `.json.gz`, `.json.bz2`; one entity a line between `[` and `]`),
streamed without loading it into memory."""

from __future__ import annotations

import bz2
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entity_linking._normalize import alias_variants
from entity_linking.io import InputError, OnError, SkipCounter, _open_binary
from entity_linking.kb._entity import Entity


def wikidata_entities(path: str | os.PathLike, *, language: str = "en", limit: int | None = None,
                      min_sitelinks: int = 0, on_error: OnError = "fail", skips: SkipCounter | None = None,
                      progress: bool = True) -> Iterator[tuple[str, Entity]]:
    """`(FILE:LINE, Entity)` of a streamed Wikidata JSON dump.

    Keeps entities with a label in `language`: name = label, aliases = that language's
    aliases, description = its description, type = the QID of the first "instance of"
    (P31) value, prior = the number of sitelinks. Entities with fewer than
    `min_sitelinks` are left out; `limit` stops after that many entities.
    """
    from entity_linking.logs import progress_bar

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    skips = skips if skips is not None else SkipCounter()
    opener = (lambda p: bz2.open(p, "rb")) if path.suffix == ".bz2" else _open_binary
    bar = progress_bar(desc="wikidata", unit=" lines", enabled=progress)
    kept = 0
    with opener(path) as handle:
        lineno = 0
        while True:
            try:
                raw = handle.readline()
            except (EOFError, OSError) as exc:
                skips.bad_record(f"{path}:{lineno + 1}: file is truncated or corrupt ({exc})", on_error)
                break
            if not raw:
                break
            lineno += 1
            bar.update()
            line = raw.strip().rstrip(b",")
            if line in (b"[", b"]", b""):
                continue
            try:
                item = json.loads(line)
                entity = _entity_from_wikidata(item, language)
                if entity is None or len(item.get("sitelinks") or {}) < min_sitelinks:
                    continue
            except (ValueError, TypeError, AttributeError) as exc:
                skips.bad_record(f"{path}:{lineno}: {exc}", on_error)
                continue
            yield f"{path}:{lineno}", entity
            kept += 1
            if limit is not None and kept >= limit:
                break
    bar.close()


def _entity_from_wikidata(item: dict[str, Any], language: str) -> Entity | None:
    if not isinstance(item, dict) or "id" not in item:
        raise ValueError("not a Wikidata entity object")
    label = (item.get("labels") or {}).get(language, {}).get("value")
    if not label or not alias_variants(label):
        return None
    aliases = [a.get("value") for a in (item.get("aliases") or {}).get(language, [])]
    aliases = [a for a in aliases if isinstance(a, str) and alias_variants(a)]
    description = (item.get("descriptions") or {}).get(language, {}).get("value", "")
    type_id = ""
    for claim in (item.get("claims") or {}).get("P31", [])[:1]:
        value = ((claim.get("mainsnak") or {}).get("datavalue") or {}).get("value")
        if isinstance(value, dict):
            type_id = value.get("id", "")
    return Entity(id=item["id"], name=label, aliases=aliases, type=type_id, description=description,
                  prior=float(len(item.get("sitelinks") or {})))
