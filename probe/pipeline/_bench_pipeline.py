"""`ltprobe bench pipeline`: a scale rehearsal of link -> index -> count on a Pile-like corpus.

Generates (or reuses, from `--work-dir`):

- a knowledge base of `entities` entities and `aliases` names in all, as `ltprobe bench kb`
  makes it (`entity_linking.kb.generate_kb`: people, cities, organisations, countries; shared
  names, "Name, Country" qualifiers, Unicode names), written as `kb.jsonl` and built into a
  knowledge-base folder (measured as the stage `kb`);
- a corpus of `docs` documents of about `words` words in `shards` `.jsonl.zst` files: English
  filler sentences and, about every 15 words, a sentence that mentions an entity drawn by its
  prior (a person with occupation and birth city, a city with its country, an organisation),
  so a 650-word document holds about 30 linked mentions (written by one process per core);
- `qa` QA pairs whose entities come from the knowledge base ("In what city was NAME born?",
  answered by the person's birth city).

Then each stage runs the public function in a fresh process, as the command line would:
`entity_linking.link_qa`, `entity_linking.link_corpus` (`workers`, default all cores),
`indexes.build_index` (embedded: entity sets, text and BM25 passages, one process) and
`indexes.open_index` + `indexes.count_qa`. Per stage: wall and CPU seconds (the process and
its workers), documents per second and per CPU second, peak resident memory (the process's
`VmHWM`, and its largest worker's) and bytes written per document. From the per-core rates it
projects The Pile (211M documents) on one 64-core node and on a Ray cluster.
"""

from __future__ import annotations

import bisect
import json
import logging
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PILE_DOCS = 211_000_000
"""Documents in The Pile (about 825 GB, about 650 words each)."""

_STAGE = r"""
import json, re, resource, sys, time
stage, a = sys.argv[1], json.loads(sys.argv[2])
started, cpu = time.perf_counter(), time.process_time()
out = {}
if stage == "kb":
    from entity_linking.kb import KnowledgeBase, jsonl_entities
    KnowledgeBase.write(jsonl_entities(a["jsonl"]), a["out"], source=a["jsonl"], progress=a["progress"])
elif stage == "link_qa":
    from entity_linking import link_qa
    stats = link_qa(a["qa"], a["kb"], a["out"], progress=a["progress"])
    out = {"with_q_entity": stats["with_q_entity"], "with_a_entity": stats["with_a_entity"]}
elif stage == "link":
    from entity_linking import link_corpus
    manifest = link_corpus(a["corpus"], a["kb"], a["out"], workers=a["workers"], progress=a["progress"])
    out = {"workers": manifest.get("workers", a["workers"])}
elif stage == "index":
    from indexes import build_index
    info = build_index(a["corpus"], a["linked"], a["out"], progress=a["progress"])
    out = {"n_mentions": info.get("n_mentions"), "n_passages": info.get("n_passages")}
elif stage == "count":
    from indexes import count_qa, open_index
    index = open_index(a["index"])
    t = time.perf_counter()
    counts = count_qa(index, a["qa_entities"], progress=a["progress"])
    out["count_s"] = round(time.perf_counter() - t, 4)
    with open(a["out"], "w", encoding="utf-8") as handle:
        for c in counts:
            handle.write(json.dumps(c) + "\n")
    values = [c["count"] for c in counts if c["count"] is not None]
    out.update({"counted": len(values), "nonzero": sum(v > 0 for v in values),
           "max_count": max(values, default=0), "status": sorted({c["status"] for c in counts})})
wall = time.perf_counter() - started
self_cpu = time.process_time() - cpu
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
status = open("/proc/self/status").read()
out.update(wall_s=round(wall, 3), cpu_s=round(self_cpu + kids.ru_utime + kids.ru_stime, 3),
           peak_rss_mb=round(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024, 1),
           worker_peak_rss_mb=round(kids.ru_maxrss / 1024, 1))
print(json.dumps(out))
"""

_FILLER = ("the a an and of to in that it was for on with as at by from this which were had have been "
           "their they there after before during while when later early many most some other several "
           "years year time people city work company history local public new first last second "
           "found made known called used given taken built held became remained began continued "
           "report study group members family government school church market river road station "
           "north south east west small large old long short main central general national "
           "because although however since until about around between against among through "
           "spring summer autumn winter morning evening record number series season program "
           "second third century decade music art science science field office building house").split()
_KINDS = ["in", "near", "across", "throughout", "outside"]

# Set in the generating parent before its pool forks (copy-on-write), read by `_write_shard`.
_POOL: dict[str, Any] = {}


def _filler_sentences(rng: random.Random, n: int = 4000) -> list[tuple[str, int]]:
    out = []
    for _ in range(n):
        k = rng.randint(6, 18)
        out.append((" ".join(rng.choice(_FILLER) for _ in range(k)).capitalize() + ".", k))
    return out


def _entity_sentence(rng: random.Random, e: tuple[str, ...]) -> str:
    kind, name, alias, extra, country = e
    if kind == "person":
        occupation, _, city = extra.partition(" born in ")
        if rng.random() < 0.5:
            return f"{name} worked as a {occupation} and was born in {city}."
        return f"{rng.choice((name, alias))} said little about it."
    if kind == "city":
        if rng.random() < 0.3:
            return f"They travelled to {name}, {country} that year."
        return f"They travelled to {name} that year."
    return f"{rng.choice((name, alias))} opened a new office {rng.choice(_KINDS)} the region."


def _write_shard(task: tuple[str, int, int, int, int]) -> int:
    import zstandard

    path, start, count, words, seed = task
    rng = random.Random(seed)
    pool, cumulative, filler = _POOL["pool"], _POOL["cumulative"], _POOL["filler"]
    total = cumulative[-1]
    tmp = path + ".tmp"
    n_bytes = 0
    with open(tmp, "wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as out:
        lines = []
        for d in range(start, start + count):
            parts, n = [], 0
            while n < words:
                if rng.random() < 0.35:
                    # bisect on the cumulative priors (rng.choices does the same, slower per call)
                    e = pool[bisect.bisect_left(cumulative, rng.random() * total)]
                    s = _entity_sentence(rng, e)
                    n += s.count(" ") + 1
                else:
                    s, k = filler[rng.randrange(len(filler))]
                    n += k
                parts.append(s)
            lines.append(json.dumps({"id": f"d{d}", "text": " ".join(parts)}, ensure_ascii=False) + "\n")
            if len(lines) >= 1000:
                data = "".join(lines).encode()
                n_bytes += len(data)
                out.write(data)
                lines = []
        data = "".join(lines).encode()
        n_bytes += len(data)
        out.write(data)
    os.replace(tmp, path)
    return n_bytes


def _pool_of(records: list[dict[str, Any]]) -> tuple[list[tuple[str, ...]], list[float]]:
    """People, cities and organisations as (type, name, alias, description, country) and their
    cumulative priors."""
    import itertools

    pool = []
    priors = []
    for r in records:
        if r["type"] == "country":
            continue
        alias = r["aliases"][0] if r["aliases"] else r["name"]
        country = r["description"][len("city in "):] if r["type"] == "city" else ""
        pool.append((r["type"], r["name"], alias, r["description"], country))
        priors.append(r["prior"])
    return pool, list(itertools.accumulate(priors))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _stage(name: str, **args: Any) -> dict[str, Any]:
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    logger.info(f"stage {name} ...")
    done = subprocess.run([sys.executable, "-c", _STAGE, name, json.dumps(args, default=str)],
                          stdout=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"bench pipeline: stage {name} failed (exit {done.returncode}); see its error above")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    logger.info(f"stage {name}: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB")
    return result


def _generate_inputs(work: Path, *, docs: int, shards: int, words: int, entities: int, aliases: int,
                     qa: int, seed: int, workers: int, progress: bool) -> dict[str, Any]:
    """kb.jsonl, the KB folder, the corpus and qa.jsonl in `work`, each reused when its settings match."""
    from entity_linking.kb import generate_kb

    kb_settings = {"entities": entities, "aliases": aliases, "seed": seed}
    corpus_settings = {**kb_settings, "docs": docs, "shards": shards, "words": words, "version": 1}
    qa_settings = {**kb_settings, "qa": qa, "version": 1}
    kb_meta, corpus_meta, qa_meta = (_read_json(work / f"{n}.json") for n in ("kb", "corpus", "qa"))
    records = None
    out: dict[str, Any] = {}

    def kb_records() -> list[dict[str, Any]]:
        nonlocal records
        if records is None:
            if kb_meta_ok and (work / "kb.jsonl").exists():
                records = [json.loads(line) for line in open(work / "kb.jsonl", encoding="utf-8")]
            else:
                started = time.perf_counter()
                records, _ = generate_kb(entities, aliases, 0, seed)
                logger.info(f"generated {len(records):,} entities in {time.perf_counter() - started:.0f} s")
        return records

    kb_meta_ok = bool(kb_meta and kb_meta.get("settings") == kb_settings and (work / "kb").is_dir())
    if kb_meta_ok:
        logger.info(f"reusing the knowledge base in {work / 'kb'}")
        out["kb"] = {**kb_meta["stage"], "reused": True}
    else:
        for stale in ("kb", "kb.json", "corpus.json", "qa.json"):
            p = work / stale
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        corpus_meta = qa_meta = None
        rs = kb_records()
        with open(work / "kb.jsonl", "w", encoding="utf-8") as handle:
            for r in rs:
                handle.write(json.dumps(r, ensure_ascii=False) + "\n")
        stage = _stage("kb", jsonl=work / "kb.jsonl", out=work / "kb", progress=progress)
        stage.update(entities=len(rs), aliases=sum(1 + len(r["aliases"]) for r in rs),
                     kb_bytes=_size(work / "kb"))
        (work / "kb.json").write_text(json.dumps({"settings": kb_settings, "stage": stage}), encoding="utf-8")
        kb_meta_ok = True
        out["kb"] = {**stage, "reused": False}

    corpus = work / "corpus"
    if corpus_meta and corpus_meta.get("settings") == corpus_settings and corpus.is_dir():
        logger.info(f"reusing the corpus in {corpus}")
        out["corpus"] = corpus_meta["stats"]
    else:
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.mkdir(parents=True)
        rs = kb_records()
        pool, cumulative = _pool_of(rs)
        rng = random.Random(seed + 2)
        _POOL.update(pool=pool, cumulative=cumulative, filler=_filler_sentences(rng))
        per = -(-docs // shards)
        tasks = [(str(corpus / f"part-{k:03d}.jsonl.zst"), k * per, max(0, min(per, docs - k * per)), words,
                  seed * 100_003 + k) for k in range(shards)]
        started = time.perf_counter()
        try:
            with multiprocessing.get_context("fork").Pool(max(1, min(workers, shards))) as p:
                text_bytes = sum(p.imap_unordered(_write_shard, tasks))
        finally:
            _POOL.clear()
        seconds = time.perf_counter() - started
        stats = {"docs": docs, "shards": shards, "text_bytes": text_bytes, "zst_bytes": _size(corpus),
                 "generate_s": round(seconds, 1)}
        logger.info(f"generated {docs:,} documents ({text_bytes / 2**30:.2f} GiB of JSONL, "
                    f"{stats['zst_bytes'] / 2**30:.2f} GiB compressed) in {shards} shards in {seconds:.0f} s")
        (work / "corpus.json").write_text(json.dumps({"settings": corpus_settings, "stats": stats}),
                                          encoding="utf-8")
        out["corpus"] = stats

    if not (qa_meta and qa_meta.get("settings") == qa_settings and (work / "qa.jsonl").exists()):
        rs = kb_records()
        rng = random.Random(seed + 3)
        people = [r for r in rs if r["type"] == "person"]
        # one person of each name: a namesake's question would be ambiguous by design
        seen: dict[str, int] = {}
        for r in people:
            seen[r["name"]] = seen.get(r["name"], 0) + 1
        people = [r for r in people if seen[r["name"]] == 1]
        chosen = rng.sample(people, min(qa, len(people)))
        with open(work / "qa.jsonl", "w", encoding="utf-8") as handle:
            for i, r in enumerate(chosen):
                city = r["description"].partition(" born in ")[2]
                handle.write(json.dumps({"id": f"q{i}", "question": f"In what city was {r['name']} born?",
                                         "answers": [city]}, ensure_ascii=False) + "\n")
        (work / "qa.json").write_text(json.dumps({"settings": qa_settings}), encoding="utf-8")
    return out


def _hours(items: float, per_s: float) -> float:
    return items / per_s / 3600 if per_s > 0 else float("inf")


def bench_pipeline(*, docs: int = 1_000_000, shards: int = 16, words: int = 650, entities: int = 2_000_000,
                   aliases: int = 6_000_000, qa: int = 10_000, workers: int | None = None,
                   work_dir: str | os.PathLike | None = None, keep: bool = False, seed: int = 0,
                   node_cores: int = 64, ray_nodes: int = 8, ray_efficiency: float = 0.8,
                   progress: bool = True) -> dict[str, Any]:
    """Run the rehearsal (see the module docstring); print the table on stdout, return the figures
    (`ltprobe bench pipeline` prints them as one JSON object last).

    `work_dir` keeps the generated inputs (knowledge base, corpus, QA pairs) for the next run with
    the same settings (default: a temporary folder, removed at the end); `keep` also keeps the
    stage outputs (linked shards, index, counts) in `work_dir/run`."""
    from entity_linking.io import InputError

    if min(docs, shards, words, entities, qa) < 1:
        raise InputError("--docs, --shards, --words, --entities and --qa must be positive")
    if shards > docs:
        raise InputError(f"--shards ({shards}) exceeds --docs ({docs})")
    cores = os.cpu_count() or 1
    workers = workers or cores
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ltprobe-bench-pipeline-")
        work_dir = tmp.name
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    try:
        inputs = _generate_inputs(work, docs=docs, shards=shards, words=words, entities=entities,
                                  aliases=aliases, qa=qa, seed=seed, workers=workers, progress=progress)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir()
        stages: dict[str, dict[str, Any]] = {"kb": inputs["kb"]}
        stages["link_qa"] = _stage("link_qa", qa=work / "qa.jsonl", kb=work / "kb", out=run_dir / "qa_entities.jsonl",
                                   progress=progress)
        stages["link"] = _stage("link", corpus=work / "corpus", kb=work / "kb", out=run_dir / "linked",
                                workers=workers, progress=progress)
        stages["index"] = _stage("index", corpus=work / "corpus", linked=run_dir / "linked",
                                 out=run_dir / "index", progress=progress)
        stages["count"] = _stage("count", index=run_dir / "index", qa_entities=run_dir / "qa_entities.jsonl",
                                 out=run_dir / "counts.jsonl", progress=progress)
        sizes = {"corpus": _size(work / "corpus"), "kb": _size(work / "kb"), "link": _size(run_dir / "linked"),
                 "index": _size(run_dir / "index"), "count": _size(run_dir / "counts.jsonl"),
                 "link_qa": _size(run_dir / "qa_entities.jsonl")}
        # what counting needs (entity sets, ids), without the kept text and the BM25 passages
        sizes["index_counts"] = sizes["index"] - _size(run_dir / "index" / "passages") \
            - _size(run_dir / "index" / "text.bin")
        result = _figures(stages, inputs, sizes, docs=docs, shards=shards, words=words, qa=qa, workers=workers,
                          cores=cores, node_cores=node_cores, ray_nodes=ray_nodes, ray_efficiency=ray_efficiency)
        result["work_dir"] = str(work) if tmp is None else None
        _print_table(result)
        return result
    finally:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        if tmp is not None and not keep:
            tmp.cleanup()


def _figures(stages: dict[str, dict[str, Any]], inputs: dict[str, Any], sizes: dict[str, int], *, docs: int,
             shards: int, words: int, qa: int, workers: int, cores: int, node_cores: int, ray_nodes: int,
             ray_efficiency: float) -> dict[str, Any]:
    out_stages = {}
    for name, s in stages.items():
        items = {"kb": s.get("entities", 0), "link_qa": qa, "count": qa}.get(name, docs)
        unit = {"kb": "entities", "link_qa": "questions", "count": "QA pairs"}.get(name, "docs")
        row = {"items": items, "unit": unit, "wall_s": s["wall_s"], "cpu_s": s["cpu_s"],
               "per_s": round(items / max(s["wall_s"], 1e-9), 1),
               "per_s_per_core": round(items / max(s["cpu_s"], 1e-9), 1),
               "peak_rss_mb": s["peak_rss_mb"], "worker_peak_rss_mb": s["worker_peak_rss_mb"],
               "disk_bytes": sizes.get(name, 0)}
        if unit == "docs":
            row["disk_bytes_per_doc"] = round(sizes.get(name, 0) / docs, 1)
        for key in ("count_s", "reused", "with_q_entity", "with_a_entity", "n_mentions", "n_passages", "counted",
                    "nonzero", "max_count", "status"):
            if key in s:
                row[key] = s[key]
        out_stages[name] = row
    link, index, count = out_stages["link"], out_stages["index"], out_stages["count"]
    index["counts_bytes_per_doc"] = round(sizes["index_counts"] / docs, 1)
    # The Pile: linking scales with cores (one process per core, the knowledge base shared by
    # fork); the embedded index is written by one process, at its measured per-core rate;
    # counting time (the counting alone, not the start and open) grows with the document sets,
    # at most linearly with the corpus: an upper bound.
    link_node_h = _hours(PILE_DOCS, link["per_s_per_core"] * node_cores)
    index_h = _hours(PILE_DOCS, index["per_s_per_core"])
    count_h = count["count_s"] * (PILE_DOCS / docs) / 3600
    link_ray_h = _hours(PILE_DOCS, link["per_s_per_core"] * node_cores * ray_nodes * ray_efficiency)
    projection = {
        "pile_docs": PILE_DOCS, "node_cores": node_cores, "ray_nodes": ray_nodes,
        "ray_efficiency": ray_efficiency,
        "link_core_hours": round(_hours(PILE_DOCS, link["per_s_per_core"]), 1),
        "node_link_hours": round(link_node_h, 2),
        "node_index_hours_single_process": round(index_h, 2),
        "node_count_hours_per_10k_qa": round(count_h * 10_000 / qa, 3),
        "node_total_hours": round(link_node_h + index_h + count_h, 2),
        "ray_link_hours": round(link_ray_h, 2),
        "ray_total_hours_embedded_index": round(link_ray_h + index_h + count_h, 2),
        "linked_gb": round(link["disk_bytes_per_doc"] * PILE_DOCS / 1e9, 1),
        "index_gb": round(index["disk_bytes_per_doc"] * PILE_DOCS / 1e9, 1),
        "index_counts_gb": round(sizes["index_counts"] / docs * PILE_DOCS / 1e9, 1),
        "corpus_zst_gb": round(sizes["corpus"] / docs * PILE_DOCS / 1e9, 1),
    }
    words_per_doc = inputs["corpus"]["text_bytes"] / docs
    return {"docs": docs, "shards": shards, "words": words, "doc_bytes": round(words_per_doc, 1),
            "entities": stages["kb"].get("entities"), "aliases": stages["kb"].get("aliases"), "qa": qa,
            "workers": workers, "cores": cores, "corpus_generate_s": inputs["corpus"].get("generate_s"),
            "corpus_bytes_per_doc": round(sizes["corpus"] / docs, 1), "kb_bytes": sizes["kb"],
            "stages": out_stages, "projection": projection}


def _print_table(r: dict[str, Any]) -> None:
    print(f"{r['docs']:,} documents of {r['words']} words ({r['doc_bytes']:,.0f} bytes of JSONL each; "
          f"{r['corpus_bytes_per_doc']:,.0f} compressed) in {r['shards']} shards; {r['entities']:,} entities, "
          f"{r['aliases']:,} names; {r['qa']:,} QA pairs; {r['workers']} linking workers on {r['cores']} cores")
    print(f"{'stage':10}{'items':>12}{'wall s':>10}{'CPU s':>10}{'items/s':>11}{'/s/core':>10}"
          f"{'peak MB':>9}{'worker MB':>10}{'disk B/doc':>11}")
    for name, s in r["stages"].items():
        per_doc = f"{s['disk_bytes_per_doc']:,.0f}" if "disk_bytes_per_doc" in s else "-"
        label = name + (" (reused)" if s.get("reused") else "")
        print(f"{label:10}{s['items']:>12,}{s['wall_s']:>10.1f}{s['cpu_s']:>10.1f}{s['per_s']:>11,.0f}"
              f"{s['per_s_per_core']:>10,.0f}{s['peak_rss_mb']:>9,.0f}{s['worker_peak_rss_mb']:>10,.0f}"
              f"{per_doc:>11}")
    c = r["stages"]["count"]
    print(f"counts: {c.get('counted', 0):,} of {r['qa']:,} QA pairs counted, {c.get('nonzero', 0):,} non-zero, "
          f"largest {c.get('max_count', 0):,}")
    p = r["projection"]
    print(f"The Pile ({p['pile_docs'] / 1e6:.0f}M documents): linking {p['link_core_hours']:,.0f} core-hours; "
          f"one {p['node_cores']}-core node: link {p['node_link_hours']:.1f} h + embedded index "
          f"{p['node_index_hours_single_process']:.1f} h (one process) + counts "
          f"{p['node_count_hours_per_10k_qa']:.2f} h per 10k QA pairs = {p['node_total_hours']:.1f} h")
    print(f"Ray cluster of {p['ray_nodes']} x {p['node_cores']} cores (linking scales out at efficiency "
          f"{p['ray_efficiency']}; the embedded index does not): link {p['ray_link_hours']:.2f} h, "
          f"total {p['ray_total_hours_embedded_index']:.1f} h; disk: corpus {p['corpus_zst_gb']:,.0f} GB "
          f"compressed, linked shards {p['linked_gb']:,.0f} GB, index {p['index_gb']:,.0f} GB (of which "
          f"{p['index_counts_gb']:,.0f} GB for counts; the rest is text and BM25 passages)")
