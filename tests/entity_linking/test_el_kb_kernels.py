"""Format 4's build-time arrays and the one-call kernel path (`KnowledgeBase.link_spans`): the
same floats and the same links as the per-entity Python path (`Linker._table`,
`Linker.resolve`) and as format 1, on ambiguous, punctuated and Unicode names."""

from __future__ import annotations

import json
import math

import pytest

from entity_linking import InputError, KnowledgeBase, Linker
from tests.entity_linking.test_el_kb_format import TEXTS, TRICKY

# shared names with context words, punctuated aliases ("Smith, John"), qualifiers whose tail
# holds several overlapping names, title-case and dotted capitals, non-ASCII punctuation
RECORDS = TRICKY + [
    {"id": "P1", "name": "John Smith", "aliases": ["Smith, John", "J. Smith"], "type": "person",
     "description": "chemist born in Springfield", "prior": 2.0},
    {"id": "P2", "name": "John Smith", "aliases": ["Smith, John"], "type": "person",
     "description": "painter born in Lyon", "prior": 2.0},
    {"id": "P3", "name": "John Smith", "aliases": [], "type": "person", "description": "", "prior": 0.0},
    {"id": "C1", "name": "Lyon", "aliases": ["Lyon, France"], "type": "city", "description": "city in France",
     "prior": 3.0},
    {"id": "C2", "name": "Lyon", "aliases": [], "type": "city", "description": "town in Texas", "prior": 1.0},
    {"id": "S1", "name": "Upper Saxony", "aliases": ["Saxony", "Upper Saxony, Saxony Upper"], "type": "region",
     "description": "région in Deutschland", "prior": 1.0},
    {"id": "S2", "name": "Saxony Upper", "aliases": ["Saxony"], "type": "region", "description": "", "prior": 1.0},
    {"id": "D1", "name": "ǅemal Čolić", "aliases": ["Džemal «Dž» Čolić", "Čolić – Džemal"], "type": "person",
     "description": "writer from Sarajevo", "prior": 1.0},
    {"id": "D2", "name": "Dr. No", "aliases": ["DR. NO"], "type": "film", "description": "film", "prior": 1.0},
    {"id": "D3", "name": "no", "aliases": [], "type": "word", "description": "", "prior": 0.0},
    {"id": "F1", "name": "Foo , Bar", "aliases": [], "type": "", "description": "", "prior": 0.0},
    {"id": "F2", "name": "Bar", "aliases": [], "type": "", "description": "", "prior": 0.0},
]
MORE_TEXTS = TEXTS + [
    "John Smith, the chemist, met John Smith the painter in Lyon. Smith, John wrote from Lyon, France.",
    "Smith. John left; smith, john stayed. J. Smith and j. smith; Smith ,John and Smith,\u00a0John.",
    "The painter John Smith lived in Lyon, a city in France; the chemist John Smith in Springfield, Illinois.",
    "Upper Saxony, Saxony Upper is one name; Upper Saxony\u2003, Saxony Upper is another; Saxony alone.",
    "ǅemal Čolić and Džemal «Dž» Čolić and Čolić – Džemal and Čolić - Džemal, the writer from Sarajevo.",
    "DR. NO and Dr. No and dr. no and Dr.No; no, no and NO. Ǆemal ČOLIĆ in ǈyon.",
    "Lyon\x00Lyon, France\ud800 John Smith \U0001F600 Springfield,\tIllinois and Springfield ,Illinois.",
    "lyon, france and LYON, FRANCE; İstanbul, Zoë O’Brien — Zoe O'Brien, ZOË O`BRIEN.",
    "Foo\u00a0, Bar and Foo , Bar and Foo  ,  Bar; Foo\u2003\u2003, Bar.",
]


def _python_path(linker: Linker) -> Linker:
    """The same linker without the kernels: `resolve` in Python, candidates through `_table`."""
    linker._link_spans = None
    linker._contexts = None
    return linker


def _all_links(linker: Linker, texts) -> list:
    return [([(m.start, m.end, m.text, m.kb_id, m.score) for m in linker.link(t)], linker.link_ids(t),
             [(m.start, m.end, m.kb_id, m.score, m.candidates) for m in linker.link_question(t)]) for t in texts]


@pytest.fixture(scope="module")
def kbs(tmp_path_factory):
    from entity_linking.kb import _legacy

    folder = KnowledgeBase.write(KnowledgeBase.from_records(RECORDS), tmp_path_factory.mktemp("kb") / "kb",
                                 progress=False)
    return {"memory": KnowledgeBase.from_records(RECORDS), "loaded": KnowledgeBase.load(folder),
            "format 1": _legacy.KnowledgeBase.from_records(RECORDS)}


@pytest.mark.parametrize("where", ["memory", "loaded"])
def test_context_arrays_hold_context_words_and_prior_terms(kbs, where):
    kb = kbs[where]
    group_off, group_mem, group_prior, ctx_off, ctx_word, blob, off, weight = kb._context_arrays()
    words = [bytes(blob[off[w]:off[w + 1]]).decode("utf-8") for w in range(len(off) - 1)]
    assert words == sorted(words)
    for i in range(len(kb)):
        mine = [(words[w], float(weight[w])) for w in ctx_word[ctx_off[i]:ctx_off[i + 1]]]
        assert mine == sorted(kb.context_words(i).items())  # same words, same order, same floats
    assert len(group_off) > 5
    for g in range(len(group_off) - 1):
        members = group_mem[group_off[g]:group_off[g + 1]].tolist()
        priors = [float(kb.priors[c]) for c in members]
        total = sum(priors)
        shares = [max(p, 1e-6 * total) / total for p in priors] if total > 0 else [1 / len(priors)] * len(priors)
        assert group_prior[group_off[g]:group_off[g + 1]].tolist() == [math.log(s) for s in shares]


@pytest.mark.parametrize("options", [{}, {"case": "insensitive", "link_qualifiers": False},
                                     {"context_chars": 8, "prior_weight": 0.5, "min_chars": 4},
                                     {"nil_threshold": 0.0, "question_lowercase": True}])
def test_kernel_path_links_as_the_python_path_and_format_1(kbs, options):
    expected = _all_links(Linker(kbs["format 1"], **options), MORE_TEXTS)
    assert any(len(m[0]) > 4 for m in expected)
    for where in ("memory", "loaded"):
        assert _all_links(Linker(kbs[where], **options), MORE_TEXTS) == expected, where
        assert _all_links(_python_path(Linker(kbs[where], **options)), MORE_TEXTS) == expected, where


def test_kernel_path_on_generated_documents(kbs):
    from entity_linking._bench import generate

    records, documents = generate(3000, 200, seed=5)
    kb = KnowledgeBase.from_records(records)
    texts = [d["text"] for d in documents]
    fast, slow = _all_links(Linker(kb), texts), _all_links(_python_path(Linker(kb)), texts)
    assert fast == slow and sum(len(d[0]) for d in fast) > 1000
    assert any(not t.isascii() for t in texts)
    assert any(t[m[1]:m[1] + 1] == "," for t, d in zip(texts, fast) for m in d[0])  # qualifiers


def test_character_properties_as_python_reads_them():
    from entity_linking._normalize import punctuation_shape
    from entity_linking.kb import _kernels as k
    from entity_linking.kb._store import CharProps

    props = CharProps()
    codes = list(range(0x3000)) + [0xD800, 0xFF0C, 0x1F600, 0x10FFFF]
    props.fill(__import__("numpy").array(codes, dtype="uint32"))
    for code in codes:
        c = chr(code)
        value = int(props.table[code])
        shape = punctuation_shape(c)
        assert bool(value & int(k.PUNCT)) == bool(shape), hex(code)
        if shape:
            assert chr(value & int(k.CHAR)) == shape[0], hex(code)
        assert bool(value & int(k.LOWER)) == c.islower(), hex(code)
        assert bool(value & int(k.NOT_LOWER)) == (not ("a" + c).islower()), hex(code)
        assert bool(value & int(k.SPACE)) == c.isspace(), hex(code)


def test_format_3_folder_refused_with_the_rebuild_command(tmp_path, kb):
    folder = KnowledgeBase.write(iter(kb), tmp_path / "kb", progress=False)
    meta = json.loads((folder / "kb.json").read_text(encoding="utf-8"))
    meta["version"] = 3
    (folder / "kb.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(InputError) as info:
        KnowledgeBase.load(folder)
    message = str(info.value)
    assert "\n" not in message and "version 3" in message and "ltprobe kb build" in message


def test_damaged_context_arrays_refused(tmp_path, kb):
    import numpy as np

    folder = KnowledgeBase.write(iter(kb), tmp_path / "kb", progress=False)
    words = np.load(folder / "ctx_word.npy")
    words[0] = 10**6
    np.save(folder / "ctx_word.npy", words)
    with pytest.raises(InputError, match="ctx_word.npy: index out of range"):
        KnowledgeBase.load(folder)
