"""Property-based fuzzing of every reader of user files: any input gives a result or a one-line
`InputError`, never another exception.

Readers: JSONL records (plain, gzip, zstd, truncated streams), QA files (JSONL, CSV, TSV,
Parquet), YAML configs with `--set` overrides, LINK rules (JSON and YAML). Inputs are built
from near-valid pieces (records with missing, mistyped or extra fields, broken quoting, bad
bytes) as well as raw bytes. Each reader gets a bounded number of examples (a few seconds).
"""

from __future__ import annotations

import gzip
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entity_linking.io import InputError, read_records

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=10)
QA_FIELDS = ["id", "question", "answers", "q_entity", "a_entity", "relation", "answer", "text", "entities"]
records = st.dictionaries(st.sampled_from(QA_FIELDS) | st.text(max_size=6), values, max_size=6)
json_lines = st.lists(st.one_of(records.map(lambda r: json.dumps(r)),
                                values.map(json.dumps),
                                st.text(max_size=40),
                                st.just(""), st.just("{"), st.just('{"id": "a", "question": "q", "answers": ["x"]}')),
                      max_size=8).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass"))
raw = st.binary(max_size=300)
file_bytes = st.one_of(json_lines, raw, json_lines.map(lambda b: b[: len(b) // 2]))


def _check(call) -> object:
    """Run a reader: a result, or an InputError of one line; anything else fails the test."""
    try:
        return call()
    except InputError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        return exc


def _file(data: bytes, suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="ltprobe-fuzz-"))
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    return path


def _consume(path: Path, **kwargs) -> list:
    return list(read_records(path, **kwargs))


@FUZZ
@given(data=file_bytes, skip=st.booleans())
def test_jsonl_records(data, skip):
    path = _file(data, ".jsonl")
    _check(lambda: _consume(path, on_error="skip" if skip else "fail",
                            required={"id": str, "question": str, "answers": list}))


@FUZZ
@given(data=file_bytes, kind=st.sampled_from(["gz", "zst"]), cut=st.one_of(st.none(), st.integers(0, 200)),
       flip=st.one_of(st.none(), st.integers(0, 200)))
def test_compressed_records(data, kind, cut, flip):
    if kind == "gz":
        blob = gzip.compress(data)
    else:
        zstandard = pytest.importorskip("zstandard")
        blob = zstandard.ZstdCompressor().compress(data)
    if flip is not None and flip < len(blob):
        blob = blob[:flip] + bytes([blob[flip] ^ 0x5A]) + blob[flip + 1:]
    if cut is not None:
        blob = blob[:cut]
    path = _file(blob, f".jsonl.{kind}")
    _check(lambda: _consume(path, on_error="skip"))
    _check(lambda: _consume(path, on_error="fail"))


def _csv_text(rows: list[list[str]], sep: str) -> bytes:
    return "\n".join(sep.join(cells) for cells in rows).encode("utf-8", "surrogatepass")


cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
csv_rows = st.lists(st.lists(st.one_of(cells, st.sampled_from(["id", "question", "answers", '"', '""', "[]",
                                                                '["a", "b"]', "a|b"])),
                             min_size=0, max_size=4), max_size=6)


@FUZZ
@given(rows=csv_rows, sep=st.sampled_from([",", "\t"]), header=st.booleans(), junk=st.one_of(st.none(), raw))
def test_qa_csv_tsv(rows, sep, header, junk):
    from probe.data import load_qa

    if header:
        rows = [["id", "question", "answers"]] + rows
    data = junk if junk is not None else _csv_text(rows, sep)
    path = _file(data, ".csv" if sep == "," else ".tsv")
    _check(lambda: load_qa(path))
    _check(lambda: load_qa(path, on_error="skip"))


@FUZZ
@given(data=file_bytes)
def test_qa_jsonl(data):
    from probe.data import load_qa

    path = _file(data, ".jsonl")
    _check(lambda: load_qa(path))
    _check(lambda: load_qa(path, on_error="skip"))


column_values = st.one_of(
    st.lists(st.one_of(st.none(), cells), min_size=1, max_size=4),
    st.lists(st.integers(-5, 5), min_size=1, max_size=4),
    st.lists(st.lists(cells, max_size=3), min_size=1, max_size=4),
    st.lists(st.floats(allow_nan=True), min_size=1, max_size=4),
)


@FUZZ
@given(columns=st.dictionaries(st.sampled_from(["id", "question", "answers", "answer", "extra"]), column_values,
                               max_size=4),
       junk=st.one_of(st.none(), raw), cut=st.one_of(st.none(), st.integers(0, 400)))
def test_qa_parquet(columns, junk, cut):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from probe.data import load_qa

    if junk is not None:
        data = junk
    else:
        n = min((len(v) for v in columns.values()), default=0)
        table = pa.table({k: pa.array(v[:n]) for k, v in columns.items()}) if columns else pa.table({"x": []})
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        data = buffer.getvalue()[:cut] if cut is not None else buffer.getvalue()
    path = _file(data, ".parquet")
    _check(lambda: load_qa(path))


yaml_text = st.one_of(
    values.map(lambda v: json.dumps({"eval": v}) if not isinstance(v, dict) else json.dumps(v)),
    st.dictionaries(st.sampled_from(["world", "model", "eval", "rag", "analysis", "index", "data", "linking",
                                     "bogus"]), values, max_size=4).map(json.dumps),
    st.text(max_size=80),
)
overrides = st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}",
              st.sampled_from(["eval.shots", "model.path", "world.people", "eval", "a.b.c", "rag.k", ""]),
              st.text(max_size=12)),
    st.text(max_size=15)), max_size=3)


@FUZZ
@given(text=yaml_text, sets=overrides)
def test_configs(text, sets):
    from probe.pipeline import load_config

    path = _file(text.encode("utf-8", "surrogatepass"), ".yaml")
    _check(lambda: load_config(path, sets))


rule = st.fixed_dictionaries({}, optional={
    "id": st.one_of(cells, values), "rule": st.one_of(cells, values), "statement": st.one_of(cells, values),
    "variables": st.one_of(values, st.dictionaries(cells, st.one_of(cells, values), max_size=3)),
    "type": values, "template": st.one_of(cells, values)})
rules_doc = st.one_of(st.lists(rule, max_size=3), st.dictionaries(cells, st.lists(rule, max_size=2), max_size=2),
                      values)


@FUZZ
@given(doc=rules_doc, as_yaml=st.booleans(), junk=st.one_of(st.none(), raw))
def test_link_rules(doc, as_yaml, junk):
    from probe.link import load_rules

    if junk is not None:
        data = junk
    else:
        data = json.dumps(doc).encode("utf-8", "surrogatepass")  # JSON is YAML too
    path = _file(data, ".yaml" if as_yaml else ".json")
    _check(lambda: load_rules(path))
