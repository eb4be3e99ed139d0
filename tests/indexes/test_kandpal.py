"""`ltprobe import kandpal` + `ltprobe count` against an independent implementation of the
published counting heuristic (Kandpal et al.'s count_relevant_docs.py, issue 16), on fixtures
in the released formats generated here: an entity-map .npz of unsorted int64 document indices
with repeats, and QA-entity lines of DBpedia Spotlight records."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from probe.cli import main
from tests.paths import SHARED, SHARED_DATA

COUNTRY_FILE = SHARED / "data" / "country_entities_dbpedia_uris.txt"
DBP = "http://dbpedia.org/resource/"
N_DOCS = 400


def _spotlight(uri: str, form: str, offset: int) -> dict:
    return {"URI": uri, "support": "120", "types": "", "surfaceForm": form, "offset": str(offset),
            "similarityScore": "0.99", "percentageOfSecondRank": "0.01"}


def _countries() -> list[str]:
    if COUNTRY_FILE.exists():
        return [line.strip() for line in COUNTRY_FILE.read_text().splitlines() if line.strip()]
    return [DBP + name for name in ("France", "Germany", "Japan", "United_States")]  # a subset


def make_fixture(folder: Path, seed: int = 0, compressed: bool = False, n_qa: int = 300) -> tuple[Path, Path, dict, list]:
    """An entity map (some entities absent from it, arrays unsorted with repeats) and QA lines."""
    rng = np.random.default_rng(seed)
    countries = _countries()[:12]
    people = [f"{DBP}Person_{i}" for i in range(60)]
    places = [f"{DBP}Place_{i}" for i in range(40)]
    missing = [f"{DBP}Unmapped_{i}" for i in range(5)]  # linked in QA, absent from the map
    emap = {}
    for uri in people + places + countries:
        n = int(rng.integers(0, 60)) if uri not in countries else int(rng.integers(100, 300))
        values = rng.integers(0, N_DOCS, size=n).astype(np.int64)
        if n > 2:
            values = np.concatenate([values, values[:3]])  # repeated indices, as the released maps
        emap[uri] = values  # unsorted
    emap[f"{DBP}Empty"] = np.zeros(0, dtype=np.int64)
    map_path = folder / "the_pile_entity_map.npz"
    (np.savez_compressed if compressed else np.savez)(map_path, **emap)
    pool = people + places + countries + missing
    lines = []
    for _ in range(n_qa):
        q = [pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(0, 4)))]
        a = [pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(0, 5)))]
        if q and rng.random() < 0.2:
            a.append(q[0])  # an answer mention of a question entity
        if a and rng.random() < 0.3:
            a.append(a[0])  # repeated mentions decide salience
        if rng.random() < 0.15:
            q.append(countries[int(rng.integers(0, len(countries)))])
        if rng.random() < 0.15:
            a.append(countries[int(rng.integers(0, len(countries)))])
        lines.append({"q_entities": [_spotlight(u, u.rsplit("/", 1)[1], 3 * i) for i, u in enumerate(q)],
                      "a_entities": [_spotlight(u, u.rsplit("/", 1)[1], 40 + 3 * i) for i, u in enumerate(a)]})
    qa_path = folder / "trivia_qa_unfiltered.nocontext_validation_entities.jsonl"
    qa_path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return map_path, qa_path, emap, lines


def published(line: dict, emap: dict, exclude: set[str]) -> dict:
    """The published heuristic, written from its description, on the raw released records."""
    def docs(uri: str) -> np.ndarray:
        return np.unique(emap[uri]) if uri in emap else np.zeros(0, dtype=np.int64)

    q = {e["URI"] for e in line["q_entities"]} - exclude
    answers = Counter(e["URI"] for e in line["a_entities"] if e["URI"] not in q)
    top = max(answers.values(), default=0)
    salient = [a for a, n in answers.items() if n == top]
    count = None
    if q and salient:
        count = max(len(np.intersect1d(docs(x), docs(y))) for x in q for y in salient)
    return {"count": count,
            "q_count": max((len(docs(x)) for x in q), default=None),
            "a_count": max((len(docs(a)) for a in answers), default=None)}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("compressed", [False, True])
def test_import_and_count_equal_the_published_heuristic(tmp_path, compressed, capsys):
    map_path, qa_path, emap, lines = make_fixture(tmp_path, seed=int(compressed), compressed=compressed)
    out = tmp_path / "imported"
    assert main(["import", "kandpal", "--entity-map", str(map_path), "--qa-entities", str(qa_path),
                 "--out", str(out)]) == 0
    info = json.loads((out / "index" / "index.json").read_text())
    assert info["doc_ids"] == "numbers" and info["n_entities"] == len(emap)
    qa_rows = _rows(out / "qa_entities.jsonl")
    assert [r["id"] for r in qa_rows] == [str(i) for i in range(len(lines))]
    countries = set(_countries())
    variants = [([], set()), (["--stoplist", "countries"], countries)]
    if COUNTRY_FILE.exists():
        variants.append((["--stoplist", str(COUNTRY_FILE)], countries))
    for extra, exclude in variants:
        counts = tmp_path / "counts.jsonl"
        assert main(["count", "--index", str(out / "index"), "--qa-entities", str(out / "qa_entities.jsonl"),
                     "--out", str(counts), *extra]) == 0
        rows = _rows(counts)
        assert len(rows) == len(lines)
        differs = 0
        for i, (row, line) in enumerate(zip(rows, lines)):
            expected = published(line, emap, exclude)
            assert row["id"] == str(i)
            assert {k: row[k] for k in expected} == expected, (i, extra, line)
            differs += expected != published(line, emap, set())
        if exclude:
            assert differs > 10  # the stop-list changed many lines, so it was tested
    # the fixture exercised every case the heuristic distinguishes
    statuses = Counter(r["status"] for r in _rows(tmp_path / "counts.jsonl"))
    assert statuses["ok"] > 100 and statuses["no_q_entity"] > 10 and statuses["no_a_entity"] > 10
    assert any(len(r["a_entities"]) > 1 for r in qa_rows)  # ties kept


def test_docs_maps_an_imported_count_back_to_document_indices(tmp_path, capsys):
    map_path, qa_path, emap, lines = make_fixture(tmp_path, n_qa=80)
    out = tmp_path / "imported"
    assert main(["import", "kandpal", "--entity-map", str(map_path), "--qa-entities", str(qa_path),
                 "--out", str(out)]) == 0
    counts = tmp_path / "counts.jsonl"
    assert main(["count", "--index", str(out / "index"), "--qa-entities", str(out / "qa_entities.jsonl"),
                 "--out", str(counts)]) == 0
    row = max(_rows(counts), key=lambda r: r["count"] or -1)
    assert row["count"] > 0
    capsys.readouterr()
    assert main(["docs", row["id"], "--index", str(out / "index"), "--qa-entities", str(out / "qa_entities.jsonl"),
                 "--json", "--limit", "1000"]) == 0
    result = json.loads(capsys.readouterr().out)
    q, a = row["pair"]
    expected = np.intersect1d(np.unique(emap[q]), np.unique(emap[a]))
    assert [d["id"] for d in result["docs"]] == [str(d) for d in expected]
    assert all(d["text"] == "" for d in result["docs"])  # no text in an imported map
    assert main(["docs", row["id"], "--index", str(out / "index"), "--qa-entities",
                 str(out / "qa_entities.jsonl")]) == 0
    assert "(no text stored)" in capsys.readouterr().out


def test_entity_map_reader_equals_numpy_load(tmp_path):
    from indexes import iter_entity_map

    for compressed in (False, True):
        map_path, _, emap, _ = make_fixture(tmp_path, compressed=compressed, n_qa=1)
        loaded = np.load(map_path, allow_pickle=False)
        got = dict(iter_entity_map(map_path))
        assert list(got) == list(loaded.files) == list(emap)
        for key in emap:
            assert got[key].dtype == loaded[key].dtype and np.array_equal(got[key], loaded[key])


def test_qa_ids_come_from_the_named_qa_set(tmp_path, capsys):
    _, qa_path, _, lines = make_fixture(tmp_path, n_qa=5)
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"id": f"tq_{i}", "question": f"Question {i}?", "answers": ["x"]}) + "\n"
                          for i in range(5)))
    assert main(["import", "kandpal", "--qa-entities", str(qa_path), "--qa", str(qa), "--out", str(tmp_path / "o")]) == 0
    assert [r["id"] for r in _rows(tmp_path / "o" / "qa_entities.jsonl")] == [f"tq_{i}" for i in range(5)]
    assert not (tmp_path / "o" / "index").exists()  # QA entities alone
    short = tmp_path / "short.jsonl"
    short.write_text("".join(qa.read_text().splitlines(keepends=True)[:4]))
    capsys.readouterr()
    assert main(["import", "kandpal", "--qa-entities", str(qa_path), "--qa", str(short), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "more lines than the 4 questions" in err and "Traceback" not in err
    assert not (tmp_path / "p" / "qa_entities.jsonl").exists()
    long_ = tmp_path / "long.jsonl"
    long_.write_text(qa.read_text() + json.dumps({"id": "extra", "question": "Q?", "answers": ["y"]}) + "\n")
    assert main(["import", "kandpal", "--qa-entities", str(qa_path), "--qa", str(long_), "--out", str(tmp_path / "p")]) == 2
    assert "5 lines, but the QA set named has 6 questions" in capsys.readouterr().err


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, **{DBP + "A": np.array([1, 2]), DBP + "B": np.array([0.5, 1.0])})
    assert main(["import", "kandpal", "--entity-map", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}: entity '{DBP}B': document indices must be integers" in capsys.readouterr().err
    np.savez(bad, **{DBP + "A": np.array([3, -1])})
    assert main(["import", "kandpal", "--entity-map", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "document index -1 is outside" in capsys.readouterr().err
    assert not (tmp_path / "o" / "index").exists()
    notzip = tmp_path / "notzip.npz"
    notzip.write_text("hello")
    assert main(["import", "kandpal", "--entity-map", str(notzip), "--out", str(tmp_path / "o")]) == 2
    assert "not an .npz entity map" in capsys.readouterr().err
    with zipfile.ZipFile(tmp_path / "pickled.npz", "w") as archive:  # an object array needs pickle
        with archive.open("x.npy", "w") as handle:
            np.lib.format.write_array(handle, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["import", "kandpal", "--entity-map", str(tmp_path / "pickled.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "object arrays are not read" in capsys.readouterr().err
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"q_entities": [{"URI": DBP + "A"}], "a_entities": [{"surfaceForm": "x"}]}) + "\n")
    assert main(["import", "kandpal", "--qa-entities", str(qa), "--out", str(tmp_path / "o")]) == 2
    assert f"{qa}:1: field 'a_entities': every entity needs a 'URI' string" in capsys.readouterr().err
    assert main(["import", "kandpal", "--out", str(tmp_path / "o")]) == 2
    assert "nothing to import" in capsys.readouterr().err


def test_shipped_country_stoplist():
    from indexes import load_stoplist

    stop = load_stoplist("countries")
    uris = {e for e in stop if e.startswith("http")}
    qids = {e for e in stop if e.startswith("Q")}
    assert len(uris) == 184 and len(qids) == 182 and len(stop) == 366
    assert {"Q142", "Q30", "Q145", DBP + "France"} <= stop
    if COUNTRY_FILE.exists():
        assert uris == set(_countries())


def _shared_labels() -> dict[str, set[str]]:
    """Wikidata id -> labels and aliases, from Mintaka's entities and Google-RE's subjects and objects."""
    labels: dict[str, set[str]] = {}

    def add(qid: object, *names: object) -> None:
        if isinstance(qid, str) and qid.startswith("Q"):
            labels.setdefault(qid, set()).update(n.lower() for n in names if isinstance(n, str) and n)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("label"):
                add(node.get("name"), node["label"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads((SHARED_DATA / "real" / "mintaka" / "mintaka_dev.json").read_text(encoding="utf-8")))
    for path in sorted((SHARED_DATA / "real" / "lama_google_re").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            for side in ("sub", "obj"):
                add(record.get(f"{side}_w"), record.get(f"{side}_label"), *(record.get(f"{side}_aliases") or []))
    return labels


def test_country_ids_carry_the_country_names_where_the_shared_data_labels_them():
    if not (SHARED_DATA / "real" / "mintaka").exists() or not (SHARED_DATA / "real" / "lama_google_re").exists():
        pytest.skip("the shared data (Mintaka, Google-RE) is not here")
    from importlib.resources import files
    from urllib.parse import unquote

    text = files("indexes").joinpath("data", "countries.txt").read_text(encoding="utf-8")
    shipped = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    uris = [e for e in shipped if e.startswith("http")]
    qids = [e for e in shipped if e.startswith("Q")]
    assert len(set(qids)) == len(qids) == 182
    names = [unquote(u.rsplit("/", 1)[1]).replace("_", " ").removesuffix(" (country)") for u in uris]
    names = [n for n in names if n not in ("Arab world", "North China Plain")]  # no Wikidata id here
    labels = _shared_labels()
    checked = wrong = 0
    for name, qid in zip(names, qids):
        if qid in labels:
            checked += 1
            # the name, or the name with more words (Q30 "United States of America")
            if not any(label == name.lower() or label.startswith(name.lower() + " ") for label in labels[qid]):
                wrong += 1
                print(f"{qid} is labelled {sorted(labels[qid])}, not {name!r}")
    assert checked == 100 and wrong == 0


def test_bench_import_smoke(capsys):
    assert main(["bench", "import", "--entities", "300", "--indices", "30000"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["counts_agree"] is True and result["n_entities"] == 300
    assert result["entities_per_s"] > 0 and result["import_peak_rss_mb"] > 0


def test_zip64_maps_with_more_members_than_a_plain_zip_directory_holds(tmp_path):
    """Over 65,535 members the .npz needs zip64 end records (The Pile's map has millions)."""
    from indexes.kandpal._bench import write_entity_map
    from indexes.kandpal._import import EntityMap

    path = tmp_path / "big.npz"
    write_entity_map(path, 66_000, 132_000, 1000, seed=3, progress=False)
    loaded = np.load(path, allow_pickle=False)
    with EntityMap(path) as entity_map:
        assert len(entity_map) == 66_000
        seen = 0
        for n, (name, values) in enumerate(entity_map):
            if n % 6_000 == 0 or n == 65_999:
                assert np.array_equal(values, loaded[name])
            seen += 1
    assert seen == 66_000


def test_a_damaged_member_is_refused(tmp_path, capsys):
    path = tmp_path / "m.npz"
    np.savez(path, **{DBP + "A": np.arange(50, dtype=np.int64)})
    data = bytearray(path.read_bytes())
    at = bytes(data).index(np.arange(50, dtype=np.int64).tobytes()) + 8
    data[at] ^= 0xFF  # one document index changed on disk
    path.write_bytes(bytes(data))
    assert main(["import", "kandpal", "--entity-map", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "CRC check failed" in capsys.readouterr().err
