"""PopQA-style rows: subjects and objects of QA pairs as entities (TSV/CSV, or `.jsonl` records)."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, OnError, SkipCounter, read_records
from entity_linking.kb._entity import Entity
from entity_linking.kb._sources.table import merge, open_text_lines


def popqa_entities(path: str | os.PathLike, *, on_error: OnError = "fail",
                   skips: SkipCounter | None = None) -> Iterator[tuple[str, Entity]]:
    """`(FILE:LINE, Entity)` of PopQA-style rows (TSV with `s_uri subj s_aliases s_pop`, `o_uri obj
    o_aliases o_pop`, alias columns as JSON lists; `.jsonl` records with those fields work too),
    LINE the entity's first row.

    Subjects and objects both become entities, id = the Wikidata QID at the end of the URI;
    the prior is the page-view count (`s_pop`/`o_pop`; the largest seen). The entities come
    once every row is read.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    skips = skips if skips is not None else SkipCounter()
    merged: dict[str, tuple[str, Entity]] = {}

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        if ".jsonl" in path.suffixes or path.suffix == ".json":
            yield from read_records(path, on_error=on_error, skips=skips)
            return
        with open_text_lines(path) as handle:
            reader = csv.DictReader(handle, delimiter="\t" if ".tsv" in path.suffixes else ",")
            for row in reader:
                yield reader.line_num, row

    for lineno, row in rows():
        try:
            for side, name in (("s", "subj"), ("o", "obj")):
                uri = row.get(f"{side}_uri")
                if not uri or not row.get(name):
                    raise ValueError(f"missing {side}_uri or {name}")
                aliases = row.get(f"{side}_aliases") or []
                if isinstance(aliases, str):
                    aliases = json.loads(aliases) if aliases.strip() else []
                pop = row.get(f"{side}_pop")
                merge(merged, f"{path}:{lineno}",
                      Entity(id=str(uri).rstrip("/").rsplit("/", 1)[-1], name=str(row[name]),
                             aliases=[str(a) for a in aliases if str(a).strip()],
                             prior=float(pop) if pop not in (None, "") else 0.0))
        except (ValueError, TypeError) as exc:
            skips.bad_record(f"{path}:{lineno}: {exc}", on_error)
    yield from merged.values()
