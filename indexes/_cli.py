"""Commands of the `indexes` package: `index`, `count`, `docs`, `bench count`, `bench retrieve`.

Light at import time: handlers import the backends when they run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

_ES_HELP = ("Elasticsearch credentials come from the environment (ES_API_KEY, or ES_USERNAME and "
            "ES_PASSWORD; ES_CA_CERTS, ES_VERIFY_CERTS=false for TLS) or from a config file "
            "(--es-config or LTPROBE_ES_CONFIG: JSON/YAML with api_key, username, password, "
            "ca_certs, verify_certs), never from the command line.")


def register(commands: Any) -> None:
    from probe.cli import add_on_error

    p = commands.add(
        "index", _index, help="build a document index from a linked corpus (counts and BM25 passages)",
        description=(
            "Index a linked corpus: which documents contain which entities (for relevant-document "
            "counts), the document text (for `ltprobe docs`), and passages of about 100 words "
            "(for BM25 retrieval).\n\nThe embedded backend (default) writes a folder that opens "
            "in milliseconds with no server; --backend elasticsearch writes to a cluster "
            "(documents into --es-index, passages into <es-index>-passages) and, with --out, an "
            "index.json that points to it.\n\n" + _ES_HELP))
    p.add_argument("--corpus", required=True, help="corpus JSONL (`id`, `text`), also .jsonl.gz/.zst")
    p.add_argument("--linked", help="linked-corpus folder written by `ltprobe link-corpus` "
                                    "(without it, documents have no entities: retrieval only)")
    p.add_argument("--out", help="index folder to write (required for the embedded backend)")
    p.add_argument("--passages", help="a separate retrieval collection (JSONL `id`, `text`, e.g. the "
                                      "world's encyclopedia.jsonl) to split into passages instead "
                                      "of the corpus")
    p.add_argument("--passage-words", type=int, default=100, help="words per passage (default 100)")
    p.add_argument("--backend", choices=["embedded", "elasticsearch"], default="embedded",
                   help="where the index lives (default embedded)")
    _add_es(p)
    p.add_argument("--es-shards", type=int, default=1, help="primary shards of a new index (default 1)")
    p.add_argument("--es-replicas", type=int, default=0, help="replicas of a new index (default 0)")
    p.add_argument("--es-workers", type=int, default=2,
                   help="parallel bulk streams per process (default 2)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="ray: bulk-load into Elasticsearch from Ray workers, so that throughput grows "
                        "with workers and the cluster's shards (RAY_ADDRESS names a cluster; "
                        "default local: this process)")
    p.add_argument("--workers", type=int, default=None,
                   help="Ray workers with --executor ray (default: one per core)")
    add_on_error(p)

    p = commands.add(
        "count", _count, help="relevant-document counts of QA pairs (counts.jsonl)",
        description=(
            "Count, for each QA pair, the documents that contain both a question entity and a "
            "salient answer entity (the maximum over entity pairs), plus the question-only and "
            "answer-only counts. QA pairs without a linked question or answer entity get status "
            "no_q_entity / no_a_entity and count null.\n\nWith --phrases (Elasticsearch only), "
            "count on an existing text index without linking: a document counts for an entity "
            "when it contains any of the entity's names from --kb as a phrase.\n\n" + _ES_HELP))
    _add_index_source(p)
    p.add_argument("--qa-entities", required=True, help="qa_entities.jsonl from `ltprobe link-qa`")
    p.add_argument("--out", required=True, help="counts.jsonl to write")
    p.add_argument("--stoplist", help="file of entity ids to ignore, one a line (e.g. the 184 "
                                      "countries the original study left out)")
    p.add_argument("--phrases", action="store_true",
                   help="count by alias phrases (match_phrase) instead of linked entities")
    p.add_argument("--kb", help="kb.jsonl whose name and aliases are the phrases (with --phrases)")
    p.add_argument("--text-field", default="text", help="text field of the index (with --phrases)")
    p.add_argument("--order", help="a training order: the train_order.npz `ltprobe train` writes into its "
                                   "model folder (or the folder), or a .npy of document numbers by position "
                                   "(with --docs-per-step); --out then gets, per QA pair, the relevant "
                                   "documents seen before each of --steps: {id, status, pair, count, steps, "
                                   "seen, exposures}")
    p.add_argument("--steps", help="with --order: steps S1,S2,... (documents trained on in steps 0..S-1 count)")
    p.add_argument("--docs-per-step", type=int,
                   help="with a .npy --order: documents (or fixed-length instances) per optimizer step")
    add_on_error(p)

    p = commands.add(
        "docs", _docs, help="print the relevant documents of one QA pair (id and text excerpt)",
        description="The way back from a count to text: the documents that contain the QA "
                    "pair's counted (question entity, answer entity) pair, in corpus order.")
    p.add_argument("qa_id", metavar="QA_ID", help="id of the QA pair in --qa-entities")
    _add_index_source(p)
    p.add_argument("--qa-entities", required=True, help="qa_entities.jsonl from `ltprobe link-qa`")
    p.add_argument("--stoplist", help="file of entity ids to ignore (as for `ltprobe count`)")
    p.add_argument("--limit", type=int, default=10, help="at most this many documents (default 10)")
    p.add_argument("--chars", type=int, default=300, help="characters of text per document (default 300)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--errors", metavar="ERRORS.jsonl",
                   help="errors.jsonl of `ltprobe attribute`: show the documents behind the QA pair's wrong "
                        "answer instead (those holding the question entity and the predicted entity)")
    p.add_argument("--setting", default="closed_book", help="with --errors: which setting's answer (closed_book)")

    p = commands.add_bench(
        "count", _bench_count, help="count throughput of the embedded index vs numpy sorted arrays",
        description=(
            "Generate pre-linked documents with Zipf-distributed entities, index them with the "
            "embedded backend, and count co-occurrences for QA pairs with the index and with "
            "the original method (per-entity sorted int32 arrays intersected with numpy). "
            "Prints both side by side; the last line is one JSON object."))
    p.add_argument("--docs", type=int, default=1_000_000, help="documents to generate (default 1,000,000)")
    p.add_argument("--qa", type=int, default=10_000, help="QA pairs to count (default 10,000)")
    p.add_argument("--entities", type=int, default=None,
                   help="entity vocabulary size (default docs/10, at least 100)")
    p.add_argument("--per-doc", type=float, default=10.0, help="mean distinct entities per document (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", help="folder for the generated index (default: a temporary folder, removed)")
    p.add_argument("--compare-tantivy", action="store_true",
                   help="also time the alternative design: a tantivy index with an entities keyword field "
                        "(needs the tantivy package, in ltprobe's test extra)")

    p = commands.add_bench(
        "retrieve", _bench_retrieve, help="BM25 query throughput and agreement with bm25s",
        description=(
            "Generate passages, index them with the embedded backend, time top-10 BM25 queries, "
            "and compare the top 10 with the `bm25s` reference (same tokens, k1=1.2, b=0.75) on a "
            "subset. Prints both side by side; the last line is one JSON object."))
    p.add_argument("--passages", type=int, default=1_000_000, help="passages to generate (default 1,000,000)")
    p.add_argument("--queries", type=int, default=1000, help="queries (default 1,000)")
    p.add_argument("--reference-passages", type=int, default=100_000,
                   help="passages in the subset compared with bm25s (default 100,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dir", help="folder for the generated index (default: a temporary folder, removed)")


def _add_es(p: argparse.ArgumentParser) -> None:
    p.add_argument("--es-url", help="Elasticsearch URL, e.g. https://host:9200 (no credentials in it)")
    p.add_argument("--es-index", help="Elasticsearch index name")
    p.add_argument("--es-config", help="config file with Elasticsearch credentials and TLS settings")


def _add_index_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", help="index folder from `ltprobe index` (either backend)")
    _add_es(p)


def _open(args: argparse.Namespace) -> Any:
    from indexes._base import open_index

    return open_index(args.index, es_url=args.es_url, es_index=args.es_index, es_config=args.es_config)


def _index(args: argparse.Namespace) -> int:
    from indexes._base import build_index

    info = build_index(args.corpus, args.linked, args.out, backend=args.backend,
                       passages=args.passages, passage_words=args.passage_words,
                       es_url=args.es_url, es_index=args.es_index, es_config=args.es_config,
                       es_shards=args.es_shards, es_replicas=args.es_replicas,
                       es_workers=args.es_workers, on_error=args.on_error,
                       executor=args.executor, workers=args.workers)
    where = args.out or f"{info.get('url')} {info.get('index')}"
    print(f"indexed {info['n_docs']} documents ({info['n_mentions']} entity mentions) and "
          f"{info['n_passages']} passages into {where}", file=sys.stderr)
    if info.get("skipped_records"):
        print(f"skipped {info['skipped_records']} bad record(s)" +
              (f": {info['skipped_summary']}" if info.get("skipped_summary") else ""), file=sys.stderr)
    return 0


def _count(args: argparse.Namespace) -> int:
    from entity_linking.io import InputError
    from indexes._counts import write_counts

    if args.phrases:
        from indexes._elastic import ElasticsearchIndex, PhraseCounts

        if not (args.es_url and args.es_index and args.kb):
            raise InputError("--phrases needs --es-url, --es-index and --kb")
        index: Any = PhraseCounts(ElasticsearchIndex.open(args.es_url, args.es_index, config=args.es_config,
                                                          require_ltprobe=False),
                                  load_aliases(args.kb), field=args.text_field)
    else:
        index = _open(args)
    if args.order or args.steps:
        return _count_by_step(args, index)
    try:
        summary = write_counts(index, args.qa_entities, args.out, stoplist=args.stoplist,
                               on_error=args.on_error)
    finally:
        index.close()
    print(f"wrote {summary['n']} counts to {args.out}: {summary['ok']} ok, {summary['no_q_entity']} "
          f"without a question entity, {summary['no_a_entity']} without an answer entity",
          file=sys.stderr)
    if summary["skipped"]:
        print(summary["skipped_summary"], file=sys.stderr)
    return 0


def _count_by_step(args: argparse.Namespace, index: Any) -> int:
    from entity_linking.io import InputError
    from indexes._order import load_order, parse_steps, write_counts_by_step

    try:
        if not (args.order and args.steps):
            raise InputError("--order and --steps go together (counts before each step of a training order)")
        order = load_order(args.order, docs_per_step=args.docs_per_step)
        summary = write_counts_by_step(index, args.qa_entities, order, parse_steps(args.steps), args.out,
                                       stoplist=args.stoplist, on_error=args.on_error)
    finally:
        index.close()
    print(f"wrote {summary['n']} counts by step ({order.steps} steps in the order) to {args.out}", file=sys.stderr)
    if summary["skipped"]:
        print(summary["skipped_summary"], file=sys.stderr)
    return 0


def load_aliases(kb: str) -> dict[str, list[str]]:
    """Entity id -> [name, *aliases] from a kb.jsonl."""
    from entity_linking.io import read_records

    aliases: dict[str, list[str]] = {}
    for _, record in read_records(kb, required={"id": str}):
        names = [record.get("name")] + list(record.get("aliases") or [])
        aliases[record["id"]] = list(dict.fromkeys(n for n in names if isinstance(n, str) and n))
    return aliases


def _docs(args: argparse.Namespace) -> int:
    from indexes._counts import find_qa_record, relevant_docs

    record = find_qa_record(args.qa_entities, args.qa_id)
    with _open(args) as index:
        result = relevant_docs(index, record, limit=args.limit, stoplist=args.stoplist)
        if args.errors:
            return _error_docs(args, index, result)
    if args.json:
        for doc in result["docs"]:
            doc["text"] = (doc["text"] or "")[:args.chars]
        print(json.dumps(result, ensure_ascii=False))
        return 0
    if result["status"] != "ok":
        print(f"QA pair {result['id']}: {result['status']} (no documents to show)")
        return 0
    q, a = result["pair"]
    print(f"QA pair {result['id']}: {result['count']} documents contain both {q} and {a}"
          + (f"; the first {len(result['docs'])}:" if result["docs"] else ""))
    for doc in result["docs"]:
        text = " ".join((doc["text"] or "(no text stored)").split())
        excerpt = text if len(text) <= args.chars else text[:args.chars].rstrip() + " ..."
        print(f"\n[{doc['id']}]\n{excerpt}")
    return 0


def _error_docs(args: argparse.Namespace, index: Any, gold: dict) -> int:
    """`ltprobe docs QA_ID --errors FILE`: the documents behind a wrong answer, beside the gold count."""
    from entity_linking.io import InputError, read_records

    error = next((r for _, r in read_records(args.errors) if str(r["id"]) == str(args.qa_id)
                  and r.get("setting") == args.setting), None)
    if error is None:
        raise InputError(f"{args.errors}: no wrong {args.setting} answer to QA pair {args.qa_id!r}")
    docs = []
    if error.get("pred_pair"):
        docs = [{"id": d, "text": index.get_text(d)} for d in index.docs_with(error["pred_pair"], limit=args.limit)]
    if args.json:
        for doc in docs:
            doc["text"] = (doc["text"] or "")[:args.chars]
        print(json.dumps({**error, "gold_pair": gold["pair"], "docs": docs}, ensure_ascii=False))
        return 0
    print(f"QA pair {args.qa_id} ({args.setting}): answered {error['completion']!r} ({error['status']})")
    if not error.get("pred_pair"):
        print("no predicted entity to show documents for")
        return 0
    q, a = error["pred_pair"]
    print(f"{error['pred_count']} documents contain both {q} and the predicted {a} (the gold answer: "
          f"{error['gold_count']}{'; the predicted answer is more frequent' if error['more_frequent'] else ''})"
          + (f"; the first {len(docs)}:" if docs else ""))
    for doc in docs:
        text = " ".join((doc["text"] or "(no text stored)").split())
        print(f"\n[{doc['id']}]\n" + (text if len(text) <= args.chars else text[:args.chars].rstrip() + " ..."))
    return 0


def _bench_count(args: argparse.Namespace) -> int:
    from indexes._bench import bench_count

    result = bench_count(n_docs=args.docs, n_qa=args.qa, n_entities=args.entities,
                         per_doc=args.per_doc, seed=args.seed, folder=args.dir,
                         compare_tantivy=args.compare_tantivy)
    print(json.dumps(result))
    return 0


def _bench_retrieve(args: argparse.Namespace) -> int:
    from indexes._bench import bench_retrieve

    result = bench_retrieve(n_passages=args.passages, n_queries=args.queries,
                            n_reference=args.reference_passages, seed=args.seed, folder=args.dir)
    print(json.dumps(result))
    return 0
