"""Building a knowledge-base folder from any of its sources (`ltprobe kb build`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, SkipCounter, _open_binary

SOURCES = ("jsonl", "wikidata", "table", "popqa")
"""What `build_kb` reads: kb.jsonl records, a Wikidata JSON dump, a TSV/CSV table, PopQA's file."""


def guess_source(path: str | os.PathLike) -> str:
    """The kind of knowledge-base source `path` is (one of `SOURCES`), from its name and, for a
    table, its header (PopQA's has `s_uri` and `o_uri`)."""
    name = Path(path).name.lower()
    if ".jsonl" in name:
        return "jsonl"
    if name.endswith((".json", ".json.gz", ".json.bz2", ".json.zst")):
        return "wikidata"
    if Path(path).is_file() and not name.endswith(".bz2"):
        with _open_binary(Path(path)) as handle:
            header = handle.readline().decode("utf-8", "replace")
        if "s_uri" in header and "o_uri" in header:
            return "popqa"
    return "table"


def build_kb(source_path: str | os.PathLike, out: str | os.PathLike, *, source: str = "auto",
             columns: dict[str, str] | None = None, delimiter: str | None = None, alias_separator: str = "|",
             language: str = "en", limit: int | None = None, min_sitelinks: int = 0, on_error: str = "fail",
             skips: SkipCounter | None = None, progress: bool = False) -> Any:
    """Build the knowledge-base folder `out` from `source_path` and return it loaded.

    `source`: one of `SOURCES`, or `auto` (`guess_source`). JSONL and Wikidata are streamed
    straight into the folder's flat arrays (`language`, `limit`, `min_sitelinks`: the Wikidata
    entities taken); a table needs `columns` (field -> column, `delimiter`, `alias_separator`).
    `skips` counts the bad records skipped with `on_error="skip"`."""
    from entity_linking.kb._kb import KnowledgeBase, jsonl_entities, wikidata_entities

    skips = skips if skips is not None else SkipCounter()
    source = guess_source(source_path) if source == "auto" else source
    if source not in SOURCES:
        raise InputError(f"kb build: unknown source {source!r}; use auto or one of {', '.join(SOURCES)}")
    if source in ("jsonl", "wikidata"):
        if source == "jsonl":
            if not Path(source_path).exists():
                raise InputError(f"{source_path}: no such file")
            entities = jsonl_entities(source_path, on_error=on_error, skips=skips)
        else:
            entities = wikidata_entities(source_path, language=language, limit=limit, min_sitelinks=min_sitelinks,
                                         on_error=on_error, skips=skips, progress=False)
        KnowledgeBase.write(entities, out, source=str(source_path), on_error=on_error, skips=skips,
                            progress=progress)
        return KnowledgeBase.load(out)
    if source == "table":
        kb = KnowledgeBase.from_table(source_path, columns or {}, delimiter=delimiter,
                                      alias_separator=alias_separator, on_error=on_error, skips=skips)
    else:
        kb = KnowledgeBase.from_popqa(source_path, on_error=on_error, skips=skips)
    kb.save(out)
    return kb
