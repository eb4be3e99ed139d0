"""`ltprobe bench qa-link`: question-entity precision and recall on real data, old linker
defaults against the new ones, side by side in one run.

The knowledge base is built from the real data in `shared/data/real` (there is no full
Wikidata here), so that it has the failure modes a Wikidata knowledge base has:

- Mintaka dev's gold question and answer entities (Wikidata ids, labels, the questions'
  mentions as aliases; the category's words as description). Mintaka itself has same-name
  entities with no prior to tell them apart ("Twilight" the novel and the film, "Will Smith",
  the Harry Potter books and films) and lower-case class items as gold question entities
  ("film" for "movie", "actor", "song");
- Wikidata class items with their lower-case labels (`_CLASSES`: "city", "film", "year",
  "human", ...), the `type` of the entities below where it is known (Q5 for people);
- Google-RE's places with their Wikidata aliases (which include lower-case ones: "be" for
  Belgium, "au" for Australia, "lb" for Lebanon), weighted by how many snippets name them, and
  its people (type Q5, as description the snippet's "is a ..." words up to "born", "who",
  "from", ...: "journalist", "Austrian painter", like Wikidata's short descriptions); every fourth person gets
  a namesake (same name, no prior, another person's description), put before or after the
  person in the knowledge base's order and in id order in turn;
- EntityQuestions' subjects (people of P19, P20, P26, P106; works of P50, P407; places of P17,
  P36), names that collide with an entity above left out.

Measured per linker configuration:

- question entities against gold: Mintaka (all gold entities; and named gold only, i.e.
  mentions with an upper-case letter or a digit, predictions of lower-case gold left out of
  both sides; and named gold with the questions written all in lower case, as Natural
  Questions' are, linked with `case="insensitive"`), EntityQuestions (the subject) and
  Google-RE (the person): micro precision, recall, F1, entities per question;
- counts on Google-RE: the snippets (both files) are linked as a corpus with the same linker;
  each pair "Where was X born?" / "Where did X die?" gets the maximum over (question entity,
  salient answer entity) pairs of co-occurring snippets (as `ltprobe count`), compared with the
  true count, the snippets that name the person (the name as written) and link the gold place:
  exact, inflated (more: a common noun or a wrong entity paired with the answer), missed
  (fewer: the question committed to the other namesake than the corpus, or lost its entity).
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

# Wikidata class items (id, label, aliases), labels lower-case as in Wikidata.
_CLASSES = [
    ("Q5", "human", ["person", "people", "human being"]), ("Q515", "city", ["town"]),
    ("Q6256", "country", ["nation", "land"]), ("Q11424", "film", ["movie", "motion picture"]),
    ("Q571", "book", []), ("Q482994", "album", []), ("Q7366", "song", []), ("Q577", "year", []),
    ("Q5398426", "television series", ["TV series", "TV show", "show", "series"]),
    ("Q215380", "musical group", ["band", "music group"]), ("Q33999", "actor", ["actress"]),
    ("Q177220", "singer", []), ("Q4022", "river", []), ("Q8502", "mountain", []),
    ("Q8261", "novel", []), ("Q7889", "video game", ["game", "videogame"]), ("Q23442", "island", []),
    ("Q34770", "language", []), ("Q30461", "president", []), ("Q82955", "politician", []),
    ("Q36180", "writer", ["author"]), ("Q639669", "musician", []), ("Q5107", "continent", []),
    ("Q18127", "record label", ["music label", "label"]), ("Q188451", "music genre", ["genre"]),
    ("Q12737077", "occupation", ["work", "job", "profession"]), ("Q3918", "university", []),
    ("Q5119", "capital", ["capital city"]), ("Q349", "sport", []), ("Q847017", "sports club", ["club", "team"]),
    ("Q2066131", "athlete", ["player"]), ("Q783794", "company", ["business", "firm"]),
]
_CATEGORY_WORDS = {"books": "book novel author", "movies": "film movie", "videogames": "video game",
                   "music": "music song album band singer", "sports": "sports team player",
                   "geography": "geography place country city", "politics": "politics politician",
                   "history": "history"}
_EQ = {"P19": ("Where was [X] born?", "Q5"), "P20": ("Where did [X] die?", "Q5"),
       "P26": ("Who is [X] married to?", "Q5"), "P106": ("What kind of work does [X] do?", "Q5"),
       "P50": ("Who is the author of [X]?", ""), "P407": ("Which language was [X] written in?", ""),
       "P17": ("Which country is [X] located in?", ""), "P36": ("What is the capital of [X]?", "")}
_IS_A = re.compile(r"\b(?:is|was) an? ((?:[\w-]+ ){0,2}[\w-]+)")
_CUT = re.compile(r"\b(?:born|who|from|in|and|of|at|for|with)\b.*")

BEFORE = {"nil_threshold": 0.0, "question_candidates": False, "question_lowercase": True,
          "question_classes": True}
"""The defaults before issue 16: the best candidate always linked, one candidate per question
mention, lower-case spans and class items kept."""


def _alnum(alias: str) -> bool:
    return any(c.isalnum() for c in alias)


def build(data: Path, eq_per_relation: int = 300) -> tuple[list[dict], dict[str, list[dict]]]:
    """(knowledge-base records, question sets `{name: [{"id", "question", "answers", "gold"}]}`)."""
    from entity_linking._normalize import alias_variants

    entities: dict[str, dict[str, Any]] = {}
    order: list[str] = []

    def put(entity_id: str, name: str, aliases=(), type_: str = "", description: str = "", prior: float = 1.0):
        e = entities.get(entity_id)
        if e is None:
            e = entities[entity_id] = {"id": entity_id, "name": name, "aliases": [], "type": type_,
                                       "description": description, "prior": prior}
            order.append(entity_id)
        for a in aliases:
            if a and _alnum(a) and a != e["name"] and a not in e["aliases"]:
                e["aliases"].append(a)
        if description and description not in e["description"]:
            e["description"] = f"{e['description']} {description}".strip()
        e["type"] = e["type"] or type_
        return e

    sets: dict[str, list[dict]] = {"mintaka": [], "entityquestions": [], "google_re": []}
    for qid, label, aliases in _CLASSES:
        put(qid, label, aliases)
    mintaka = json.loads((data / "mintaka" / "mintaka_dev.json").read_text(encoding="utf-8"))
    for r in mintaka:
        words = _CATEGORY_WORDS.get(r.get("category"), "")
        gold, lower = [], []
        for e in r["questionEntity"]:
            if e.get("entityType") != "entity" or not str(e.get("name", "")).startswith("Q"):
                continue
            name = e.get("label") or e["mention"]
            if not _alnum(name):
                continue
            put(e["name"], name, [e["mention"]], description=words)
            gold.append(e["name"])
            if not any(c.isupper() or c.isdigit() for c in e["mention"]):
                lower.append(e["name"])
        for a in (r.get("answer") or {}).get("answer") or []:
            if isinstance(a, dict) and a.get("label") and str(a.get("name", "")).startswith("Q") and _alnum(a["label"]):
                put(a["name"], a["label"], description=words)
        answers = [a["label"] for a in (r.get("answer") or {}).get("answer") or []
                   if isinstance(a, dict) and a.get("label")]
        sets["mintaka"].append({"id": r["id"], "question": r["question"], "answers": answers,
                                "gold": sorted(set(gold)), "lower": sorted(set(lower))})

    # Google-RE: places (Wikidata aliases), people, namesakes
    people: list[dict] = []
    for name in ("place_of_birth_test.jsonl", "place_of_death_test.jsonl"):
        for line in (data / "lama_google_re" / name).open(encoding="utf-8"):
            row = json.loads(line)
            snippet = row["evidences"][0]["snippet"]
            if row.get("obj_w"):
                place = put(row["obj_w"], row["obj_label"], [a for a in row["obj_aliases"] if _alnum(a)],
                            description="place", prior=0.0)
                place["prior"] += 1.0
            found = _IS_A.search(snippet)
            people.append({"sub": row["sub"], "label": row["sub_label"], "obj": row.get("obj_w"),
                           "obj_label": row["obj_label"], "obj_aliases": row["obj_aliases"],
                           "death": "death" in name, "snippet": snippet,
                           "description": _CUT.sub("", found.group(1)).strip() if found else ""})
    seen: set[str] = set()
    descriptions = [p["description"] for p in people if p["description"]]
    for k, p in enumerate(people):
        if p["sub"] in seen or not _alnum(p["label"]):
            continue
        seen.add(p["sub"])
        if len(seen) % 4 == 0:  # a namesake: no prior, another description; before or after in turn
            other = descriptions[(7 * k) % len(descriptions)]
            # the namesake's id sorts before the person's or after it in turn (ties go to the smaller id)
            twin_id = f"{p['sub'][:3]}!{p['sub'][3:]}" if len(seen) % 8 else f"{p['sub']}~namesake"
            twin = {"id": twin_id, "name": p["label"], "aliases": [], "type": "Q5",
                    "description": other if other != p["description"] else "footballer", "prior": 1.0}
            if len(seen) % 8 == 0:
                entities[twin["id"]] = twin
                order.append(twin["id"])
                put(p["sub"], p["label"], type_="Q5", description=p["description"])
            else:
                put(p["sub"], p["label"], type_="Q5", description=p["description"])
                entities[twin["id"]] = twin
                order.append(twin["id"])
        else:
            put(p["sub"], p["label"], type_="Q5", description=p["description"])
    for n, p in enumerate(people):
        if p["obj"]:
            question = f"Where did {p['label']} die?" if p["death"] else f"Where was {p['label']} born?"
            sets["google_re"].append({"id": f"gre{n}", "question": question,
                                      "answers": [p["obj_label"], *[a for a in p["obj_aliases"] if _alnum(a)]],
                                      "gold": [p["sub"]], "a_gold": p["obj"], "name": p["label"], "lower": []})

    # EntityQuestions subjects; names that collide with an entity above are left out
    taken = {v for e in entities.values() for a in [e["name"], *e["aliases"]] for v in alias_variants(a)[:1]}
    by_name: dict[str, str] = {}
    for relation, (template, type_) in _EQ.items():
        path = data / "entityquestions" / "dev" / f"{relation}.dev.json"
        pattern = re.compile("^" + re.escape(template).replace(re.escape("[X]"), "(.+)") + "$")
        for n, row in enumerate(json.loads(path.read_text(encoding="utf-8"))[:eq_per_relation]):
            match = pattern.match(row["question"])
            if not match or not _alnum(match.group(1)):
                continue
            subject = match.group(1)
            key = alias_variants(subject)[:1]
            if not key or (key[0] in taken and subject not in by_name):
                continue
            entity_id = by_name.setdefault(subject, f"eq:{relation}:{n}")
            put(entity_id, subject, type_=type_)
            sets["entityquestions"].append({"id": f"{relation}-{n}", "question": row["question"],
                                            "answers": row["answers"], "gold": [entity_id], "lower": []})
    return [entities[i] for i in order], sets


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def evaluate(kb: Any, sets: dict[str, list[dict]], corpus: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """The figures of one linker configuration (see the module docstring)."""
    from entity_linking._linker import Linker
    from entity_linking._qa import link_qa_record

    linker = Linker(kb, **options)
    out: dict[str, Any] = {}
    linked: dict[str, dict] = {}
    for name, questions in sets.items():
        tp = fp = fn = ntp = nfp = nfn = n_entities = 0
        for q in questions:
            record = link_qa_record(linker, q["question"], q["answers"])
            linked[q["id"]] = record
            pred, gold, lower = set(record["q_entities"]), set(q["gold"]), set(q["lower"])
            n_entities += len(pred)
            tp += len(pred & gold)
            fp += len(pred - gold)
            fn += len(gold - pred)
            pred_n, gold_n = pred - lower, gold - lower
            ntp += len(pred_n & gold_n)
            nfp += len(pred_n - gold_n)
            nfn += len(gold_n - pred_n)
        out[name] = {**_prf(tp, fp, fn), "entities_per_question": round(n_entities / max(1, len(questions)), 3)}
        if name == "mintaka":
            out["mintaka_named"] = _prf(ntp, nfp, nfn)
    # Mintaka written all in lower case, as Natural Questions is, linked case-insensitively
    lower_linker = Linker(kb, **{**options, "case": "insensitive"})
    tp = fp = fn = 0
    for q in sets["mintaka"]:
        pred = set(link_qa_record(lower_linker, q["question"].lower(), [])["q_entities"])
        gold = set(q["gold"]) - set(q["lower"])
        pred -= set(q["lower"])
        tp += len(pred & gold)
        fp += len(pred - gold)
        fn += len(gold - pred)
    out["mintaka_lowercased_named"] = _prf(tp, fp, fn)
    # counts on Google-RE's snippets, linked as a corpus by the same linker
    docs: dict[str, set[int]] = {}
    for d, text in enumerate(corpus):
        for e in linker.link_ids(text):
            docs.setdefault(e, set()).add(d)
    exact = inflated = missed = no_q = no_a = 0
    for q in sets["google_re"]:
        record = linked[q["id"]]
        # the truth: snippets that name the person (the name as written) and link the place
        truth = sum(q["name"] in corpus[d] for d in docs.get(q["a_gold"], ()))
        if not record["q_entities"]:
            no_q += 1
            continue
        if not record["a_entities"]:
            no_a += 1
            continue
        count = max(len(docs.get(a, set()) & docs.get(b, set())) for a in record["q_entities"]
                    for b in record["a_entities"])
        exact += count == truth
        inflated += count > truth
        missed += count < truth
    n = len(sets["google_re"])
    out["google_re_counts"] = {"exact": round(exact / n, 4), "inflated": round(inflated / n, 4),
                               "missed": round(missed / n, 4), "no_q_entity": round(no_q / n, 4),
                               "no_a_entity": round(no_a / n, 4)}
    return out


def bench_qa_link(data: str | Path | None = None,
                  thresholds: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5),
                  eq_per_relation: int = 300) -> dict[str, Any]:
    """Run the benchmark, print the side-by-side tables to stderr, return the figures."""
    from entity_linking._linker import Linker
    from entity_linking.kb import KnowledgeBase

    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    data = Path(data) if data is not None else Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
    if not (data / "mintaka" / "mintaka_dev.json").exists():
        from entity_linking.io import InputError

        raise InputError(f"{data}: no Mintaka, Google-RE and EntityQuestions data here (--data DIR)")
    records, sets = build(data, eq_per_relation)
    kb = KnowledgeBase.from_records(records)
    corpus = [json.loads(line)["evidences"][0]["snippet"]
              for name in ("place_of_birth_test.jsonl", "place_of_death_test.jsonl")
              for line in (data / "lama_google_re" / name).open(encoding="utf-8")]
    info = kb.info()
    log(f"knowledge base: {info['entities']} entities, {info['aliases']} aliases, {info['ambiguous_keys']} "
        f"ambiguous keys; questions: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items())
        + f"; corpus: {len(corpus)} Google-RE snippets")
    after = Linker(kb).options()
    defaults = {k: after[k] for k in BEFORE}
    configs: dict[str, dict[str, Any]] = {"before": dict(BEFORE), "after": defaults}
    configs["naive"] = {"nil_threshold": 0.0, "question_candidates": True, "question_lowercase": True,
                        "question_classes": True}
    for t in thresholds:
        configs[f"after nil={t:g}"] = {**defaults, "nil_threshold": t}
    for key in ("question_candidates", "question_lowercase", "question_classes"):
        configs[f"after, {key}={not defaults[key]}"] = {**defaults, key: not defaults[key]}
    configs["after, lower-case spans and class items kept"] = {**defaults, "question_lowercase": True,
                                                               "question_classes": True}
    results = {name: evaluate(kb, sets, corpus, options) for name, options in configs.items()}

    columns = [("mintaka", "f1"), ("mintaka", "precision"), ("mintaka", "recall"),
               ("mintaka_named", "precision"), ("mintaka_named", "recall"),
               ("mintaka_lowercased_named", "precision"), ("mintaka_lowercased_named", "recall"),
               ("entityquestions", "precision"), ("entityquestions", "recall"),
               ("google_re", "precision"), ("google_re", "recall"),
               ("google_re_counts", "exact"), ("google_re_counts", "inflated"), ("google_re_counts", "missed")]
    heads = ["Mk F1", "Mk P", "Mk R", "Mk-nm P", "Mk-nm R", "Mk-lc P", "Mk-lc R", "EQ P", "EQ R", "GRE P", "GRE R",
             "cnt exact", "cnt infl", "cnt miss"]
    log("")
    log(f"{'configuration':44s}" + "".join(f"{h:>10s}" for h in heads))
    for name, figures in results.items():
        log(f"{name:44s}" + "".join(f"{figures[a][b]:>10.3f}" for a, b in columns))
    log(f"(Mk: Mintaka dev, Mk-nm: its named gold only, Mk-lc: the same with the questions lower-cased "
        f"and case='insensitive', EQ: EntityQuestions, GRE: Google-RE questions; "
        f"cnt: Google-RE pair counts vs the true count; {time.perf_counter() - started:.0f}s)")
    return {"kb": info, "questions": {k: len(v) for k, v in sets.items()}, "corpus_docs": len(corpus),
            "before_options": configs["before"], "after_options": configs["after"],
            "before": results["before"], "after": results["after"], "configurations": results}
