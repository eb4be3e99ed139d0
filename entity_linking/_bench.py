"""`ltprobe bench link`: speed, agreement and quality of the fast path and the spaCy component.

A generated world of its own (the demo world has only a few thousand aliases): people,
cities, countries and organisations with about `aliases` aliases in all, shared names (people
who share a full name, cities that share a name in different countries), "Name, Country"
qualifiers, Unicode names, and documents of about 200 words with gold links in which every
mention of a shared name comes with context (an occupation, a birth city), as in the
controlled world of `probe.generate_world`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "pr", "r", "s", "st",
           "t", "tr", "v", "w", "z", "th", "sh", "ch"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou", "ia", "y"]
_CODAS = ["", "n", "r", "s", "l", "m", "nd", "rk", "th", "x", "lt"]
_UNICODE = ["Zoë", "Anaïs", "Łukasz", "Ðorđe", "Søren", "Renée", "José", "Çelik", "Núñez", "Jürgen"]
_APOSTROPHE = ["O'", "D'", "Mac'"]
_OCCUPATIONS = ("chemist painter baker pilot nurse carpenter sculptor botanist tailor zoologist "
                "astronomer cartographer economist engineer translator surgeon architect librarian "
                "geologist composer").split()
_FILLER = ("the weather was mild that spring and nobody remembers the exact date of the meeting which "
           "lasted well into the evening while later accounts differ on many details the local "
           "newspaper mentioned it briefly and few people noticed at the time it was a busy year for "
           "everyone involved things changed slowly after that period which is remembered as a happy "
           "one some of them still talk about it today").split()


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables - 1)) \
        + rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def generate(aliases: int, docs: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (kb records, documents `{id, text, entities, mentions: [[start, end, id, ambiguous]]}`)."""
    rng = random.Random(seed)
    taken: set[str] = set(_FILLER) | set(_OCCUPATIONS)

    def fresh(make) -> str:
        while True:
            name = make()
            if name.lower() not in taken:
                taken.add(name.lower())
                return name

    n_entities = aliases // 2
    n_countries = max(10, n_entities // 500)
    n_cities = max(20, n_entities // 5)
    n_orgs = max(20, n_entities // 5)
    n_people = n_entities - n_countries - n_cities - n_orgs
    countries = []
    for i in range(n_countries):
        name = fresh(lambda: _word(rng, 2).capitalize() + rng.choice(["land", "ia", "stan", "mark"]))
        countries.append({"id": f"C{i}", "name": name, "aliases": [f"{name} Republic"], "type": "country",
                          "description": "country", "prior": 0.0})
    cities = []
    for i in range(n_cities):
        country = rng.choice(countries)
        if cities and rng.random() < 0.1:  # a shared city name, in another country
            other = rng.choice(cities)
            name = other["name"]
            country = rng.choice([c for c in countries if c["name"] != other["_country"]])
        else:
            name = fresh(lambda: _word(rng, rng.choice((2, 3))).capitalize())
        cities.append({"id": f"T{i}", "name": name, "aliases": [f"{name}, {country['name']}"], "type": "city",
                       "description": f"city in {country['name']}", "prior": 0.0, "_country": country["name"],
                       "_country_id": country["id"]})
    orgs = []
    for i in range(n_orgs):
        name = fresh(lambda: f"{_word(rng, 2).capitalize()} {rng.choice(['Works', 'Press', 'Bank', 'Labs', 'Trust'])}")
        city = rng.choice(cities)
        orgs.append({"id": f"O{i}", "name": name, "aliases": [name.split()[0] + " Group"], "type": "organisation",
                     "description": f"company based in {city['name']}", "prior": 0.0})
    people = []
    for i in range(n_people):
        occupation = rng.choice(_OCCUPATIONS)
        city = rng.choice(cities)
        if people and rng.random() < 0.05:  # a namesake: another occupation and birth city
            other = rng.choice(people)
            name = other["name"]
            occupation = rng.choice([o for o in _OCCUPATIONS if o != other["_occupation"]])
            city = rng.choice(cities)
            while city["name"] == other["_city"]["name"]:
                city = rng.choice(cities)
            alias = other["aliases"][0]
        else:
            def make() -> str:
                first = rng.choice(_UNICODE) if rng.random() < 0.05 else _word(rng, 2).capitalize()
                last = _word(rng, rng.choice((2, 3))).capitalize()
                if rng.random() < 0.05:
                    last = rng.choice(_APOSTROPHE) + last
                return f"{first} {last}"
            name = fresh(make)
            first, last = name.split(" ", 1)
            initial = f"{first[0]}. {last}"
            if initial.lower() not in taken:
                taken.add(initial.lower())
                alias = initial
            else:  # "J. Smith" is taken: a middle initial instead
                alias = fresh(lambda: f"{first} {rng.choice('ABCDEFGHIJKLMNOPRSTVW')}. {last}")
        people.append({"id": f"P{i}", "name": name, "aliases": [alias], "type": "person",
                       "description": f"{occupation} born in {city['name']}", "prior": 0.0,
                       "_occupation": occupation, "_city": city})
    entities = countries + cities + orgs + people
    for e in entities:
        e["prior"] = round(rng.paretovariate(1.2), 4)
    names: dict[str, int] = {}
    for e in entities:
        for a in [e["name"], *e["aliases"]]:
            names[a.lower()] = names.get(a.lower(), 0) + 1
    pool = people + orgs + cities
    cumulative = list(itertools.accumulate(e["prior"] for e in pool))

    documents = []
    for d in range(docs):
        text = ""
        mentions: list[list[Any]] = []

        def put(piece: str, entity: dict[str, Any] | None = None) -> None:
            nonlocal text
            if entity is not None:
                mentions.append([len(text), len(text) + len(piece), entity["id"], names[piece.lower()] > 1])
            text += piece

        def city_mention(city: dict[str, Any], composite: bool) -> None:
            if composite or names[city["name"].lower()] > 1:
                put(city["name"], city)
                put(", ")
                put(city["_country"], {"id": city["_country_id"]})
            else:
                put(city["name"], city)

        words = 0
        while words < 200:
            if rng.random() < 0.45:
                e = rng.choices(pool, cum_weights=cumulative)[0]
                ambiguous = names[e["name"].lower()] > 1
                if e["type"] == "person":
                    put(rng.choice([e["name"], e["aliases"][0]]) if not ambiguous else e["name"], e)
                    if ambiguous or rng.random() < 0.5:
                        put(f" worked as a {e['_occupation']} and was born in ")
                        city_mention(e["_city"], composite=True)
                        put(".")
                    else:
                        put(" said little about it.")
                elif e["type"] == "city":
                    put("They travelled to ")
                    city_mention(e, composite=rng.random() < 0.3)
                    put(" that year.")
                else:
                    put(rng.choice([e["name"], e["aliases"][0]]), e)
                    put(" opened a new office.")
            else:
                put(" ".join(rng.choice(_FILLER) for _ in range(rng.randint(6, 14))).capitalize() + ".")
            put(" ")
            words = text.count(" ")
        documents.append({"id": f"d{d}", "text": text.strip(), "entities": sorted({m[2] for m in mentions}),
                          "mentions": mentions})
    for e in entities:
        for key in [k for k in e if k.startswith("_")]:
            del e[key]
    return entities, documents


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def bench_link(docs: int = 20000, aliases: int = 100000, spacy_docs: int | None = None, seed: int = 0,
               rss: bool = True, work_dir: str | None = None) -> dict[str, Any]:
    """Run the benchmark, print a side-by-side table to stderr, return the figures."""
    import spacy

    from entity_linking._linker import Linker
    from entity_linking._spacy import LinkerComponent
    from entity_linking.kb import KnowledgeBase

    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ltprobe-bench-link-")
        work_dir = tmp.name
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    log = logger.info

    started = time.perf_counter()
    records, documents = generate(aliases, docs, seed)
    log(f"generated {len(records)} entities and {len(documents)} documents "
        f"(~{sum(len(d['text'].split()) for d in documents) / len(documents):.0f} words each) "
        f"in {time.perf_counter() - started:.1f}s")
    kb = KnowledgeBase.from_records(records)
    t = time.perf_counter()
    kb.prepare()
    info = kb.info()
    log(f"knowledge base: {info['entities']} entities, {info['aliases']} aliases, {info['keys']} keys, "
        f"{info['ambiguous_keys']} ambiguous; automaton built in {time.perf_counter() - t:.1f}s")
    linker = Linker(kb)
    texts = [d["text"] for d in documents]

    linker.link(texts[0])  # warm caches
    # the corpus fast path: what link-corpus runs per document (entity ids, no Mention objects)
    cpu, wall = time.process_time(), time.perf_counter()
    for text in texts:
        linker.link_ids(text)
    fast_cpu, fast_wall = time.process_time() - cpu, time.perf_counter() - wall
    cpu = time.process_time()
    fast = linker.link_many(texts)
    mentions_cpu = time.process_time() - cpu

    nlp = spacy.blank("en")
    t = time.perf_counter()
    component: LinkerComponent = nlp.add_pipe("ltprobe_linker")
    component.set_kb(kb)
    log(f"spaCy phrase matcher built in {time.perf_counter() - t:.1f}s")
    n_spacy = len(texts) if spacy_docs is None else min(spacy_docs, len(texts))
    cpu, wall = time.process_time(), time.perf_counter()
    spacy_docs_out = [[(e.start_char, e.kb_id_) for e in doc.ents] for doc in nlp.pipe(texts[:n_spacy], batch_size=256)]
    spacy_cpu, spacy_wall = time.process_time() - cpu, time.perf_counter() - wall

    both = union = 0
    for mentions, ents in zip(fast, spacy_docs_out):
        a = {(m.start, m.kb_id) for m in mentions}
        b = set(ents)
        both += len(a & b)
        union += len(a | b)
    agreement = both / union if union else 1.0

    tp = fp = fn = 0
    atp = afp = afn = 0
    for doc, mentions in zip(documents, fast):
        pred = {m.kb_id for m in mentions}
        gold = set(doc["entities"])
        tp += len(pred & gold)
        fp += len(pred - gold)
        fn += len(gold - pred)
        gold_amb = {(s, i) for s, e, i, amb in doc["mentions"] if amb}
        pred_amb = {(m.start, m.kb_id) for m in mentions if len(kb.candidates(m.text)) > 1}
        atp += len(pred_amb & gold_amb)
        afp += len(pred_amb - gold_amb)
        afn += len(gold_amb - pred_amb)

    result: dict[str, Any] = {
        "docs": len(texts), "aliases": info["aliases"], "entities": info["entities"],
        "docs_per_s_per_core": round(len(texts) / fast_cpu, 1),
        "docs_per_s_wall": round(len(texts) / fast_wall, 1),
        "mentions_docs_per_s_per_core": round(len(texts) / mentions_cpu, 1),
        "spacy_docs": n_spacy,
        "spacy_docs_per_s_per_core": round(n_spacy / spacy_cpu, 1),
        "spacy_docs_per_s_wall": round(n_spacy / spacy_wall, 1),
        "speedup": round((len(texts) / fast_cpu) / (n_spacy / spacy_cpu), 2),
        "agreement": round(agreement, 5),
        "f1": round(_f1(tp, fp, fn), 5),
        "ambiguous_f1": round(_f1(atp, afp, afn), 5),
        "ambiguous_mentions": atp + afn,
        "kandpal_docs_per_s_per_core": 7.0,
    }
    if rss:
        kb_dir = work / "kb"
        kb.save(kb_dir)
        corpus_1x = work / "corpus_1x.jsonl"
        corpus_5x = work / "corpus_5x.jsonl"
        with open(corpus_1x, "w", encoding="utf-8") as one, open(corpus_5x, "w", encoding="utf-8") as five:
            for k in range(5):
                for doc in documents:
                    line = json.dumps({"id": f"{doc['id']}-{k}", "text": doc["text"]}, ensure_ascii=False) + "\n"
                    if k == 0:
                        one.write(line)
                    five.write(line)
        result["peak_rss_mb_1x"] = _peak_rss(corpus_1x, kb_dir, work / "linked_1x")
        result["peak_rss_mb_5x"] = _peak_rss(corpus_5x, kb_dir, work / "linked_5x")
        result["rss_growth"] = round(result["peak_rss_mb_5x"] / result["peak_rss_mb_1x"] - 1, 4)
    log("")
    log(f"{'':28s}{'fast path':>14s}{'spaCy component':>18s}")
    log(f"{'docs/s per core (CPU time)':28s}{result['docs_per_s_per_core']:>14,.0f}{result['spacy_docs_per_s_per_core']:>18,.0f}")
    log(f"{'docs/s (wall, shared box)':28s}{result['docs_per_s_wall']:>14,.0f}{result['spacy_docs_per_s_wall']:>18,.0f}")
    log(f"{'docs/s per core, Mentions':28s}{result['mentions_docs_per_s_per_core']:>14,.0f}{'':>18s}")
    log(f"agreement {result['agreement']:.4f}  f1 {result['f1']:.4f}  ambiguous_f1 {result['ambiguous_f1']:.4f} "
        f"({result['ambiguous_mentions']} ambiguous mentions)  baseline DBpedia Spotlight in Kandpal et al.: "
        f"~7 docs/s per core")
    if rss:
        log(f"peak RSS linking {len(texts)} docs: {result['peak_rss_mb_1x']:.0f} MB; "
            f"{5 * len(texts)} docs: {result['peak_rss_mb_5x']:.0f} MB")
    if tmp is not None:
        tmp.cleanup()
    return result


def _peak_rss(corpus: Path, kb_dir: Path, out: Path) -> float:
    """Peak resident memory (MB) of a fresh process that links `corpus` with one worker."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec
    code = ("import re, resource, sys\n"
            "from entity_linking.corpus._link import link_corpus\n"
            "link_corpus(sys.argv[1], sys.argv[2], sys.argv[3], workers=1, progress=False)\n"
            "try:\n"
            "    print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
            "except OSError:\n"
            "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                      os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code, str(corpus), str(kb_dir), str(out)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"peak-memory run failed: {done.stderr.strip()[-2000:]}")
    return round(int(done.stdout.strip().splitlines()[-1]) / 1024, 1)


def bench_scale(docs: int = 200000, aliases: int = 20000, files: int = 8, seed: int = 0,
                work_dir: str | None = None) -> dict[str, Any]:
    """`ltprobe bench scale`: corpus linking on Ray Data (local mode) with 1 and 2 workers, and
    the local process pool with 1 and 2 workers as the baseline; documents/s (wall clock, the
    Ray start-up excluded) and the scaling efficiency `docs_per_s_2 / (2 * docs_per_s_1)`."""
    import ray

    from entity_linking.corpus import link_corpus
    from entity_linking.kb import KnowledgeBase

    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ltprobe-bench-scale-")
        work_dir = tmp.name
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    log = logger.info
    records, documents = generate(aliases, docs, seed)
    kb = KnowledgeBase.from_records(records)
    kb.save(work / "kb")
    corpus = work / "corpus"
    corpus.mkdir(exist_ok=True)
    per_file = -(-len(documents) // files)
    for k in range(files):
        with open(corpus / f"part-{k:03d}.jsonl", "w", encoding="utf-8") as handle:
            for doc in documents[k * per_file:(k + 1) * per_file]:
                handle.write(json.dumps({"id": doc["id"], "text": doc["text"]}, ensure_ascii=False) + "\n")
    log(f"corpus: {len(documents)} documents in {files} files; knowledge base: {len(kb)} entities")
    result: dict[str, Any] = {"docs": len(documents), "aliases": aliases, "files": files}
    try:
        # the local pool first: it forks, which is best done before Ray starts its threads
        for executor in ("local", "ray"):
            if executor == "ray":
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            for workers in (1, 2):
                out = work / f"{executor}-{workers}"
                started = time.perf_counter()
                link_corpus(corpus, work / "kb", out, workers=workers, executor=executor, progress=False)
                rate = len(documents) / (time.perf_counter() - started)
                key = f"docs_per_s_{workers}" if executor == "ray" else f"local_docs_per_s_{workers}"
                result[key] = round(rate, 1)
                log(f"{executor:6s} {workers} worker(s): {rate:,.0f} docs/s")
    finally:
        ray.shutdown()
    shards = {}
    for name in ("ray-1", "ray-2", "local-1", "local-2"):
        shards[name] = {p.name: p.read_bytes() for p in sorted((work / name).glob("shard-*.jsonl"))}
    result["identical_shards"] = len({json.dumps(sorted((k, v.hex()) for k, v in s.items())) for s in shards.values()}) == 1
    result["efficiency"] = round(result["docs_per_s_2"] / (2 * result["docs_per_s_1"]), 3)
    result["local_efficiency"] = round(result["local_docs_per_s_2"] / (2 * result["local_docs_per_s_1"]), 3)
    log(f"scaling efficiency 1 -> 2 workers: Ray {result['efficiency']:.2f}, local process pool "
        f"{result['local_efficiency']:.2f} (machine shared with other jobs: wall-clock figures are noisy)")
    if tmp is not None:
        tmp.cleanup()
    return result
