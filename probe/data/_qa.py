"""Loading QA sets into `{"id", "question", "answers": [aliases], ...}` records.

Sources: local JSONL (`.gz`/`.zst` too), JSON arrays, CSV, TSV and Parquet files with an
optional field mapping; Hugging Face data sets by name (or a local data-set folder) through
`datasets.load_dataset`, or a folder written by `save_to_disk`. Presets give the mappings of known sets:

- `trivia_qa` (`mandarjoshi/trivia_qa`, config `unfiltered.nocontext`, the original study's;
  another config as `trivia_qa:rc`, `trivia_qa:rc.nocontext`): answers are `answer.aliases`
  plus `answer.value` (or an `answers` list, as in the Self-RAG copies);
- `nq_open` (`google-research-datasets/nq_open`): `answer` is the alias list; no ids, so the
  id is the row's position;
- `popqa` (`akariasai/PopQA`, the published 17-column TSV): `possible_answers` is a JSON
  string; `prop` becomes `relation`, `s_pop` becomes `pop`; a missing question is written
  from PopQA's relation template.

A Hugging Face source may name its config after a colon: `NAME:CONFIG` (`trivia_qa:rc` with the
preset, `mandarjoshi/trivia_qa:rc`).

Gold passages (the oracle setting's passage that states the fact, issue 16): a record keeps
`gold_passage` / `gold_passages` where the source has them (the controlled world's articles);
a SQuAD-style `context` becomes `gold_passage`; TriviaQA's evidence (`entity_pages.wiki_context`
and `search_results.search_context` of the `rc` configs) becomes `gold_passages`: the evidence's
passages of about 100 words that contain an answer alias, most question words first, at most
three (`probe.evaluation.evidence_passages`). Evidence without an answer-bearing passage gives
none. Sets without such a field (NQ-open, PopQA, TriviaQA `*.nocontext`) have no gold passage,
and the oracle setting falls back to a labelled pseudo-oracle for them.

Bad records (missing fields, empty answer lists, duplicate ids) raise
`InputError("FILE:LINE: reason")`, or are skipped and counted with `on_error="skip"`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, SkipCounter, open_text, read_records
from entity_linking.records import QAPair

PRESETS: dict[str, dict[str, Any]] = {
    "trivia_qa": {"hub": "mandarjoshi/trivia_qa", "config": "unfiltered.nocontext", "split": "validation"},
    "nq_open": {"hub": "google-research-datasets/nq_open", "config": None, "split": "validation"},
    "popqa": {"hub": "akariasai/PopQA", "config": None, "split": "test", "scoring": "contains"},
}


def default_scoring(preset: str | None) -> str:
    """The scoring a QA set was published with: alias containment for PopQA (Mallen et al.
    score a generation correct when it contains any answer alias), SQuAD exact match otherwise."""
    return PRESETS.get(preset or "", {}).get("scoring", "em")

_LOCAL_SUFFIXES = {".jsonl", ".json", ".csv", ".tsv", ".parquet", ".gz", ".zst"}


def load_qa(source: str | Path, *, preset: str | None = None, mapping: dict[str, str] | None = None,
            split: str | None = None, on_error: str = "fail", skips: SkipCounter | None = None) -> list[dict]:
    """Read a QA set into records `{"id", "question", "answers", ...}` (extra fields kept): the
    JSON dicts of `QAPair`s (`QAPair.from_json` wraps one again).

    `source`: a local file, a local data-set folder, or a Hugging Face data set id (with
    `preset`, the preset's id is used when `source` is the preset's name). `mapping` maps our
    fields (`id`, `question`, `answers`, and any other) to the source's field names; dotted
    names reach into nested fields (`answer.aliases`). `split` picks the Hugging Face split.
    """
    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown QA preset {preset!r}; use one of {', '.join(PRESETS)}")
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
    skips = skips if skips is not None else SkipCounter()
    path = Path(str(source))
    if path.is_file():
        rows = _local_rows(path, on_error, skips)
        where = str(path)
    elif path.is_dir() or _folder_config(str(source)) or \
            not (path.suffix in _LOCAL_SUFFIXES or str(source).startswith((".", "/"))):
        rows, where = _hub_rows(str(source), preset, split)
    else:
        raise InputError(f"{source}: no such QA file")
    records: list[dict] = []
    first_line: dict[str, str] = {}
    for line, row in rows:
        try:
            pair = _convert(row, preset, mapping, where, line)
            if pair.id in first_line:
                raise ValueError(f"duplicate id {pair.id!r} (first at {first_line[pair.id]})")  # type: ignore[index]
        except ValueError as exc:
            skips.bad_record(f"{where}:{line}: {exc}", on_error)
            continue
        first_line[pair.id] = f"{where}:{line}"  # type: ignore[index]
        records.append(pair.to_json())
    if not records:
        raise InputError(f"{where}: no usable QA records" + (f" ({skips.summary()})" if skips.skipped else ""))
    return records


def _folder_config(source: str) -> bool:
    """A local data-set folder with a config named after a colon (`FOLDER:CONFIG`)."""
    folder = source.rpartition(":")[0]
    return bool(folder) and Path(folder).is_dir()


def _local_rows(path: Path, on_error: str, skips: SkipCounter) -> Iterator[tuple[Any, dict]]:
    """Rows of a local QA file; undecodable text or a broken file is an `InputError`."""
    try:
        yield from _local_rows_unchecked(path, on_error, skips)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start} of a decoded block: {exc.reason})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: broken CSV/TSV ({exc})") from None
    except Exception as exc:
        if type(exc).__module__.startswith("pyarrow"):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{path}: not a readable Parquet file ({first})") from None
        raise


def _local_rows_unchecked(path: Path, on_error: str, skips: SkipCounter) -> Iterator[tuple[Any, dict]]:
    name = path.name.lower()
    for compressed in (".gz", ".zst"):
        if name.endswith(compressed):
            name = name[: -len(compressed)]
    if name.endswith(".jsonl"):
        yield from read_records(path, on_error=on_error, skips=skips)  # type: ignore[arg-type]
    elif name.endswith(".json"):
        with open_text(path) as handle:
            try:
                data = json.load(handle)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{exc.lineno}: broken JSON ({exc.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise InputError(f"{path}: expected a JSON array of QA records (or JSON lines in a .jsonl file)")
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                skips.bad_record(f"{path}:item {i}: expected a JSON object", on_error)
                continue
            yield f"item {i}", row
    elif name.endswith((".csv", ".tsv")):
        with open_text(path) as handle:
            reader = csv.DictReader(handle, delimiter="\t" if name.endswith(".tsv") else ",")
            for row in reader:
                # The line where the row ends (a quoted field may span lines).
                yield reader.line_num, dict(row)
    elif name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for i, row in enumerate(table.to_pylist()):
            yield f"row {i}", row
    else:
        raise InputError(f"{path}: unknown QA file type (use .jsonl, .json, .csv, .tsv or .parquet)")


def _hub_rows(source: str, preset: str | None, split: str | None) -> tuple[Iterator[tuple[Any, dict]], str]:
    import datasets

    info = PRESETS.get(preset or "", {})
    name, config = source, None
    if ":" in source and not Path(source).exists():  # NAME:CONFIG
        name, _, config = source.rpartition(":")
    if name == preset:
        name, config = info.get("hub", name), config or info.get("config")
    folder = Path(source)
    if split is None and not folder.is_dir():
        split = info.get("split")
    saved = folder.is_dir() and any((folder / f).exists() for f in ("dataset_info.json", "state.json",
                                                                      "dataset_dict.json"))
    try:
        if saved:  # written by save_to_disk (a copy made where the hub can be reached)
            data = datasets.load_from_disk(str(folder))
            if isinstance(data, datasets.DatasetDict) and split is not None:
                if split not in data:
                    raise InputError(f"{source}: no split {split!r} (has {', '.join(data)})")
                data = data[split]
        else:
            data = datasets.load_dataset(name, config, split=split) if config else \
                datasets.load_dataset(name, split=split)
    except FileNotFoundError as exc:
        raise InputError(f"{source}: no such QA file or data set ({exc})") from None
    except (ValueError, ConnectionError, OSError) as exc:
        raise InputError(f"{source}: could not load the data set ({type(exc).__name__}: {exc})") from None
    if isinstance(data, datasets.DatasetDict):
        if len(data) != 1:
            raise InputError(f"{source}: choose a split with --split ({', '.join(data)})")
        split, data = next(iter(data.items()))
    where = f"{name}{':' + config if config else ''}[{split}]"
    return ((f"row {i}", row) for i, row in enumerate(data)), where


def _get(row: dict, dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _aliases(value: Any, field: str) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"field {field!r} looks like a JSON list but does not parse") from None
        else:
            value = [text] if text else []
    if value is None:
        raise ValueError(f"missing field {field!r}")
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ValueError(f"field {field!r} must be a list of strings")
    seen: dict[str, None] = {}
    for alias in value:
        if alias.strip():
            seen.setdefault(alias.strip(), None)
    if not seen:
        raise ValueError(f"field {field!r} is an empty answer list")
    return list(seen)


def _convert(row: dict, preset: str | None, mapping: dict[str, str] | None, where: str, line: Any) -> QAPair:
    mapping = dict(mapping or {})
    extra: dict[str, Any] = {}
    if preset == "trivia_qa":
        mapping.setdefault("id", "question_id" if "answer" in row else "id")
        if "answer" in row and isinstance(row["answer"], dict):
            aliases = list(row["answer"].get("aliases") or [])
            if row["answer"].get("value"):
                aliases.append(row["answer"]["value"])
            row = {**row, "_answers": aliases}
            mapping.setdefault("answers", "_answers")
    elif preset == "nq_open":
        mapping.setdefault("answers", "answer" if "answer" in row else "answers")
    elif preset == "popqa":
        mapping.setdefault("answers", "possible_answers" if "possible_answers" in row else "answers")
        relation = row.get("prop")
        if relation is not None:
            extra["relation"] = relation
        pop = row.get("s_pop", row.get("pop"))
        if pop not in (None, ""):
            extra["pop"] = int(float(pop))
        for key in ("subj", "obj", "s_uri", "o_uri", "s_wiki_title"):
            if row.get(key) not in (None, ""):
                extra[key] = row[key]
        if not row.get("question") and row.get("subj") and relation:
            from probe.evaluation import relation_question

            row = {**row, "question": relation_question(relation, row["subj"])}
    id_field = mapping.get("id", "id")
    q_field = mapping.get("question", "question")
    a_field = mapping.get("answers", "answers" if "answers" in row or "answer" not in row else "answer")
    question = _get(row, q_field)
    if not isinstance(question, str):
        raise ValueError(f"missing field {q_field!r}" if question is None else f"field {q_field!r} must be a string")
    if not question.strip():
        raise ValueError(f"field {q_field!r} is empty")
    answers = _aliases(_get(row, a_field), a_field)
    raw_id = _get(row, id_field)
    if raw_id is None or raw_id == "":
        if "id" in mapping:
            raise ValueError(f"missing field {id_field!r}")
        # No id in the source: the position in it, stable across runs.
        raw_id = f"{Path(where).name}:{line}" if not str(line).startswith("row ") else f"{where}:{line[4:]}"
    fields: dict[str, Any] = {}  # the source's other fields, after the QA pair's own
    used = {id_field, q_field, a_field, "_answers"}
    for ours, theirs in mapping.items():
        if ours not in QAPair.FIELDS and ours not in fields:
            fields[ours] = _get(row, theirs)
            used.add(theirs)
    if preset is None:
        for key, value in row.items():
            if key not in used and key not in QAPair.FIELDS and key not in fields:
                fields[key] = value
    else:
        for key in ("gold_passage", "gold_passages", "q_entity", "a_entity", "relation"):
            if key in row and key not in fields:
                fields[key] = row[key]
    fields.update({k: v for k, v in extra.items() if k not in fields})
    _gold_passages(row, question.strip(), answers, fields)
    return QAPair(str(raw_id), question.strip(), answers, fields)


_EVIDENCE = (("entity_pages", "wiki_context"), ("search_results", "search_context"))  # TriviaQA's rc configs


def _gold_passages(row: dict, question: str, answers: list[str], fields: dict[str, Any]) -> None:
    """Set `gold_passage(s)` in `fields` from the row's context or evidence (module docstring);
    the raw evidence is not kept (whole web pages and articles, megabytes per question)."""
    for key, _ in _EVIDENCE:
        fields.pop(key, None)
    if fields.get("gold_passage") or fields.get("gold_passages"):
        return
    context = row.get("context")
    if isinstance(context, str) and context.strip():  # SQuAD style: the paragraph the answer is in
        fields.pop("context", None)
        fields["gold_passage"] = context.strip()
        return
    documents = [text for key, text_key in _EVIDENCE if isinstance(row.get(key), dict)
                 for text in row[key].get(text_key) or [] if isinstance(text, str) and text.strip()]
    if documents:
        from probe.evaluation import evidence_passages

        gold = evidence_passages(question, answers, documents)
        if gold:
            fields["gold_passages"] = gold
