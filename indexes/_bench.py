"""`ltprobe bench count` and `ltprobe bench retrieve`: the embedded index against baselines.

Both generate their data (seeded), print the toolkit's and the baseline's figures side by side
on stderr-free stdout lines, and return one dict that the command prints as the last line.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from entity_linking.io import InputError


def _zipf_probabilities(n: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return weights / weights.sum()


def _say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def generate_linked_docs(n_docs: int, n_entities: int, per_doc: float, seed: int
                         ) -> tuple[list[str], list[list[str]]]:
    """Pre-linked documents: entity counts per document ~ 1 + Poisson(per_doc - 1), entities
    drawn from a Zipf distribution (s = 1) over `n_entities` ids `E<rank>`."""
    rng = np.random.default_rng(seed)
    lengths = 1 + rng.poisson(max(per_doc - 1, 0), size=n_docs)
    draws = rng.choice(n_entities, size=int(lengths.sum()), p=_zipf_probabilities(n_entities, 1.0))
    names = [f"E{i}" for i in range(n_entities)]
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    draws_list = draws.tolist()
    doc_entities = [[names[j] for j in draws_list[bounds[i]:bounds[i + 1]]] for i in range(n_docs)]
    return [f"doc{i}" for i in range(n_docs)], doc_entities


def bench_count(*, n_docs: int = 1_000_000, n_qa: int = 10_000, n_entities: int | None = None,
                per_doc: float = 10.0, seed: int = 0, folder: str | None = None,
                compare_tantivy: bool = False) -> dict[str, Any]:
    """Count throughput of the embedded index vs per-entity sorted int32 arrays + numpy."""
    from indexes.embedded import EmbeddedIndex, EmbeddedWriter

    n_entities = n_entities or max(100, n_docs // 10)
    work = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="ltprobe-bench-count-"))
    try:
        doc_ids, doc_entities = generate_linked_docs(n_docs, n_entities, per_doc, seed)
        index_dir = work / "index"
        if index_dir.exists():
            shutil.rmtree(index_dir)
        started, cpu = time.perf_counter(), time.process_time()
        writer = EmbeddedWriter(index_dir, with_text=False)
        writer.add_many(doc_ids, doc_entities)
        info = writer.finish({"n_passages": 0})
        index_seconds = time.perf_counter() - started
        index_cpu = time.process_time() - cpu

        # QA pairs: half are two entities of one document (co-occurring, head-heavy), half a
        # uniformly drawn question entity with a Zipf-drawn answer entity (mostly 0 or small).
        rng = np.random.default_rng(seed + 1)
        pairs: list[tuple[str, str]] = []
        zipf = _zipf_probabilities(n_entities, 1.0)
        answers = rng.choice(n_entities, size=n_qa, p=zipf).tolist()
        questions = rng.integers(0, n_entities, size=n_qa).tolist()
        docs = rng.integers(0, n_docs, size=n_qa).tolist()
        for i in range(n_qa):
            ents = doc_entities[docs[i]]
            if i % 2 == 0 and len(set(ents)) > 1:
                a, b = rng.choice(len(ents), size=2, replace=False)
                pairs.append((ents[a], ents[b]))
            else:
                pairs.append((f"E{questions[i]}", f"E{answers[i]}"))
        del doc_entities

        started = time.perf_counter()
        index = EmbeddedIndex(index_dir)
        open_ms = (time.perf_counter() - started) * 1000
        started, cpu = time.perf_counter(), time.process_time()
        counts = []
        for start in range(0, len(pairs), 1000):
            counts.extend(index.count_cooccurrence(pairs[start:start + 1000]))
        count_seconds = time.perf_counter() - started
        count_cpu = time.process_time() - cpu
        counts_bytes = index.disk_bytes("counts")
        postings_bytes = (index_dir / "postings.bin").stat().st_size

        # Baseline: the original method, per-entity sorted int32 document arrays (built from
        # the same postings, not timed) intersected with numpy.
        arrays = _sorted_arrays(index, n_entities)
        number = {f"E{i}": i for i in range(n_entities)}
        started, cpu = time.perf_counter(), time.process_time()
        baseline = []
        for a, b in pairs:
            x, y = arrays[number[a]], arrays[number[b]]
            baseline.append(int(np.intersect1d(x, y, assume_unique=True).size) if a != b else int(x.size))
        baseline_seconds = time.perf_counter() - started
        baseline_cpu = time.process_time() - cpu
        started = time.perf_counter()
        for a, b in pairs:  # the faster numpy variant: binary search of the smaller array
            x, y = arrays[number[a]], arrays[number[b]]
            if x.size > y.size:
                x, y = y, x
            if y.size:
                pos = np.searchsorted(y, x)
                int(np.count_nonzero(y[np.minimum(pos, y.size - 1)] == x))
        searchsorted_seconds = time.perf_counter() - started
        index.close()

        tantivy = _tantivy_counts(work, doc_ids, n_docs, n_entities, per_doc, seed, pairs) if compare_tantivy else None
        result = {
            "n_docs": n_docs, "n_entities": n_entities, "n_qa": n_qa,
            "n_mentions": info["n_mentions"],
            "counts_per_s": round(len(pairs) / count_seconds, 1),
            "baseline_counts_per_s": round(len(pairs) / baseline_seconds, 1),
            "ratio": round(baseline_seconds / count_seconds, 2),
            "baseline_searchsorted_counts_per_s": round(len(pairs) / searchsorted_seconds, 1),
            "index_docs_per_s": round(n_docs / index_seconds, 1),
            "bytes_per_mention": round(counts_bytes / max(1, info["n_mentions"]), 3),
            "postings_bytes_per_mention": round(postings_bytes / max(1, info["n_mentions"]), 3),
            "baseline_bytes_per_mention": 4.0,
            "open_ms": round(open_ms, 3),
            "counts_agree": counts == baseline,
            # CPU-time rates: what one unloaded core gives (the wall-clock figures above are
            # from a machine that may be shared; counting and baseline are single-threaded).
            "cpu_counts_per_s": round(len(pairs) / max(count_cpu, 1e-9), 1),
            "cpu_baseline_counts_per_s": round(len(pairs) / max(baseline_cpu, 1e-9), 1),
            "cpu_index_docs_per_s": round(n_docs / max(index_cpu, 1e-9), 1),
        }
        if tantivy is not None:
            result["tantivy_counts_per_s"] = tantivy
        _say(f"{'':32}{'embedded index':>18}{'numpy baseline':>18}",
             f"{'counts per second':32}{result['counts_per_s']:>18,.0f}{result['baseline_counts_per_s']:>18,.0f}",
             f"{'  (numpy searchsorted variant)':32}{'':>18}{result['baseline_searchsorted_counts_per_s']:>18,.0f}",
             f"{'bytes per mention (all files)':32}{result['bytes_per_mention']:>18.2f}{4.0:>18.2f}",
             f"{'  of which document sets':32}{result['postings_bytes_per_mention']:>18.2f}{4.0:>18.2f}",
             f"{'index docs per second':32}{result['index_docs_per_s']:>18,.0f}{'':>18}",
             f"{'open (ms)':32}{result['open_ms']:>18.2f}{'':>18}",
             f"{'counts per CPU second':32}{result['cpu_counts_per_s']:>18,.0f}{result['cpu_baseline_counts_per_s']:>18,.0f}",
             f"{'index docs per CPU second':32}{result['cpu_index_docs_per_s']:>18,.0f}{'':>18}",
             f"counts agree: {result['counts_agree']}; {n_docs:,} docs, {info['n_mentions']:,} "
             f"mentions, {n_entities:,} entities, {n_qa:,} QA pairs")
        if tantivy is not None:
            _say(f"{'tantivy entity-field counts/s':32}{tantivy:>18,.0f}")
        return result
    finally:
        if not folder:
            shutil.rmtree(work, ignore_errors=True)


def _sorted_arrays(index: Any, n_entities: int) -> list[np.ndarray]:
    numbers = index.entity_numbers([f"E{i}" for i in range(n_entities)])
    arrays = []
    for e in numbers:
        if e is None:
            arrays.append(np.empty(0, dtype=np.int32))
        else:
            arrays.append(np.asarray(index._bitmap(e).to_array(), dtype=np.int32))
    index._cache.clear()
    return arrays


def _tantivy_counts(work: Path, doc_ids: list[str], n_docs: int, n_entities: int, per_doc: float,
                    seed: int, pairs: list[tuple[str, str]]) -> float:
    """Counts per second of the alternative: a tantivy index with a raw `entities` field."""
    try:
        import tantivy
    except ImportError:
        raise InputError("--compare-tantivy needs the tantivy package (`pip install tantivy`, or "
                         "ltprobe's test extra)") from None

    _, doc_entities = generate_linked_docs(n_docs, n_entities, per_doc, seed)
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("entities", tokenizer_name="raw", index_option="basic")
    schema = builder.build()
    folder = work / "tantivy-entities"
    folder.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(schema, path=str(folder))
    writer = index.writer(256_000_000)
    for entities in doc_entities:
        writer.add_document(tantivy.Document(entities=list(dict.fromkeys(entities))))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    searcher = index.searcher()
    started = time.perf_counter()
    for a, b in pairs:
        q = tantivy.Query.boolean_query([(tantivy.Occur.Must, tantivy.Query.term_query(schema, "entities", a)),
                                         (tantivy.Occur.Must, tantivy.Query.term_query(schema, "entities", b))])
        searcher.search(q, 1).count
    return round(len(pairs) / (time.perf_counter() - started), 1)


# -- retrieval ------------------------------------------------------------------------------

_STOP = ["the", "of", "and", "in", "to", "a", "is", "was", "for", "on", "as", "with", "by", "at"]
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "da", "gu", "zen", "bra",
              "tor", "wel", "in", "ost", "mar", "qui", "el"]


def generate_passages(n: int, seed: int, *, words: int = 100, vocab: int = 50_000
                      ) -> tuple[list[str], list[str]]:
    """Passages of `words` words from a Zipf (s = 1.05) vocabulary of made-up words plus
    English stop words, and the vocabulary."""
    rng = np.random.default_rng(seed)
    base = len(_SYLLABLES)
    made_up = []
    for i in range(base * base, base * base + vocab - len(_STOP)):  # distinct: 3+ syllables
        parts = []
        while i:
            i, digit = divmod(i, base)
            parts.append(_SYLLABLES[digit])
        made_up.append("".join(parts))
    made_up = [made_up[i] for i in rng.permutation(len(made_up))]  # frequency rank unrelated to spelling
    # Stop words take the top ranks, as in English text.
    lexicon = np.array(_STOP + made_up, dtype=object)
    p = _zipf_probabilities(len(lexicon), 1.05)
    passages = []
    chunk = 20_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        draws = rng.choice(len(lexicon), size=(m, words), p=p)
        passages.extend(" ".join(row) for row in lexicon[draws].tolist())
    return passages, list(lexicon)


def make_queries(passages: list[str], n: int, seed: int, *, limit: int | None = None) -> list[str]:
    """Questions made from 5 words of a random passage (among the first `limit`) plus stop words."""
    rng = np.random.default_rng(seed + 7)
    pool = len(passages) if limit is None else min(limit, len(passages))
    queries = []
    for i in rng.integers(0, pool, size=n).tolist():
        words = [w for w in passages[i].split() if w not in _STOP]
        picked = [words[j] for j in rng.choice(len(words), size=min(5, len(words)), replace=False)]
        queries.append(f"what is the {' '.join(picked[:2])} of {' '.join(picked[2:])}?")
    return queries


def _index_passages(folder: Path, passages: list[str]) -> float:
    from indexes.embedded import PassageWriter

    started = time.perf_counter()
    writer = PassageWriter(folder)
    for i, text in enumerate(passages):
        writer.add_passage(f"p{i}", f"p{i}#0", text)
    writer.commit()
    return time.perf_counter() - started


def bench_retrieve(*, n_passages: int = 1_000_000, n_queries: int = 1000, n_reference: int = 100_000,
                   seed: int = 0, folder: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """Top-10 BM25 throughput on the embedded index, and top-10 overlap with `bm25s`
    (Lucene's BM25, k1 = 1.2, b = 0.75) on a subset, both fed `indexes._text.tokenize`.

    `threads`: search threads (default: the CPUs, at most 8, as `EmbeddedIndex.search_many`).
    """
    import bm25s

    from indexes._text import query_terms, tokenize
    from indexes.embedded import PassageSearcher

    work = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="ltprobe-bench-retrieve-"))
    try:
        passages, _ = generate_passages(n_passages, seed)
        queries = make_queries(passages, n_queries, seed)
        full = work / "passages"
        if full.exists():
            shutil.rmtree(full)
        index_seconds = _index_passages(full, passages)
        searcher = PassageSearcher(full, threads=threads)
        searcher.search_many(queries[:10], 10)  # warm the file cache
        started, cpu = time.perf_counter(), time.process_time()
        searcher.search_many(queries, 10)
        query_seconds = time.perf_counter() - started
        query_cpu = time.process_time() - cpu  # all threads' CPU time
        threads = searcher.threads
        searcher.close()

        # Agreement with the reference on a subset: the same passages in both, same tokens.
        n_ref = min(n_reference, n_passages)
        subset = passages[:n_ref]
        ref_queries = make_queries(subset, n_queries, seed + 1)
        sub_dir = work / "subset"
        if sub_dir.exists():
            shutil.rmtree(sub_dir)
        _index_passages(sub_dir, subset)
        sub_searcher = PassageSearcher(sub_dir)
        ours = sub_searcher.search_many(ref_queries, 10)
        sub_searcher.close()
        del passages
        corpus_tokens = [tokenize(t) for t in subset]
        retriever = bm25s.BM25(k1=1.2, b=0.75, method="lucene")
        retriever.index(corpus_tokens, show_progress=False)
        vocab = retriever.vocab_dict
        query_tokens = [[t for t in query_terms(q) if t in vocab] or [""] for q in ref_queries]
        started = time.perf_counter()
        ids, scores = retriever.retrieve(query_tokens, k=10, show_progress=False, n_threads=1)
        reference_seconds = time.perf_counter() - started
        overlaps = []
        for mine, theirs, their_scores in zip(ours, ids.tolist(), scores.tolist()):
            wanted = {f"p{j}" for j, s in zip(theirs, their_scores) if s > 0}
            got = {p.doc_id for p in mine}
            overlaps.append(len(wanted & got) / max(1, len(wanted)) if wanted or got else 1.0)
        result = {
            "n_passages": n_passages, "n_queries": n_queries, "n_reference_passages": n_ref,
            "queries_per_s": round(n_queries / query_seconds, 1),
            "reference_queries_per_s_on_subset": round(len(ref_queries) / reference_seconds, 1),
            "top10_overlap_vs_reference": round(float(np.mean(overlaps)), 4),
            "index_passages_per_s": round(n_passages / index_seconds, 1),
            "cpu_queries_per_s": round(n_queries / max(query_cpu, 1e-9), 1),
            "search_threads": threads,
        }
        _say(f"{'':34}{'embedded':>20}{'bm25s reference':>18}",
             f"{'top-10 queries per second':34}{result['queries_per_s']:>20,.0f}{'':>18}",
             f"{'  on the ' + format(n_ref, ',') + '-passage subset':34}{'':>20}"
             f"{result['reference_queries_per_s_on_subset']:>18,.0f}",
             f"{'top-10 queries per CPU second':34}{result['cpu_queries_per_s']:>20,.0f}{'':>18}",
             f"{'top-10 overlap with the reference':34}{result['top10_overlap_vs_reference']:>20.3f}{'1.000':>18}",
             f"{'passages indexed per second':34}{result['index_passages_per_s']:>20,.0f}{'':>18}",
             f"{n_passages:,} passages of 100 words, {n_queries:,} queries on {threads} threads")
        return result
    finally:
        if not folder:
            shutil.rmtree(work, ignore_errors=True)
