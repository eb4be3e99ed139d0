"""Building a knowledge-base folder from any of its sources (`ltprobe kb build`)."""

from __future__ import annotations

import os
from typing import Any

from entity_linking.io import InputError, SkipCounter
from entity_linking.kb._sources import SOURCES, guess_source, read_entities


def build_kb(source_path: str | os.PathLike, out: str | os.PathLike, *, source: str = "auto",
             columns: dict[str, str] | None = None, delimiter: str | None = None, alias_separator: str = "|",
             language: str = "en", limit: int | None = None, min_sitelinks: int = 0, on_error: str = "fail",
             skips: SkipCounter | None = None, progress: bool = False) -> Any:
    """Build the knowledge-base folder `out` from `source_path` and return it loaded.

    `source`: a name in `SOURCES` (jsonl, table, popqa, wikidata), or `auto` (`guess_source`).
    Every source is streamed straight into the folder's flat arrays. A table needs `columns`
    (field -> column, `delimiter`, `alias_separator`); `language`, `limit`, `min_sitelinks`
    choose the Wikidata entities taken. `skips` counts the bad records skipped with
    `on_error="skip"`."""
    from entity_linking.kb._kb import KnowledgeBase

    skips = skips if skips is not None else SkipCounter()
    source = guess_source(source_path) if source == "auto" else source
    if source not in SOURCES:
        raise InputError(f"kb build: unknown source {source!r}; use auto or one of {', '.join(SOURCES)}")
    options: dict[str, Any] = {}
    if source == "table":
        options = {"columns": columns or {}, "delimiter": delimiter, "alias_separator": alias_separator}
    elif source == "wikidata":
        options = {"language": language, "limit": limit, "min_sitelinks": min_sitelinks, "progress": False}
    entities = read_entities(source, source_path, on_error=on_error, skips=skips, **options)
    KnowledgeBase.write(entities, out, source=str(source_path), on_error=on_error, skips=skips, progress=progress)
    return KnowledgeBase.load(out)
