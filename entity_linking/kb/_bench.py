"""`ltprobe bench kb`: a Wikidata-size knowledge base in today's format (`_kb.VERSION`) against
format 1, side by side.

Generates a knowledge base of `entities` entities and `aliases` aliases in the style of
`ltprobe bench link` (people, cities, organisations and countries; shared names, "Name,
Country" qualifiers, Unicode names, apostrophes; each entity's name and one alias, plus a
third name for as many entities as `aliases` asks: "Last, First", "City of X", "X Ltd",
"Republic of X"), writes it as `kb.jsonl`, and documents of about 200 words that mention its
entities. Then, each format in fresh processes:

- build: `kb.jsonl` -> folder (today's format: `KnowledgeBase.write`, streamed; format 1: the
  previous code, `entity_linking.kb._legacy`, which reads everything into memory), wall and
  CPU seconds and peak resident memory;
- load: open the folder and link one document (today's format includes importing numba and its
  cached kernels), wall seconds;
- one additional linking worker: forked after the load, as `link-corpus` forks its pool, it
  links `worker_docs` documents and collects garbage; its private memory from
  `/proc/PID/smaps_rollup` (Private_Dirty: pages it wrote; USS adds the clean private pages,
  which for a memory map are page cache another worker would share);
- linking speed: documents per CPU second (`link_ids`, what `link-corpus` runs), and every
  document's mentions, which must be identical between the formats.
"""

from __future__ import annotations

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

_WORKER = r"""
import gc, json, os, re, resource, sys, time
fmt, kb_dir, docs_path, out_path, worker_docs = sys.argv[1:6]
worker_docs = int(worker_docs)
texts = [json.loads(line)["text"] for line in open(docs_path, encoding="utf-8")]
started, cpu = time.perf_counter(), time.process_time()
if fmt == "new":
    from entity_linking.kb._kb import KnowledgeBase
else:
    from entity_linking.kb._legacy import KnowledgeBase
from entity_linking._linker import Linker
kb = KnowledgeBase.load(kb_dir)
kb.prepare()
linker = Linker(kb)
linker.link_ids(texts[0])
load_s, load_cpu = time.perf_counter() - started, time.process_time() - cpu

def rollup():
    fields = {}
    for line in open("/proc/self/smaps_rollup"):
        m = re.match(r"(\w+):\s+(\d+) kB", line)
        if m:
            fields[m.group(1)] = int(m.group(2))
    return fields

parent = rollup()
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # an additional linking worker
    os.close(read)
    for text in texts[:worker_docs]:
        linker.link_ids(text)
    gc.collect()
    f = rollup()
    os.write(write, json.dumps(f).encode())
    os._exit(0)
os.close(write)
chunks = []
while True:
    chunk = os.read(read, 65536)
    if not chunk:
        break
    chunks.append(chunk)
os.waitpid(pid, 0)
child = json.loads(b"".join(chunks))
cpu = time.process_time()
for text in texts:
    linker.link_ids(text)
link_cpu = time.process_time() - cpu
with open(out_path, "w", encoding="utf-8") as handle:
    for text in texts:
        handle.write(json.dumps([[m.start, m.end, m.kb_id, m.score] for m in linker.link(text)]) + "\n")
status = open("/proc/self/status").read()
print(json.dumps({
    "load_s": round(load_s, 3), "load_cpu_s": round(load_cpu, 3),
    "parent_rss_mb": round(parent.get("Rss", 0) / 1024, 1),
    "worker_private_mb": round(child.get("Private_Dirty", 0) / 1024, 1),
    "worker_uss_mb": round((child.get("Private_Dirty", 0) + child.get("Private_Clean", 0)) / 1024, 1),
    "worker_rss_mb": round(child.get("Rss", 0) / 1024, 1),
    "docs_per_s_per_core": round(len(texts) / link_cpu, 1),
    "peak_rss_mb": round(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024, 1),
}))
"""

_BUILD = r"""
import json, re, resource, sys, time
fmt, jsonl, out = sys.argv[1:4]
started, cpu = time.perf_counter(), time.process_time()
if fmt == "new":
    from entity_linking.kb import KnowledgeBase, jsonl_entities
    KnowledgeBase.write(jsonl_entities(jsonl), out, source=jsonl, progress=True)
else:
    from entity_linking.kb._legacy import KnowledgeBase
    KnowledgeBase.from_jsonl(jsonl).save(out)
status = open("/proc/self/status").read()
print(json.dumps({"build_s": round(time.perf_counter() - started, 2), "build_cpu_s": round(time.process_time() - cpu, 2),
                  "build_peak_rss_mb": round(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024, 1)}))
"""


def _run(code: str, *args: Any) -> dict[str, Any]:
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True,
                          env=env)
    if done.returncode != 0:
        raise RuntimeError(f"bench kb: a measuring process failed (exit {done.returncode}); see its error above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def generate_kb(entities: int, aliases: int, docs: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Knowledge-base records (`entities` entities, about `aliases` names in all) and documents."""
    from entity_linking._bench import generate

    records, documents = generate(2 * entities, docs, seed)
    extra = max(0, aliases - sum(1 + len(r["aliases"]) for r in records))
    rng = random.Random(seed + 1)
    order = list(range(len(records)))
    rng.shuffle(order)
    for k in order[:extra]:
        r = records[k]
        name = r["name"]
        if r["type"] == "person":
            first, _, last = name.partition(" ")
            third = f"{last}, {first}"
        elif r["type"] == "city":
            third = f"City of {name}"
        elif r["type"] == "organisation":
            third = f"{name} Ltd"
        else:
            third = f"Republic of {name}"
        r["aliases"].append(third)
    return records, documents


def bench_kb(entities: int = 2_000_000, aliases: int = 6_000_000, docs: int = 20000, worker_docs: int = 5000,
             seed: int = 0, baseline: bool = True, work_dir: str | None = None) -> dict[str, Any]:
    """Run the benchmark (see the module docstring); print a table to stderr, return the figures."""
    from entity_linking.kb._kb import VERSION

    log = logger.info
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ltprobe-bench-kb-")
        work_dir = tmp.name
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records, documents = generate_kb(entities, aliases, docs, seed)
    jsonl = work / "kb.jsonl"
    with open(jsonl, "w", encoding="utf-8") as handle:
        for r in records:
            handle.write(json.dumps(r, ensure_ascii=False) + "\n")
    n_entities = len(records)
    n_aliases = sum(1 + len(r["aliases"]) for r in records)
    del records
    docs_path = work / "docs.jsonl"
    with open(docs_path, "w", encoding="utf-8") as handle:
        for d in documents:
            handle.write(json.dumps({"id": d["id"], "text": d["text"]}, ensure_ascii=False) + "\n")
    words = sum(len(d["text"].split()) for d in documents) / max(1, len(documents))
    del documents
    log(f"generated {n_entities:,} entities, {n_aliases:,} aliases, {docs:,} documents of ~{words:.0f} words "
        f"in {time.perf_counter() - started:.0f}s")
    result: dict[str, Any] = {"entities": n_entities, "aliases": n_aliases, "docs": docs, "worker_docs": worker_docs}
    formats = ["new", "old"] if baseline else ["new"]
    figures = {}
    for fmt in formats:
        label = f"format {VERSION}" if fmt == "new" else "format 1 (baseline)"
        log(f"{label}: building ...")
        build = _run(_BUILD, fmt, jsonl, work / f"kb-{fmt}")
        log(f"{label}: built in {build['build_s']:.1f}s; loading, forking a worker, linking ...")
        link = _run(_WORKER, fmt, work / f"kb-{fmt}", docs_path, work / f"links-{fmt}.jsonl", worker_docs)
        figures[fmt] = {**build, **link}
        log(f"{label}: {figures[fmt]}")
    new = figures["new"]
    result.update(load_s=new["load_s"], worker_private_mb=new["worker_private_mb"], build_s=new["build_s"],
                  docs_per_s_per_core=new["docs_per_s_per_core"], worker_uss_mb=new["worker_uss_mb"],
                  build_cpu_s=new["build_cpu_s"], build_peak_rss_mb=new["build_peak_rss_mb"],
                  parent_rss_mb=new["parent_rss_mb"], kb_mb=round(_size(work / "kb-new") / 2**20, 1))
    if baseline:
        old = figures["old"]
        result["links_identical"] = (work / "links-new.jsonl").read_bytes() == (work / "links-old.jsonl").read_bytes()
        result.update(baseline_load_s=old["load_s"], baseline_worker_private_mb=old["worker_private_mb"],
                      baseline_build_s=old["build_s"], baseline_docs_per_s_per_core=old["docs_per_s_per_core"],
                      baseline_worker_uss_mb=old["worker_uss_mb"], baseline_build_cpu_s=old["build_cpu_s"],
                      baseline_build_peak_rss_mb=old["build_peak_rss_mb"], baseline_parent_rss_mb=old["parent_rss_mb"],
                      baseline_kb_mb=round(_size(work / "kb-old") / 2**20, 1))
    else:
        result["links_identical"] = None
    log("")
    log(f"{'':34s}{f'format {VERSION}':>12s}{'format 1':>12s}{'target':>12s}")
    rows = [("load (s)", "load_s", "<= 5"), ("worker private, Private_Dirty (MB)", "worker_private_mb", "<= 300"),
            ("worker USS (MB)", "worker_uss_mb", ""), ("build (s, wall)", "build_s", "<= 180"),
            ("build (s, CPU)", "build_cpu_s", ""), ("build peak RSS (MB)", "build_peak_rss_mb", ""),
            ("docs/s per core", "docs_per_s_per_core", ">= 10000"), ("loaded process RSS (MB)", "parent_rss_mb", "")]
    for name, key, target in rows:
        old_value = figures.get("old", {}).get(key, "")
        log(f"{name:34s}{new[key]:>12}{old_value:>12}{target:>12}")
    log(f"links identical: {result['links_identical']}")
    if tmp is not None:
        tmp.cleanup()
    return result


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
