"""Where knowledge-base entities come from: one reader per input kind, one module each, reached by name
through `SOURCES` (imported on first use), so that `KnowledgeBase.from_source` and `ltprobe kb build`
read every kind the same way. Adding a kind is a module here and one line in `SOURCES`.

A reader takes the input's path, `on_error` and `skips` (and its own options) and yields
`(where, Entity)`, `where` naming the record in errors ("FILE:LINE")."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, OnError, SkipCounter, _open_binary

# source name -> "module:reader", imported on first use (one line each).
SOURCES = {
    "jsonl": "entity_linking.kb._sources.jsonl:jsonl_entities",
    "table": "entity_linking.kb._sources.table:table_entities",
    "popqa": "entity_linking.kb._sources.popqa:popqa_entities",
    "wikidata": "entity_linking.kb._sources.wikidata:wikidata_entities",
}


def read_entities(source: str, path: str | os.PathLike, *, on_error: OnError = "fail",
                  skips: SkipCounter | None = None, **options: Any) -> Iterator[tuple[str, Any]]:
    """`(FILE:LINE, Entity)` of every entity of `path` read as `source` (a name in `SOURCES`;
    "auto" guesses it, see `guess_source`), with the reader's `options` (a table's `columns`,
    `delimiter`, `alias_separator`; Wikidata's `language`, `limit`, `min_sitelinks`,
    `progress`). Bad records raise `InputError("FILE:LINE: reason")` or, with
    `on_error="skip"`, are counted in `skips`."""
    if source == "auto":
        source = guess_source(path)
    if source not in SOURCES:
        raise InputError(f"unknown knowledge-base source {source!r}; use one of {', '.join(SOURCES)}")
    module, _, attribute = SOURCES[source].partition(":")
    reader = getattr(importlib.import_module(module), attribute)
    return reader(path, on_error=on_error, skips=skips, **options)


def guess_source(path: str | os.PathLike) -> str:
    """The source name of an input file from its name (and a table's header): `.jsonl` ->
    "jsonl", `.json[.gz|.bz2|.zst]` -> "wikidata", a header with `s_uri` and `o_uri` -> "popqa",
    else "table"."""
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
