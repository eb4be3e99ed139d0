"""The controlled world: shapes, determinism, long tail, shared names, exact gold links."""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import ahocorasick
import pytest

from entity_linking.io import InputError, read_records
from probe.world import WorldConfig, generate_world
from probe.world._world import load_templates

FILES = ["corpus.jsonl", "reading.jsonl", "drill.jsonl", "encyclopedia.jsonl", "kb.jsonl", "qa.jsonl",
         "truth.jsonl"]


def _load(path: Path) -> list[dict]:
    return [record for _, record in read_records(path)]


def _alias_hits(texts: list[str], kb: list[dict]) -> list[dict[str, set[str]]]:
    """For each text, alias (lower-cased) -> entity ids having it, for every alias occurring at
    word boundaries, case-insensitive. Independent of the generator's own checks."""
    owners: dict[str, set[str]] = defaultdict(set)
    for entry in kb:
        for alias in entry["aliases"]:
            owners[alias.lower()].add(entry["id"])
    automaton = ahocorasick.Automaton()
    for alias in owners:
        automaton.add_word(alias, alias)
    automaton.make_automaton()
    out = []
    for text in texts:
        low = text.lower()
        assert len(low) == len(text)  # offsets below rely on it
        hits: dict[str, set[str]] = {}
        for end, alias in automaton.iter(low):
            start = end - len(alias) + 1
            before = low[start - 1] if start > 0 else " "
            after = low[end + 1] if end + 1 < len(low) else " "
            if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
                hits[alias] = owners[alias]
        out.append(hits)
    return out


def _check_gold(docs: list[dict], kb: list[dict]) -> None:
    aliases_of = {e["id"]: {a.lower() for a in e["aliases"]} for e in kb}
    for doc, hits in zip(docs, _alias_hits([d["text"] for d in docs], kb)):
        gold = set(doc["entities"])
        for alias, ids in hits.items():
            # An alias in the text must belong to a gold entity (shared names: to one of them).
            assert ids & gold, f"{doc['id']}: {alias!r} occurs but none of {sorted(ids)} is gold"
        for entity in gold:
            # And every gold entity is visible in the text.
            assert aliases_of[entity] & set(hits), f"{doc['id']}: gold {entity} has no alias in the text"


@pytest.fixture(scope="module")
def world(tiny_world):
    return {name: _load(tiny_world / name) for name in FILES}


def test_files_and_shapes(tiny_world, world):
    for name in FILES + ["world.json"]:
        assert (tiny_world / name).exists(), name
    for doc in world["corpus.jsonl"]:
        assert isinstance(doc["id"], str) and doc["text"] and isinstance(doc["entities"], list)
    kb_ids = {e["id"] for e in world["kb.jsonl"]}
    for entry in world["kb.jsonl"]:
        assert set(entry) >= {"id", "name", "aliases", "prior", "type", "description"}
        assert entry["name"] in entry["aliases"] and 0 < entry["prior"] <= 1
        assert entry["type"] in {"person", "city", "country", "occupation", "organisation"}
    for q in world["qa.jsonl"]:
        assert q["q_entity"] in kb_ids and q["a_entity"] in kb_ids
        assert q["relation"] in {"birth_city", "occupation", "employer"}
        assert q["question"].endswith("?") and q["answers"]
    assert [t["id"] for t in world["truth.jsonl"]] == [q["id"] for q in world["qa.jsonl"]]
    assert len({d["id"] for d in world["corpus.jsonl"]}) == len(world["corpus.jsonl"])


def test_deterministic_and_seeded(tmp_path):
    config = dict(people=30, reading_docs=50)
    a = generate_world(tmp_path / "a", WorldConfig(seed=3, **config))
    b = generate_world(tmp_path / "b", WorldConfig(seed=3, **config))
    c = generate_world(tmp_path / "c", WorldConfig(seed=4, **config))
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "corpus.jsonl").read_bytes() != (c / "corpus.jsonl").read_bytes()


def test_full_names_instead_of_pronouns(tmp_path):
    import re

    config = dict(seed=3, people=40, reading_docs=20)
    pronoun = re.compile(r"(?:^|[.!?]\s+)(?:He|She|His|Her)\b")

    def pronoun_sentences(folder):
        return sum(len(pronoun.findall(d["text"])) for d in _load(folder / "corpus.jsonl"))

    default = generate_world(tmp_path / "d", WorldConfig(**config))
    named = generate_world(tmp_path / "n", WorldConfig(**config, p_named_again=1.0))
    assert pronoun_sentences(default) > 50 and pronoun_sentences(named) == 0
    _check_gold(_load(named / "corpus.jsonl"), _load(named / "kb.jsonl"))  # the gold links stay exact


def test_gold_links_are_exactly_the_aliases_in_the_text(world):
    kb = world["kb.jsonl"]
    _check_gold(world["corpus.jsonl"], kb)
    _check_gold(world["encyclopedia.jsonl"], kb)


def test_gold_links_exact_on_a_larger_world(tmp_path):
    # More people, cities and names: more chances for a collision the tiny world misses.
    out = generate_world(tmp_path, WorldConfig(seed=11, people=400, reading_docs=10))
    _check_gold(_load(out / "corpus.jsonl"), _load(out / "kb.jsonl"))


def test_templates_and_filler_never_contain_an_alias(world):
    from probe.world._world import _template_literals

    templates = load_templates()
    texts = [re.sub(r"\{[^}]*\}", " | ", t) for t in _template_literals(templates)]
    assert len(templates["filler"]) >= 10
    hits = _alias_hits(texts, world["kb.jsonl"])
    assert not [(t, h) for t, h in zip(texts, hits) if h]


def test_truth_counts_recomputed_from_gold_links(world):
    docs_with: dict[str, set[str]] = defaultdict(set)
    for doc in world["corpus.jsonl"]:
        for entity in doc["entities"]:
            docs_with[entity].add(doc["id"])
    truth = {t["id"]: t["count"] for t in world["truth.jsonl"]}
    for q in world["qa.jsonl"]:
        assert truth[q["id"]] == len(docs_with[q["q_entity"]] & docs_with[q["a_entity"]])
        # Documents stating a fact link both entities, so they are part of the true count.
        assert truth[q["id"]] >= q["stated_docs"]


def test_counts_are_long_tailed(world):
    counts = [t["count"] for t in world["truth.jsonl"]]
    decades = Counter(0 if c == 0 else 1 + int(math.log10(c)) for c in counts)
    assert decades[0] >= 5, "some facts must have no document at all"
    assert max(counts) >= 50, "the head must reach tens to hundreds of documents"
    assert len(decades) >= 3, decades
    # Co-mentions without stating the relation exist, so some counts exceed the stated documents.
    assert any(t["count"] > q["stated_docs"] for t, q in zip(world["truth.jsonl"], world["qa.jsonl"]))


def test_documents_mix_people_pronouns_and_filler(world):
    texts = [d["text"] for d in world["corpus.jsonl"]]
    people_per_doc = Counter(sum(e.startswith("per_") for e in d["entities"]) for d in world["corpus.jsonl"])
    assert people_per_doc[1] and people_per_doc[2] and people_per_doc[3]
    assert any(re.search(r"\b(She|He) ", t) for t in texts)
    filler = set(load_templates()["filler"])
    assert sum(any(f in t for f in filler) for t in texts) > len(texts) / 10


def test_shared_names_need_context(world):
    kb = world["kb.jsonl"]
    by_name = defaultdict(list)
    for entry in kb:
        by_name[(entry["type"], entry["name"])].append(entry)
    shared = {key: entries for key, entries in by_name.items() if len(entries) > 1}
    assert any(t == "city" for t, _ in shared) and any(t == "person" for t, _ in shared)
    for entries in shared.values():
        assert len({e["description"] for e in entries}) == len(entries), "namesakes must be told apart"
    # Every document naming a shared person also names that person's occupation or birth city.
    facts = defaultdict(set)
    for doc in world["encyclopedia.jsonl"]:
        person = next(e for e in doc["entities"] if e.startswith("per_"))
        facts[person] = set(doc["entities"]) - {person}
    shared_people = {e["id"] for (t, _), entries in shared.items() if t == "person" for e in entries}
    seen = 0
    for doc in world["corpus.jsonl"]:
        for person in shared_people & set(doc["entities"]):
            seen += 1
            assert set(doc["entities"]) & (facts[person] - {e for e in facts[person] if e.startswith("org_")})
    assert seen
    # A shared city name is always written with its country in the corpus.
    shared_cities = {e["name"] for (t, _), entries in shared.items() if t == "city" for e in entries}
    for doc in world["corpus.jsonl"]:
        for name in shared_cities:
            for m in re.finditer(re.escape(name), doc["text"]):
                assert doc["text"][m.end():m.end() + 2] == ", "


def test_unicode_and_apostrophe_names(world):
    names = [e["name"] for e in world["kb.jsonl"] if e["type"] == "person"]
    assert any(not n.isascii() for n in names)
    assert any("'" in n for n in names)
    texts = "\n".join(d["text"] for d in world["corpus.jsonl"])
    assert any(n in texts for n in names if not n.isascii())


def test_qa_people_never_in_qa_format_documents(world):
    qa_people = {q["q_entity"] for q in world["qa.jsonl"]}
    qa_docs = [d for d in world["corpus.jsonl"] if d["text"].startswith("Q: ")]
    assert qa_docs, "other people appear in Q/A form, so few-shot prompts are familiar"
    for doc in qa_docs:
        assert not qa_people & set(doc["entities"]), doc["id"]
        assert re.fullmatch(r"(Q: [^\n]+\?\nA: [^\n]+)(\n\nQ: [^\n]+\?\nA: [^\n]+)*", doc["text"])


def test_a_cap_on_qa_format_appearances(tmp_path):
    """With `qa_format_cap` a frequent person's facts are stated as Q/A a few times and in prose
    the rest: the Q/A lines cannot be learned apart from the prose."""
    config = dict(seed=5, people=200, reading_docs=20)

    def appearances(folder):
        qa_form, prose = Counter(), Counter()
        for doc in _load(folder / "corpus.jsonl"):
            people = [e for e in doc["entities"] if e.startswith("per_")]
            (qa_form if doc["text"].startswith("Q: ") else prose).update(people)
        return qa_form, prose

    free_qa, free_prose = appearances(generate_world(tmp_path / "free", WorldConfig(**config)))
    capped = generate_world(tmp_path / "capped", WorldConfig(**config, qa_format_cap=2))
    capped_qa, capped_prose = appearances(capped)
    frequent = [p for p in free_qa if free_qa[p] + free_prose[p] >= 40]
    assert len(frequent) >= 10
    free_mean = sum(free_qa[p] for p in frequent) / len(frequent)
    capped_mean = sum(capped_qa[p] for p in frequent) / len(frequent)
    # (a Q/A appearance states one to three facts, each its own Q/A line, often in other documents)
    assert capped_mean <= 3 * 2 and free_mean >= 5 * capped_mean, (free_mean, capped_mean)
    # the appearances not written as Q/A are prose, and the gold links stay exact
    assert sum(capped_prose[p] for p in frequent) > sum(free_prose[p] for p in frequent)
    _check_gold(_load(capped / "corpus.jsonl"), _load(capped / "kb.jsonl"))
    with pytest.raises(InputError):
        generate_world(tmp_path / "bad", WorldConfig(**config, qa_format_cap=0))


def test_answers_and_aliases(world):
    kb = {e["id"]: e for e in world["kb.jsonl"]}
    for q in world["qa.jsonl"]:
        assert q["answers"] == kb[q["a_entity"]]["aliases"]
        assert kb[q["q_entity"]]["name"] in q["question"]
        if q["relation"] == "birth_city":
            country = kb[q["a_entity"]]["description"].removeprefix("city in ")
            assert q["answers"][1] == f"{q['answers'][0]}, {country}"


def test_encyclopedia_states_every_fact_and_is_not_in_the_corpus(world):
    kb = {e["id"]: e for e in world["kb.jsonl"]}
    articles = {next(e for e in d["entities"] if e.startswith("per_")): d for d in world["encyclopedia.jsonl"]}
    assert len(articles) == sum(e["type"] == "person" for e in kb.values())
    corpus_texts = {d["text"] for d in world["corpus.jsonl"]}
    for q in world["qa.jsonl"]:
        article = articles[q["q_entity"]]
        assert any(a in article["text"] for a in q["answers"])
        assert article["text"] not in corpus_texts
        assert q["gold_passage"] == article["text"]  # the oracle passage of every question (issue 16)


def test_reading_documents_use_the_retrieval_format_with_fresh_names(world):
    names = {e["name"] for e in world["kb.jsonl"] if e["type"] == "person"}
    for doc in world["reading.jsonl"]:
        lines = doc["text"].split("\n")
        assert lines[0].startswith("Passage: ") and len(lines) >= 3 and len(lines) % 2 == 1
        for question, answer in zip(lines[1::2], lines[2::2]):
            assert question.startswith("Question: ") and answer.startswith("Answer: ")
            assert answer[len("Answer: "):] in lines[0]
        assert not any(n in doc["text"] for n in names)


def test_drill_documents_are_about_fresh_people_in_prose_and_qa(tmp_path):
    from probe.world._world import QA_DOC_FORMAT

    folder = generate_world(tmp_path / "w", WorldConfig(seed=2, people=60, reading_docs=30, drill_people=10))
    world = {name: _load(folder / name) for name in ("kb.jsonl", "drill.jsonl")}
    aliases = {a for e in world["kb.jsonl"] for a in e["aliases"]}
    drill = world["drill.jsonl"]
    qa_prefix = QA_DOC_FORMAT.split("{")[0]
    qa_docs = [d for d in drill if d["text"].startswith(qa_prefix)]
    assert drill and 0 < len(qa_docs) < len(drill) and len({d["id"] for d in drill}) == len(drill)
    assert {"id", "text"} == set(drill[0])  # not corpus documents: no gold links, never counted
    asked = {m.group(1) or m.group(2) for d in qa_docs
             for m in re.finditer(r"was (.+?) born\?|is (.+?)'s occupation\?", d["text"])}
    assert asked and not asked & aliases  # fresh names, none of the world's
    values = {e["name"] for e in world["kb.jsonl"] if e["type"] in ("occupation", "organisation")}
    assert any(v in d["text"] for d in drill for v in values)  # their facts are the world's values


def test_drill_leaves_the_other_files_unchanged(tmp_path):
    config = dict(seed=5, people=30, reading_docs=40)
    plain = generate_world(tmp_path / "a", WorldConfig(**config))  # no drill people by default
    drilled = generate_world(tmp_path / "b", WorldConfig(**config, drill_people=12, drill_rate=20.0))
    assert (plain / "drill.jsonl").read_text() == ""
    assert len(_load(drilled / "drill.jsonl")) > 20
    for name in FILES:
        if name != "drill.jsonl":
            assert (plain / name).read_bytes() == (drilled / name).read_bytes(), name


def test_bad_config_is_an_input_error(tmp_path):
    from entity_linking.io import InputError

    with pytest.raises(InputError):
        generate_world(tmp_path, WorldConfig(people=2))
    with pytest.raises(InputError):
        generate_world(tmp_path, WorldConfig(people=20, rate_min=0))


def test_world_json_records_the_config(tiny_world):
    meta = json.loads((tiny_world / "world.json").read_text())
    assert meta["config"]["people"] == 60 and meta["config"]["cities"] == 8
