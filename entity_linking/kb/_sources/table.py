"""TSV/CSV alias tables with a header row (rows repeating an id merge into one entity), and the
helpers the PopQA reader shares: text lines for the csv module, merging rows by id."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

from entity_linking._normalize import alias_variants
from entity_linking.io import InputError, OnError, SkipCounter, _open_binary
from entity_linking.kb._entity import Entity


def table_entities(path: str | os.PathLike, columns: dict[str, str] | None = None, *,
                   delimiter: str | None = None, alias_separator: str = "|",
                   on_error: OnError = "fail", skips: SkipCounter | None = None) -> Iterator[tuple[str, Entity]]:
    """`(FILE:LINE, Entity)` of a TSV/CSV alias table with a header row, LINE the entity's first row.

    `columns` maps entity fields to column names: `id` and `name` are required, `aliases`,
    `alias`, `prior`, `type` and `description` optional (default: the same names). An
    `aliases` cell is a JSON list or a `alias_separator`-separated string; an `alias` cell
    is one alias. Rows that repeat an id add their aliases to that entity (one row per
    alias is a common table shape); the first row's name, type and description win and
    the largest prior is kept. The delimiter is a tab for `.tsv`, a comma otherwise,
    unless given. The entities come once the whole table is read.
    """
    columns = {**{k: k for k in ("id", "name", "aliases", "alias", "prior", "type", "description")},
               **(columns or {})}
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    skips = skips if skips is not None else SkipCounter()
    if delimiter is None:
        delimiter = "\t" if ".tsv" in path.suffixes else ","
    merged: dict[str, tuple[str, Entity]] = {}
    with open_text_lines(path) as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = reader.fieldnames or []
        for needed in ("id", "name"):
            if columns[needed] not in header:
                raise InputError(f"{path}:1: no column {columns[needed]!r} for the entity {needed} "
                                 f"(columns: {', '.join(header)}); map it with --columns {needed}=COLUMN")
        for row in reader:
            lineno = reader.line_num
            try:
                merge(merged, f"{path}:{lineno}", _entity_from_row(row, columns, alias_separator))
            except ValueError as exc:
                skips.bad_record(f"{path}:{lineno}: {exc}", on_error)
    yield from merged.values()


def _entity_from_row(row: dict[str, str], columns: dict[str, str], separator: str) -> Entity:
    entity_id = (row.get(columns["id"]) or "").strip()
    name = (row.get(columns["name"]) or "").strip()
    if not entity_id:
        raise ValueError(f"empty id (column {columns['id']!r})")
    if not name:
        raise ValueError(f"empty name (column {columns['name']!r})")
    aliases: list[str] = []
    cell = (row.get(columns["aliases"]) or "").strip()
    if cell:
        if cell.startswith("["):
            parsed = json.loads(cell)
            if not isinstance(parsed, list):
                raise ValueError("aliases cell is not a JSON list")
            aliases += [str(a) for a in parsed]
        else:
            aliases += [a.strip() for a in cell.split(separator)]
    one = (row.get(columns["alias"]) or "").strip() if columns["alias"] in row else ""
    if one:
        aliases.append(one)
    prior_cell = (row.get(columns["prior"]) or "").strip()
    try:
        prior = float(prior_cell) if prior_cell else 0.0
    except ValueError:
        raise ValueError(f"prior {prior_cell!r} is not a number") from None
    return Entity(id=entity_id, name=name, aliases=aliases, type=(row.get(columns["type"]) or "").strip(),
                  description=(row.get(columns["description"]) or "").strip(), prior=prior)


def merge(merged: dict[str, tuple[str, Entity]], where: str, entity: Entity) -> None:
    """Add `entity` to `merged` (id -> (where first seen, entity)), or its aliases and prior to the
    entity of the same id there: the first name, type and description win, the largest prior is kept."""
    for alias in (entity.name, *entity.aliases):
        if not alias_variants(alias):
            raise ValueError(f"entity {entity.id!r} has an empty alias {alias!r}")
    if entity.prior < 0 or not math.isfinite(entity.prior):
        raise ValueError(f"prior of {entity.id!r} must be a non-negative number")
    if entity.id not in merged:
        merged[entity.id] = (where, entity)
        return
    old = merged[entity.id][1]
    for alias in (entity.name, *entity.aliases):
        if alias != old.name and alias not in old.aliases:
            old.aliases.append(alias)
    old.prior = max(old.prior, entity.prior)
    old.type = old.type or entity.type
    old.description = old.description or entity.description


class open_text_lines:
    """Context manager: a text handle (utf-8, `.gz`/`.zst` by suffix) for the csv module, with
    decoding errors reported as `FILE: reason`."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import io

        self._binary = _open_binary(self.path)
        raw = self._binary.__enter__()
        return io.TextIOWrapper(raw, encoding="utf-8", newline="")

    def __exit__(self, kind, exc, tb):
        self._binary.__exit__(kind, exc, tb)
        if isinstance(exc, UnicodeDecodeError):
            raise InputError(f"{self.path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if isinstance(exc, csv.Error):
            raise InputError(f"{self.path}: malformed table ({exc})") from None
        return False
