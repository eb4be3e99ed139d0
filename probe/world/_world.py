"""The controlled world: fictional people, places, organisations and occupations, a corpus in
which the number of documents stating each fact is long-tailed, and QA pairs whose true
relevant-document counts are known.

Why it looks the way it does (see docs/design.md, "Files between stages", and issue 2):
- Each person gets a mention rate drawn log-uniformly, so facts are stated in anything from no
  document to a few hundred. Documents hold one to three people, pronouns, filler and
  co-mentions that do not state a relation (real corpora are like that), so the true count
  (documents linking both entities) is not simply "documents stating the fact".
- A few cities share a name (different countries) and a few people share a full name, so
  linking must use context; text about them always carries that context (the country, the
  occupation or birth city).
- Every alias is checked against every other alias and against the literal words of the
  templates, so the gold links are exactly what a correct linker finds.
- QA subjects never appear in Q/A-format documents; other people do, so few-shot QA prompts
  are something the model has seen. Each QA pair also carries `cloze`, the statement its answer
  completes as the prose states it ("NAME was born in"): the `cloze` prompt format, the demo's
  closed-book probe (a small model recalls its frequent facts so in every run, while answering
  questions about people met only in prose is a skill it forms in some runs and not others).
- `reading.jsonl` holds reading-comprehension documents about fresh names in exactly the
  retrieval prompt format (`Passage: ...`, `Question: ...`, `Answer: ...`): trained on the
  world corpus alone, a small model never learns to use a passage.
- `drill.jsonl` (empty unless `drill_people` is set) holds documents about a few fresh, frequent
  people, in prose and as Q/A, written like the corpus: a warm-up file for the first phase of
  training (a `mix` with a share for it), meant to teach the small model early to answer a
  question from facts it read in prose. Measured: it helped some seeds and hurt others
  (docs/benchmarks.md, "The demo recipe on any machine"), so the demo does not use it. Not part
  of the corpus, so never counted; its names are not the world's.
- `encyclopedia.jsonl` (one article per person) is the retrieval collection and is not part of
  the training corpus, so a zero-count fact can still be retrieved. Each QA pair carries its
  person's article as `gold_passage`: the oracle passage, the same source for every question.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, write_json, write_jsonl

RELATIONS = ("birth_city", "occupation", "employer")
"""The relations of the world, in the order QA pairs are written."""

# Closed-book and retrieval prompt formats the world trains for (probe's evaluation builds the
# same strings): "Q: {question}\nA: {answer}" and "Passage: {text}\nQuestion: {q}\nAnswer: {a}".
QA_DOC_FORMAT = "Q: {question}\nA: {answer}"
READING_PASSAGE = "Passage: {text}"
READING_QA = "Question: {question}\nAnswer: {answer}"


@dataclass
class WorldConfig:
    """Settings of a generated world. The defaults are the demo world (1,000 people, about 22,000
    documents; `configs/study.yaml` has the full-size world of 2,000 people)."""

    seed: int = 0
    """Seed of every random choice; the same config gives byte-identical files."""
    people: int = 1000
    """Number of people (each has a birth city, an occupation and an employer)."""
    cities: int | None = None
    """Number of cities; None: people / 10 (at least 8)."""
    countries: int | None = None
    """Number of countries; None: cities / 10 (at least 3)."""
    organisations: int | None = None
    """Number of employers; None: people / 10 (at least 8)."""
    occupations: int | None = None
    """Number of occupations (at most 50); None: people / 20 (between 8 and 50), so that an
    occupation, like a city or an employer, tells people apart. With people / 40 (25 in the
    demo world) the demo's small model learned occupations last, and in bf16 on some seeds not
    by the end of training (docs/benchmarks.md, "A constant learning rate, a longer run and
    fifty occupations")."""
    shared_city_names: int | None = None
    """Pairs of cities sharing a name (in different countries); None: cities / 40 (at least 1)."""
    shared_person_names: int | None = None
    """Pairs of people sharing a full name; None: people / 200 (at least 1)."""
    rate_min: float = 0.1
    """Lowest mean number of documents a person appears in (log-uniform between min and max)."""
    rate_max: float = 300.0
    """Highest mean number of documents a person appears in."""
    p_state: float = 0.6
    """Probability that an appearance of a person states each of their facts."""
    p_comention: float = 0.3
    """Probability that an appearance co-mentions another city, organisation or occupation."""
    p_own_comention: float = 0.1
    """Share of co-mentions naming the person's own city/employer/occupation without stating it."""
    qa_fraction: float = 0.5
    """Share of people who are QA subjects (never in Q/A-format documents)."""
    p_qa_format: float = 0.3
    """Probability that an appearance of a non-QA person is written as Q/A pairs instead of prose."""
    qa_format_cap: float | None = None
    """Most Q/A-format appearances expected of one non-QA person: the Q/A probability of a person
    with mention rate r is min(p_qa_format, qa_format_cap / r). With a cap a frequent person's
    facts are stated in prose hundreds of times and as Q/A a few times, so answering the Q/A
    lines takes recalling the prose, as the closed-book questions do (the knowledge-extraction
    setting of Allen-Zhu and Li's "mixed training"); None: no cap. Tried on the demo recipe with
    a cap of 3: it helped seed 1 and not seed 2 (docs/benchmarks.md, session 10), so it is off."""
    reading_docs: int = 10000
    """Reading-comprehension documents about fresh names (reading.jsonl)."""
    p_invented_value: float = 0.5
    """Share of reading-document values (cities, occupations, employers) invented from random
    syllables rather than taken from the world, so that only copying from the passage works."""
    p_named_again: float = 0.0
    """Probability that a later sentence about a person names them again instead of using a
    pronoun (the first sentence always names them). 1.0: full names everywhere, as the
    knowledge-extraction literature recommends; on the demo recipe it made seed 2 worse, not
    better (docs/benchmarks.md)."""
    unicode_fraction: float = 0.15
    """Share of names drawn from the Unicode/apostrophe pools (Zoë, O'Brien)."""
    drill_people: int = 0
    """Fresh people of drill.jsonl (written like the corpus, prose and Q/A, with the world's
    cities, occupations and employers as their facts); 0: an empty drill.jsonl. Tried as a
    warm-up with 100 people (`model.train.mix` [[0.2, 0.25, 0.45, 0.30], [1.0, 0.75, 0.25, 0.0]],
    `min_lr_ratio` 0.5); see docs/benchmarks.md for what it did."""
    drill_rate: float = 40.0
    """Mean number of documents each drill person appears in."""

    def resolved(self) -> WorldConfig:
        """The config with every None filled in from `people`."""
        c = WorldConfig(**asdict(self))
        if c.people < 4:
            raise InputError(f"world: people must be at least 4, got {c.people}")
        if c.cities is None:
            c.cities = max(8, c.people // 10)
        if c.countries is None:
            c.countries = max(3, c.cities // 10)
        if c.organisations is None:
            c.organisations = max(8, c.people // 10)
        if c.occupations is None:
            c.occupations = min(50, max(8, c.people // 20))
        if c.shared_city_names is None:
            c.shared_city_names = max(1, c.cities // 40)
        if c.shared_person_names is None:
            c.shared_person_names = max(1, c.people // 200)
        if c.drill_people < 0 or c.drill_rate <= 0:
            raise InputError("world: need drill_people >= 0 and drill_rate > 0")
        if c.countries < 2 and c.shared_city_names:
            raise InputError("world: cities that share a name need at least 2 countries")
        if 2 * c.shared_city_names > c.cities or 2 * c.shared_person_names > c.people:
            raise InputError("world: too many shared names for the number of cities/people")
        if c.qa_format_cap is not None and c.qa_format_cap <= 0:
            raise InputError(f"world: qa_format_cap must be positive (or unset), got {c.qa_format_cap}")
        if not 0 < c.rate_min <= c.rate_max:
            raise InputError("world: need 0 < rate_min <= rate_max")
        return c


# --------------------------------------------------------------------------- templates and names

def load_templates() -> dict[str, Any]:
    """The sentence, article and question templates (probe/templates/world_templates.json)."""
    return json.loads(resources.files("probe").joinpath("templates/world_templates.json").read_text("utf-8"))


def _load_names() -> dict[str, Any]:
    return json.loads(resources.files("probe").joinpath("templates/world_names.json").read_text("utf-8"))


_TOKEN = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> tuple[str, ...]:
    """Lower-cased word and punctuation tokens: an alias occurs in a text at word boundaries
    (case-insensitive) exactly when its tokens are a contiguous run of the text's tokens."""
    return tuple(_TOKEN.findall(text.lower()))


def _subruns(tokens: tuple[str, ...], longest: int) -> set[tuple[str, ...]]:
    return {tokens[i:j] for i in range(len(tokens)) for j in range(i + 1, min(len(tokens), i + longest) + 1)}


def _template_literals(templates: dict[str, Any]) -> list[str]:
    """Every template string, for the alias checks."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if not key.startswith("_"):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(templates)
    out += [QA_DOC_FORMAT, READING_PASSAGE, READING_QA]
    return out


class _AliasGuard:
    """Accepts a new alias only if it cannot be found inside any other text of the world.

    A candidate is refused when it occurs inside an accepted alias or a template's literal
    words, when an accepted alias occurs inside it, or when its first or last word is a
    template word (then it could match across a placeholder boundary, e.g. a surname followed
    by "works"). Identical aliases of the intended shared names bypass this check.
    """

    LONGEST = 8

    def __init__(self, templates: dict[str, Any]):
        self.full: set[tuple[str, ...]] = set()
        self.inside: set[tuple[str, ...]] = set()
        self.template_words: set[str] = set()
        for text in _template_literals(templates):
            for segment in re.split(r"\{[^}]*\}", text):
                tokens = words(segment)
                self.template_words.update(t for t in tokens if t[0].isalnum())
                self.inside |= _subruns(tokens, self.LONGEST)

    def ok(self, alias: str) -> bool:
        tokens = words(alias)
        if not tokens or tokens[0] in self.template_words or tokens[-1] in self.template_words:
            return False
        if tokens in self.inside:
            return False
        return not (_subruns(tokens, self.LONGEST) & self.full)

    def add(self, alias: str) -> None:
        tokens = words(alias)
        self.full.add(tokens)
        self.inside |= _subruns(tokens, self.LONGEST)


# --------------------------------------------------------------------------- the world's entities

@dataclass
class _Person:
    id: str
    name: str
    female: bool
    facts: dict[str, str]  # relation -> entity id
    rate: float = 0.0
    qa: bool = False
    shared: bool = False


@dataclass
class _Entity:
    id: str
    type: str
    name: str
    aliases: list[str]
    description: str
    country: str | None = None  # cities
    shared: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


class _Namer:
    """Draws place, organisation and person names that pass the alias guard."""

    def __init__(self, names: dict[str, Any], guard: _AliasGuard, rng: random.Random):
        self.n, self.guard, self.rng = names, guard, rng

    def _word(self, syllables: int) -> str:
        n = self.n
        parts = [self.rng.choice(n["place_onsets"]) + self.rng.choice(n["place_vowels"])
                 for _ in range(syllables - 1)]
        parts.append(self.rng.choice(n["place_onsets"]) + self.rng.choice(n["place_vowels"])
                     + self.rng.choice(n["place_codas"]))
        return "".join(parts).capitalize()

    def _draw(self, make, taken: set[str]) -> str:
        for _ in range(10000):
            name = make()
            if name not in taken and self.guard.ok(name):
                return name
        raise InputError("world: ran out of distinct names; lower the number of entities")

    def country(self, taken: set[str]) -> str:
        return self._draw(lambda: self._word(self.rng.choice((1, 2))).rstrip("aeiou")
                          + self.rng.choice(self.n["country_suffixes"]), taken)

    def city(self, taken: set[str]) -> str:
        def make() -> str:
            roll = self.rng.random()
            if roll < 0.3:
                return f"{self.rng.choice(self.n['city_prefixes'])} {self._word(self.rng.choice((1, 2)))}"
            if roll < 0.7:
                return self._word(1) + self.rng.choice(self.n["city_suffixes"])
            return self._word(self.rng.choice((2, 3)))
        return self._draw(make, taken)

    def organisation(self, taken: set[str]) -> str:
        return self._draw(lambda: f"{self.rng.choice(self.n['org_words'])} {self.rng.choice(self.n['org_kinds'])}",
                          taken)

    def person(self, taken: set[str], unicode_fraction: float) -> tuple[str, bool]:
        n, rng = self.n, self.rng
        female = rng.random() < 0.5
        first_pool = n["first_female" if female else "first_male"]
        first_uni = n["first_female_unicode" if female else "first_male_unicode"]

        def make() -> str:
            first = rng.choice(first_uni if rng.random() < unicode_fraction / 2 else first_pool)
            last = rng.choice(n["surnames_unicode"] if rng.random() < unicode_fraction / 2 else n["surnames"])
            return f"{first} {last}"
        return self._draw(make, taken), female


class _World:
    def __init__(self, config: WorldConfig):
        self.c = config
        self.rng = random.Random(config.seed)
        self.t = load_templates()
        self.guard = _AliasGuard(self.t)
        self.namer = _Namer(_load_names(), self.guard, self.rng)
        self.entities: dict[str, _Entity] = {}
        self.people: list[_Person] = []
        self._build()

    # ---- entities
    def _add(self, entity: _Entity, check: bool = True) -> None:
        for alias in entity.aliases:
            if check and not self.guard.ok(alias):  # a composite alias of a checked name is fine
                raise AssertionError(f"alias {alias!r} collides")  # the namer prevents this
        for alias in entity.aliases:
            self.guard.add(alias)
        self.entities[entity.id] = entity

    def _build(self) -> None:
        c, rng, namer = self.c, self.rng, self.namer
        names = self.namer.n
        # Occupations first: they are real words, so generated names must steer clear of them.
        occupations = rng.sample(names["occupations"], min(c.occupations, len(names["occupations"])))
        self.occupations = []
        for i, occ in enumerate(occupations):
            if not self.guard.ok(occ):
                raise InputError(f"world: occupation {occ!r} collides with a template or name")
            e = _Entity(f"occ_{i:03d}", "occupation", occ, [occ], "occupation")
            self._add(e)
            self.occupations.append(e)

        taken: set[str] = set()
        countries = []
        for i in range(c.countries):
            name = namer.country(taken)
            taken.add(name)
            e = _Entity(f"ctry_{i:03d}", "country", name, [name], "country")
            self._add(e)
            countries.append(e)

        self.cities: list[_Entity] = []
        n_unique = c.cities - c.shared_city_names
        for i in range(n_unique):
            name = namer.city(taken)
            taken.add(name)
            country = rng.choice(countries)
            self.cities.append(_Entity(f"city_{i:04d}", "city", name, [name, f"{name}, {country.name}"],
                                       f"city in {country.name}", country=country.id))
        # Shared city names: a second city with the name of an existing one, in another country.
        for j, original in enumerate(rng.sample(self.cities, c.shared_city_names)):
            original.shared = True
            country = rng.choice([k for k in countries if k.id != original.country])
            self.cities.append(_Entity(f"city_{n_unique + j:04d}", "city", original.name,
                                       [original.name, f"{original.name}, {country.name}"],
                                       f"city in {country.name}", country=country.id, shared=True))
        seen_names: set[str] = set()
        for city in self.cities:
            if city.name in seen_names:
                self.guard.add(city.aliases[1])
                self.entities[city.id] = city
            else:
                seen_names.add(city.name)
                self._add(_Entity(**{**asdict(city), "aliases": city.aliases[:1]}))
                self.entities[city.id] = city
                self.guard.add(city.aliases[1])

        self.orgs = []
        for i in range(c.organisations):
            name = namer.organisation(taken)
            taken.add(name)
            kind = name.split()[-1].lower()
            e = _Entity(f"org_{i:04d}", "organisation", name, [name], f"organisation ({kind})")
            self._add(e)
            self.orgs.append(e)

        # People; the last `shared_person_names` take the name of an earlier person.
        n_unique = c.people - c.shared_person_names
        for i in range(n_unique):
            name, female = namer.person(taken, c.unicode_fraction)
            taken.add(name)
            self.guard.add(name)
            self.people.append(_Person(f"per_{i:05d}", name, female, {}))
        for j, original in enumerate(rng.sample(self.people, c.shared_person_names)):
            original.shared = True
            self.people.append(_Person(f"per_{n_unique + j:05d}", original.name, original.female, {},
                                       shared=True))
        by_name: dict[str, list[_Person]] = {}
        for p in self.people:
            by_name.setdefault(p.name, []).append(p)

        # Facts. Namesakes get different birth cities and occupations, so context tells them apart.
        for p in self.people:
            while True:
                facts = self._random_facts(rng)
                clash = any(q.facts and (q.facts["birth_city"] == facts["birth_city"]
                                         or q.facts["occupation"] == facts["occupation"])
                            for q in by_name[p.name] if q is not p)
                if not clash:
                    break
            p.facts = facts
        lo, hi = math.log(c.rate_min), math.log(c.rate_max)
        for p in self.people:
            p.rate = math.exp(rng.uniform(lo, hi))
            p.qa = not p.shared and rng.random() < c.qa_fraction
        for p in self.people:
            occ = self.entities[p.facts["occupation"]].name
            city = self.entities[p.facts["birth_city"]]
            self.entities[p.id] = _Entity(p.id, "person", p.name, [p.name],
                                          f"{occ} born in {city.aliases[1]}")

    def _random_facts(self, rng: random.Random) -> dict[str, str]:
        """A birth city, an occupation and an employer, drawn in that order."""
        return {"birth_city": rng.choice(self.cities).id, "occupation": rng.choice(self.occupations).id,
                "employer": rng.choice(self.orgs).id}

    # ---- text
    def _city_mention(self, city_id: str, composite: float = 0.2) -> tuple[str, list[str]]:
        city = self.entities[city_id]
        if city.shared or self.rng.random() < composite:
            return city.aliases[1], [city.id, city.country]
        return city.name, [city.id]

    def _fill(self, template: str, p: _Person, **values: str) -> str:
        he, his, him = ("she", "her", "her") if p.female else ("he", "his", "him")
        return template.format(name=p.name, He=he.capitalize(), he=he, His=his.capitalize(), his=his,
                               him=him, **values)

    def _fact_values(self, p: _Person, composite: float = 0.2) -> dict[str, str]:
        city, ids = self._city_mention(p.facts["birth_city"], composite)
        occ = self.entities[p.facts["occupation"]].name
        return {"city": city, "occ": occ, "a_occ": _article(occ), "org": self.entities[p.facts["employer"]].name,
                "_city_ids": ids}

    def _block(self, p: _Person, stated: list[str], comention: bool, personal: bool) -> tuple[list[str], set[str]]:
        """Sentences about one person: the first names them, the rest use pronouns (or the name
        again, with probability `p_named_again`)."""
        rng, t = self.rng, self.t
        gold = {p.id}
        kinds: list[tuple[str, str]] = [("fact", r) for r in stated]
        if comention:
            kinds.append(("comention", ""))
        if personal or not kinds:  # a person in the document is always named at least once
            kinds.append(("personal", ""))
        rng.shuffle(kinds)
        sentences = []
        for i, (kind, rel) in enumerate(kinds):
            # (no draw at the default 0.0: the worlds made before this setting stay byte-identical)
            again = self.c.p_named_again > 0 and rng.random() < self.c.p_named_again
            form = "named" if i == 0 or again else "pronoun"
            if kind == "fact":
                template = rng.choice(t["facts"][rel][form])
                values = self._fact_values(p)
                if rel == "birth_city":
                    gold.update(values["_city_ids"])
                else:
                    gold.add(p.facts[rel])
                values.pop("_city_ids")
                sentences.append(self._fill(template, p, **values))
            elif kind == "comention":
                template = rng.choice(t["comention"][form])
                values = {}
                own = rng.random() < self.c.p_own_comention
                if "{x_city}" in template:
                    cid = p.facts["birth_city"] if own else rng.choice(self.cities).id
                    values["x_city"], ids = self._city_mention(cid)
                    gold.update(ids)
                elif "{x_org}" in template:
                    org = self.entities[p.facts["employer"]] if own else rng.choice(self.orgs)
                    values["x_org"] = org.name
                    gold.add(org.id)
                else:
                    occ = self.entities[p.facts["occupation"]] if own else rng.choice(self.occupations)
                    values["x_a_occ"] = _article(occ.name)
                    gold.add(occ.id)
                sentences.append(self._fill(template, p, **values))
            else:
                sentences.append(self._fill(rng.choice(t["personal"][form]), p))
        return sentences, gold

    def _question(self, relation: str, p: _Person) -> str:
        return self.t["questions"][relation].format(name=p.name)

    def _cloze(self, relation: str, p: _Person) -> str:
        """The statement the answer completes, as the corpus states the fact ("NAME was born
        in"); the occupation's ends in its article ("works as an"), as the prose does."""
        article = _article(self.entities[p.facts["occupation"]].name).split(" ", 1)[0]
        return self.t["cloze"][relation].format(name=p.name, article=article)

    def _answer_aliases(self, relation: str, p: _Person) -> list[str]:
        return list(self.entities[p.facts[relation]].aliases)

    # ---- files
    def corpus(self) -> tuple[list[dict[str, Any]], Counter]:
        """The training corpus with gold links, and the number of documents stating each fact."""
        return self._documents(self.people, self.c.seed)

    def _documents(self, people: list[_Person], seed: int) -> tuple[list[dict[str, Any]], Counter]:
        """Documents about `people` (each in Poisson(rate) of them, prose or, for non-QA people,
        Q/A), with gold links, and the number of documents stating each fact."""
        c, rng = self.c, self.rng
        import numpy as np

        counts = np.random.default_rng(seed).poisson([p.rate for p in people])
        prose: list[tuple[_Person, list[str], bool, bool]] = []
        qa_items: list[tuple[_Person, str]] = []
        for p, n in zip(people, counts):
            p_qa = c.p_qa_format if c.qa_format_cap is None else min(c.p_qa_format, c.qa_format_cap / p.rate)
            for _ in range(int(n)):
                stated = [r for r in RELATIONS if rng.random() < c.p_state]
                if p.shared and not ({"birth_city", "occupation"} & set(stated)):
                    stated.append(rng.choice(["birth_city", "occupation"]))  # context for linking
                if not p.qa and not p.shared and stated and rng.random() < p_qa:
                    qa_items += [(p, r) for r in stated]
                    continue
                prose.append((p, stated, rng.random() < c.p_comention, rng.random() < 0.3))
        rng.shuffle(prose)
        rng.shuffle(qa_items)

        stated_docs: Counter = Counter()  # (person id, relation) -> documents stating it
        docs: list[tuple[str, set[str]]] = []
        i = 0
        while i < len(prose):
            size = rng.choices((1, 2, 3), weights=(0.5, 0.3, 0.2))[0]
            group: list[tuple[_Person, list[str], bool, bool]] = []
            names_in_group: set[str] = set()
            while i < len(prose) and len(group) < size:
                p = prose[i][0]
                # Namesakes stand alone (their context must not mix with someone else's), and a
                # name appears once per document.
                if group and (p.shared or group[0][0].shared or p.name in names_in_group):
                    break
                group.append(prose[i])
                names_in_group.add(p.name)
                i += 1
                if p.shared:
                    break
            sentences: list[str] = []
            gold: set[str] = set()
            for p, stated, comention, personal in group:
                block, ids = self._block(p, stated, comention, personal)
                sentences += block
                gold |= ids
                for r in stated:
                    stated_docs[(p.id, r)] += 1
            n_filler = rng.choice((0, 0, 1, 1, 2))
            if len(sentences) + n_filler < 2:
                n_filler = 2 - len(sentences)
            for _ in range(n_filler):
                sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(self.t["filler"]))
            docs.append((" ".join(sentences), gold))

        j = 0
        while j < len(qa_items):
            size = rng.choice((2, 3, 4))
            parts, gold = [], set()
            for p, r in qa_items[j:j + size]:
                aliases = self._answer_aliases(r, p)
                if r == "birth_city":
                    answer, ids = self._city_mention(p.facts[r], composite=0.3)
                    gold.update(ids)
                else:
                    answer = aliases[0]
                    gold.add(p.facts[r])
                gold.add(p.id)
                parts.append(QA_DOC_FORMAT.format(question=self._question(r, p), answer=answer))
                stated_docs[(p.id, r)] += 1
            j += size
            docs.append(("\n\n".join(parts), gold))

        rng.shuffle(docs)
        records = [{"id": f"doc_{k:06d}", "text": text, "entities": sorted(gold)} for k, (text, gold) in enumerate(docs)]
        return records, stated_docs

    def encyclopedia(self) -> list[dict[str, Any]]:
        out = []
        for p in self.people:
            values = self._fact_values(p, composite=1.0)
            ids = values.pop("_city_ids")
            text = self._fill(self.rng.choice(self.t["article"]), p, **values)
            gold = sorted({p.id, *ids, p.facts["occupation"], p.facts["employer"]})
            out.append({"id": f"enc_{p.id}", "text": text, "entities": gold})
        return out

    def kb(self, corpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
        df: Counter = Counter()
        for doc in corpus:
            df.update(doc["entities"])
        total = sum(df[e] + 1 for e in self.entities)
        return [{"id": e.id, "name": e.name, "aliases": e.aliases, "prior": round((df[e.id] + 1) / total, 8),
                 "type": e.type, "description": e.description} for e in self.entities.values()]

    def qa(self, stated_docs: Counter, articles: dict[str, str]) -> list[dict[str, Any]]:
        """The QA pairs; `cloze` is the statement the answer completes (the `cloze` prompt
        format's text); `gold_passage` is the person's encyclopedia article (`articles` by
        person id), which states every fact asked: the oracle passage of every question."""
        out = []
        for p in self.people:
            if not p.qa:
                continue
            for r in RELATIONS:
                out.append({"id": f"qa_{len(out):05d}", "question": self._question(r, p),
                            "cloze": self._cloze(r, p), "answers": self._answer_aliases(r, p), "q_entity": p.id,
                            "a_entity": p.facts[r], "relation": r, "stated_docs": stated_docs[(p.id, r)],
                            "gold_passage": articles[p.id]})
        return out

    def reading(self) -> list[dict[str, Any]]:
        """Reading-comprehension documents about fresh people, in the retrieval prompt format."""
        c, rng, t = self.c, self.rng, self.t
        world_names = {p.name for p in self.people}
        guard_free = _AliasGuard(self.t)  # invented values only need to differ from world names
        taken = {e.name for e in self.entities.values()}
        namer = _Namer(self.namer.n, guard_free, rng)
        invented_cities = [namer.city(taken) for _ in range(200)]
        invented_countries = [namer.country(taken) for _ in range(20)]
        # Invented values are built from random syllables, so nothing but the passage predicts
        # them. (Measured: with organisations drawn from the world's word pools and occupations
        # from its list, a model trained for the demo copied cities from a passage 98% of the
        # time but occupations and employers almost never: it guessed frequent values instead.)
        kinds = self.namer.n["org_kinds"]
        invented_orgs = sorted({f"{namer._word(rng.choice((1, 2)))} {rng.choice(kinds)}" for _ in range(2000)})
        invented_occupations = sorted({namer._word(rng.choice((1, 2))).lower()
                                       + rng.choice(("ist", "er", "ian", "smith", "wright", "maker"))
                                       for _ in range(1000)})
        out = []
        for k in range(c.reading_docs):
            while True:
                name, female = namer.person(set(), c.unicode_fraction)
                if name not in world_names:
                    break
            p = _Person("", name, female, {})
            if rng.random() < c.p_invented_value:
                city_name, country = rng.choice(invented_cities), rng.choice(invented_countries)
            else:
                city = rng.choice(self.cities)
                city_name, country = city.name, self.entities[city.country].name
            city_full = f"{city_name}, {country}"
            if rng.random() < c.p_invented_value:
                occ = rng.choice(invented_occupations)
            else:
                occ = rng.choice(self.occupations).name
            org = rng.choice(invented_orgs) if rng.random() < c.p_invented_value else rng.choice(self.orgs).name
            passage = self._fill(rng.choice(t["article"]), p, city=city_full, occ=occ, a_occ=_article(occ), org=org)
            answers = {"birth_city": rng.choice([city_name, city_full]), "occupation": occ, "employer": org}
            asked = [r for r in RELATIONS if rng.random() < 0.8] or [rng.choice(RELATIONS)]
            rng.shuffle(asked)
            parts = [READING_PASSAGE.format(text=passage)]
            parts += [READING_QA.format(question=t["questions"][r].format(name=name), answer=answers[r]) for r in asked]
            out.append({"id": f"read_{k:06d}", "text": "\n".join(parts)})
        return out

    def drill(self) -> list[dict[str, Any]]:
        """Documents about `drill_people` fresh people (names no world alias uses), each in about
        `drill_rate` documents written as the corpus's: prose, and Q/A for some appearances.
        Its own random stream, so the other files do not depend on it."""
        c, world_rng = self.c, self.rng
        self.rng = rng = random.Random(f"drill-{c.seed}")  # what the document writers draw from
        namer = _Namer(self.namer.n, self.guard, rng)
        taken = {e.name for e in self.entities.values()}
        people = []
        for i in range(c.drill_people):
            name, female = namer.person(taken, c.unicode_fraction)
            taken.add(name)
            people.append(_Person(f"drill_{i:04d}", name, female, self._random_facts(rng), rate=c.drill_rate))
        try:
            records, _ = self._documents(people, c.seed + 1)
        finally:
            self.rng = world_rng
        return [{"id": f"drill_{k:06d}", "text": r["text"]} for k, r in enumerate(records)]


def world_training_files(world: str | Path) -> list[Path]:
    """The files a model of this world trains on, in the order of `TrainConfig.mix`'s shares:
    corpus.jsonl, reading.jsonl, drill.jsonl."""
    return [Path(world) / name for name in ("corpus.jsonl", "reading.jsonl", "drill.jsonl")]


def generate_world(out_dir: str | Path, config: WorldConfig | None = None) -> Path:
    """Generate a controlled world into `out_dir` and return it.

    Writes `corpus.jsonl`, `reading.jsonl`, `drill.jsonl`, `encyclopedia.jsonl`, `kb.jsonl`,
    `qa.jsonl`, `world.json` (the config) and, last, `truth.jsonl` (so its presence means "complete").
    Deterministic: the same config writes the same files.
    """
    config = (config or WorldConfig()).resolved()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _World(config)
    corpus, stated_docs = world.corpus()
    write_jsonl(out / "corpus.jsonl", corpus)
    encyclopedia = world.encyclopedia()
    write_jsonl(out / "encyclopedia.jsonl", encyclopedia)
    write_jsonl(out / "kb.jsonl", world.kb(corpus))
    qa = world.qa(stated_docs, {article["id"].removeprefix("enc_"): article["text"] for article in encyclopedia})
    write_jsonl(out / "qa.jsonl", qa)
    write_jsonl(out / "reading.jsonl", world.reading())
    write_jsonl(out / "drill.jsonl", world.drill())
    write_json(out / "world.json", {"config": asdict(config), "documents": len(corpus), "qa": len(qa),
                                    "people": len(world.people), "entities": len(world.entities)})
    write_jsonl(out / "truth.jsonl", truth_counts(qa, corpus))
    return out


def truth_counts(qa: list[dict[str, Any]], corpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`{"id", "count"}` per QA pair: corpus documents whose gold links hold both entities."""
    docs_of: dict[str, set[int]] = {}
    for k, doc in enumerate(corpus):
        for e in doc["entities"]:
            docs_of.setdefault(e, set()).add(k)
    return [{"id": q["id"], "count": len(docs_of.get(q["q_entity"], set()) & docs_of.get(q["a_entity"], set()))}
            for q in qa]
