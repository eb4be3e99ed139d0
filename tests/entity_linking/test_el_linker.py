"""The linker's rules (fast path) and the spaCy component, which must give the same links."""

from __future__ import annotations

import json

import pytest

from entity_linking import KnowledgeBase, Linker, Mention
from tests.paths import SHARED_DATA


def links(linker, text):
    return [(m.text, m.kb_id) for m in linker.link(text)]


def test_mentions_have_offsets(kb):
    text = "Yesterday Acme Labs hired Zoë O'Brien."
    mentions = Linker(kb).link(text)
    assert mentions == [Mention(10, 19, "Acme Labs", "O1", 1.0), Mention(26, 37, "Zoë O'Brien", "P3", 1.0)]
    assert all(text[m.start:m.end] == m.text for m in mentions)


def test_case_and_punctuation_variants(kb):
    linker = Linker(kb)
    for variant in ["Zoë O'Brien", "Zoë O’Brien", "ZOË O'BRIEN", "Zoe OBrien", "Zoe O Brien", "Zoë O-Brien"]:
        assert links(linker, f"I met {variant} yesterday.") == [(variant, "P3")], variant
    # all lower case does not match a name only ever written with capitals, unless asked
    assert links(linker, "zoë o'brien") == []
    assert links(Linker(kb, case="insensitive"), "zoë o'brien") == [("zoë o'brien", "P3")]
    assert links(linker, "ACME LABORATORIES and Acme-Labs") == [("ACME LABORATORIES", "O1"), ("Acme-Labs", "O1")]


def test_smart_case_and_min_chars(kb):
    assert links(Linker(kb), "You may go in May.") == [("May", "M1")]
    assert links(Linker(kb, case="insensitive"), "You may go in May.") == [("may", "M1"), ("May", "M1")]
    assert links(Linker(kb, min_chars=4), "Oregon, IL") == [("Oregon", "S2")]


def test_no_matches_inside_words(kb):
    assert links(Linker(kb), "Parisian Mayors of Oregonia and AcmeLabs") == []
    assert links(Linker(kb), "(Paris)") == [("Paris", "C3")]
    assert links(Linker(kb), "Paris's museums") == [("Paris", "C3")]


def test_longest_match_wins(kb):
    assert links(Linker(kb), "the City of Light") == [("City of Light", "C3")]
    assert links(Linker(kb), "John Smith the painter") == [("John Smith", "P2")]


def test_punctuation_must_match_the_alias(kb):
    # "Springfield, Illinois" is an alias; "Springfield. Illinois" is two sentences
    assert links(Linker(kb), "Springfield. Illinois") == [("Springfield", "C1"), ("Illinois", "S1")]
    assert links(Linker(kb), "Springfield; Oregon") == [("Springfield", "C2"), ("Oregon", "S2")]


def test_qualifier_after_comma(kb):
    assert links(Linker(kb), "born in Springfield, Oregon.") == [("Springfield", "C2"), ("Oregon", "S2")]
    assert links(Linker(kb, link_qualifiers=False), "born in Springfield, Oregon.") == [("Springfield, Oregon", "C2")]


def test_disambiguation_by_context_prior_and_coherence(kb):
    linker = Linker(kb)
    # context: the words of the candidate's description near the mention
    assert links(linker, "John Smith, a chemist, spoke.")[0] == ("John Smith", "P1")
    assert links(linker, "John Smith, a painter, spoke.")[0] == ("John Smith", "P2")
    # no context: the prior (P2 0.3 > P1 0.2; C1 0.5 > C2 0.4)
    assert links(linker, "John Smith spoke.") == [("John Smith", "P2")]
    assert links(linker, "We drove to Springfield.") == [("Springfield", "C1")]
    assert links(linker, "We drove to Springfield in Oregon.")[0] == ("Springfield", "C2")
    # coherence: the same entity linked unambiguously elsewhere in the text
    text = "Springfield, Oregon is small. Later we drove back to Springfield."
    assert [m.kb_id for m in linker.link(text)] == ["C2", "S2", "C2"]
    # the score is the chosen entity's share
    p2 = linker.link("John Smith spoke.")[0]
    assert 0.5 < p2.score < 1.0
    assert linker.link("Paris")[0].score == 1.0


def test_nil_threshold(kb):
    assert links(Linker(kb, nil_threshold=0.9), "John Smith spoke in Rome.") == []
    assert links(Linker(kb, nil_threshold=0.9), "John Smith the chemist.") == [("John Smith", "P1")]
    with pytest.raises(ValueError):
        Linker(kb, nil_threshold=2)


def test_link_many_and_link_ids(kb):
    linker = Linker(kb)
    texts = ["Paris and Paris and Acme Labs", "", "nothing here"]
    assert [[m.kb_id for m in ms] for ms in linker.link_many(texts)] == [["C3", "C3", "O1"], [], []]
    assert linker.link_ids(texts[0]) == ["C3", "O1"]


TEXTS = [
    "John Smith, a chemist from Springfield, Illinois, met Zoë O’Brien of Acme Labs in May.",
    "John Smith the painter moved to the City of Light. ZOE OBRIEN stayed in Springfield, Oregon.",
    "Springfield, Oregon is small. Later we drove back to Springfield. Illinois? No, Oregon!",
    "Parisian food (Paris) and acme-labs; may we go in May? J. Smith did.",
    "Zoe O Brien\nand\tJohn   Smith",
]


def test_spacy_component_agrees_with_fast_path(kb):
    import spacy

    import entity_linking._spacy  # noqa: F401  registers the factory (an entry point once installed)

    nlp = spacy.blank("en")
    nlp.add_pipe("ltprobe_linker").set_kb(kb)
    linker = Linker(kb)
    for text, doc in zip(TEXTS, nlp.pipe(TEXTS)):
        fast = [(m.start, m.end, m.kb_id) for m in linker.link(text)]
        ents = [(e.start_char, e.end_char, e.kb_id_) for e in doc.ents]
        assert ents == fast, text
        assert all(e.label_ == kb[e.kb_id_].type.upper() for e in doc.ents)
        assert all(0 < e._.ltprobe_score <= 1 for e in doc.ents)


def test_spacy_component_from_config_path(kb, tmp_path):
    import spacy

    import entity_linking._spacy  # noqa: F401

    kb.save(tmp_path / "kbdir")
    nlp = spacy.blank("en")
    nlp.add_pipe("ltprobe_linker", config={"kb": str(tmp_path / "kbdir"), "nil_threshold": 0.9})
    doc = nlp("John Smith spoke at Acme Labs.")
    assert [(e.text, e.kb_id_) for e in doc.ents] == [("Acme Labs", "O1")]
    # existing entities can be kept
    nlp2 = spacy.blank("en")
    ruler = nlp2.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "CITY", "pattern": "Paris"}])
    nlp2.add_pipe("ltprobe_linker", config={"kb": str(tmp_path / "kbdir"), "overwrite_ents": False})
    doc = nlp2("Paris and Acme Labs")
    assert [(e.text, e.label_, e.kb_id_) for e in doc.ents] == [("Paris", "CITY", ""), ("Acme Labs", "ORGANISATION", "O1")]


def test_factory_defaults_match_linker(kb):
    import inspect

    import spacy

    from entity_linking._spacy import make_linker  # noqa: F401  (registers the factory)

    defaults = spacy.blank("en").get_factory_meta("ltprobe_linker").default_config
    params = inspect.signature(Linker.__init__).parameters
    for name, value in defaults.items():
        if name in params and name != "kb":
            assert params[name].default == value, name


def test_real_text_google_re_place_of_birth():
    """Real Wikipedia snippets (LAMA Google-RE): a KB of the people and birth places of the
    file, then the place must be linked in the snippets that name it."""
    path = SHARED_DATA / "real" / "lama_google_re" / "place_of_birth_test.jsonl"
    if not path.exists():
        pytest.skip("shared data not available")
    rows = [json.loads(line) for line in path.open(encoding="utf-8")][:800]
    entities: dict[str, dict] = {}
    for row in rows:
        if row.get("obj_w"):
            place = entities.setdefault(row["obj_w"], {"id": row["obj_w"], "name": row["obj_label"],
                                                        "aliases": [], "type": "place", "prior": 0.0})
            place["prior"] += 1
            # aliases without letters or digits (flag emoji) are refused by the KB: leave them out
            place["aliases"] += [a for a in row["obj_aliases"] if any(c.isalnum() for c in a)
                                 and a not in place["aliases"]]
        entities.setdefault(row["sub"], {"id": row["sub"], "name": row["sub_label"], "aliases": [],
                                         "type": "person", "prior": 1.0})
    kb = KnowledgeBase.from_records(entities.values())
    linker = Linker(kb)
    named = found = subjects = 0
    for row in rows:
        snippet = row["evidences"][0]["snippet"]
        ids = set(linker.link_ids(snippet))
        if row.get("obj_w") and row["obj_label"] in snippet:
            named += 1
            found += row["obj_w"] in ids
        subjects += row["sub"] in ids
    assert named > 200
    print(f"place linked in {found}/{named} snippets naming it; subject in {subjects}/{len(rows)}")
    assert found / named >= 0.95, (found, named)
    assert subjects / len(rows) >= 0.65, subjects  # snippets often name the person by surname only


def test_normalize_maps_each_character_and_keeps_the_length():
    from entity_linking import normalize

    text = "Who? Zoë O'Brien met ŁUKASZ in İstanbul (中文)?! Café\u0301 costs 5€?"
    assert len(normalize(text)) == len(text)
    # character by character: the mixed-text fast path gives what each character gives alone
    assert normalize(text) == "".join(normalize(c) for c in text)
    assert normalize("Zoë? ŁUKASZ?") == "zoë  łukasz "
