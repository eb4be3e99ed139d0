"""Commands of the `indexes` package: `index`, `count`, `docs`, `bench count`, `bench retrieve`.

Light at import time: handlers import the backends when they run.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from indexes import BACKENDS, load_aliases, open_phrase_index

logger = logging.getLogger(__name__)

_ES_HELP = ("Elasticsearch credentials come from the environment (ES_API_KEY, or ES_USERNAME and "
            "ES_PASSWORD; ES_CA_CERTS, ES_VERIFY_CERTS=false for TLS) or from a config file "
            "(--es-config or LTPROBE_ES_CONFIG: JSON/YAML with api_key, username, password, "
            "ca_certs, verify_certs), never from the command line.\n\n"
            "Faults: a refused or dropped connection, a timeout and a 429/502/503/504 answer are "
            "retried with exponential backoff; the same config file sets how: retries (attempts "
            "per request, default 6), retry_backoff (seconds before the first retry, doubled "
            "each time, default 0.5) and request_timeout (seconds per request, default 60), e.g. "
            "a file es.yaml holding `{retries: 10, retry_backoff: 1, request_timeout: 120}` "
            "and --es-config es.yaml.")


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
    p.add_argument("--corpus", required=True,
                   help="the corpus, as for `ltprobe link-corpus`: a file, folder or glob of .jsonl[.gz|.zst] "
                        "and .parquet, hf:NAME[:CONFIG], or an object-store URL")
    _add_fields(p)
    p.add_argument("--linked", help="linked-corpus folder written by `ltprobe link-corpus` "
                                    "(without it, documents have no entities: retrieval only)")
    p.add_argument("--out", help="index folder to write (required for the embedded backend)")
    p.add_argument("--passages", help="a separate retrieval collection (JSONL `id`, `text`, e.g. the "
                                      "world's encyclopedia.jsonl) to split into passages instead "
                                      "of the corpus")
    p.add_argument("--passage-words", type=int, default=100, help="words per passage (default 100)")
    p.add_argument("--counts-only", action="store_true",
                   help="embedded: keep only which documents hold which entities (for counting), no "
                        "text and no passages: about 200 bytes a document instead of 12 KB on a "
                        "Pile-like corpus; retrieval then needs a separate index (rag.index)")
    p.add_argument("--backend", choices=[*BACKENDS], default="embedded",
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
            "answer-only counts, as the original study's count_relevant_docs.py: salient answers "
            "are those with the most mentions (a_entity_votes; ties kept), a_count runs over every "
            "answer entity not in the question, and --stoplist removes entities from the question "
            "side. QA pairs without a linked question or answer entity get status "
            "no_q_entity / no_a_entity and count null.\n\nWith --phrases, count without linking: "
            "a document counts for an entity when it contains any of the entity's names from --kb "
            "as a phrase (one definition for every backend: lowercased Unicode words, "
            "indexes/_phrases.py). Works on an embedded index's stored text (--index DIR), on an "
            "Elasticsearch text index (--es-url/--es-index, match_phrase), and on an infini-gram "
            "suffix-array index (--infini-gram DIR, implies --phrases): document-level counts, "
            "exact up to a per-pair cost cap (--max-occurrences), beyond which the record says "
            "\"approx\": true; --max-diff-tokens N gives the engine's own window AND counts "
            "instead (\"mode\": \"window\").\n\n" + _ES_HELP))
    _add_index_source(p)
    p.add_argument("--qa-entities", required=True, help="qa_entities.jsonl from `ltprobe link-qa`")
    p.add_argument("--out", required=True, help="counts.jsonl to write")
    _add_stoplist(p)
    p.add_argument("--phrases", action="store_true",
                   help="count by alias phrases (match_phrase) instead of linked entities")
    p.add_argument("--kb", help="kb.jsonl whose name and aliases are the phrases (with --phrases)")
    p.add_argument("--text-field", default="text", help="text field of the index (with --phrases)")
    p.add_argument("--infini-gram", metavar="INDEX_DIR",
                   help="a local infini-gram index folder (prebuilt or `python -m infini_gram.indexing`)")
    p.add_argument("--tokenizer", default="bytes",
                   help="tokenizer of the infini-gram index: `bytes` for a byte-level (u8) index, or a "
                        "Hugging Face name/folder (e.g. meta-llama/Llama-2-7b-hf for the Pile index)")
    p.add_argument("--token-dtype", choices=["u8", "u16", "u32"],
                   help="token width of the infini-gram index (default: u8 for bytes, else u16/u32 by vocabulary)")
    p.add_argument("--max-occurrences", type=int, default=100_000,
                   help="per-entity cost cap: suffix-array hits checked for word boundaries (default 100,000)")
    p.add_argument("--max-check-docs", type=int, default=10_000,
                   help="documents of the rarer side scanned for a capped frequent side (default 10,000)")
    p.add_argument("--max-diff-tokens", type=int,
                   help="window mode: the engine's own AND count of phrases within N tokens (not documents)")
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
        "compare-counts", _compare_counts, help="compare two counts.jsonl of one QA set (e.g. linked vs phrases)",
        description=(
            "Compare two counts.jsonl files of the same QA set, typically linked-entity counts "
            "(A: `ltprobe count --index`) against alias-phrase counts (B: `--phrases` or "
            "`--infini-gram`): Spearman rank correlation over the pairs both count, a scatter plot "
            "of the log counts, and the questions where they disagree most. With --index (the "
            "linked index A was counted on) and --kb, each disagreement lists the documents only "
            "one side counts, with text excerpts (B's documents from --infini-gram DIR if given, "
            "else from the phrases of --kb in the --index's stored text). Writes report.md, "
            "report.html, scatter.png and summary.json into --out; the last line printed is JSON."))
    p.add_argument("a", metavar="A.jsonl", help="first counts.jsonl (e.g. linked-entity counts)")
    p.add_argument("b", metavar="B.jsonl", help="second counts.jsonl (e.g. phrase counts)")
    p.add_argument("--out", required=True, help="folder for the report")
    p.add_argument("--qa", help="qa.jsonl, to show each question's text")
    p.add_argument("--index", help="the index A was counted on (shows the documents behind each count)")
    p.add_argument("--kb", help="kb.jsonl whose names B's phrases are (with --index or --infini-gram)")
    p.add_argument("--infini-gram", metavar="INDEX_DIR", help="the infini-gram index B was counted on")
    p.add_argument("--tokenizer", default="bytes", help="tokenizer of the infini-gram index (default bytes)")
    p.add_argument("--label-a", help="name of A in the report (default: its file name)")
    p.add_argument("--label-b", help="name of B in the report (default: its file name)")
    p.add_argument("--top", type=int, default=20, help="disagreements to list (default 20)")

    p = commands.add(
        "docs", _docs, help="print the relevant documents of one QA pair (id and text excerpt)",
        description="The way back from a count to text: the documents that contain the QA "
                    "pair's counted (question entity, answer entity) pair, in corpus order.")
    p.add_argument("qa_id", metavar="QA_ID", help="id of the QA pair in --qa-entities")
    _add_index_source(p)
    p.add_argument("--qa-entities", required=True, help="qa_entities.jsonl from `ltprobe link-qa`")
    _add_stoplist(p)
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
    p.add_argument("--backend", choices=["embedded", "infini-gram"], default="embedded",
                   help="infini-gram: generate a text corpus with alias phrases, index it with "
                        "infini-gram (bytes) and time document-level phrase counts of QA pairs against "
                        "the engine's own window AND count (--docs, --qa, --entities, --seed, --dir apply)")
    p.add_argument("--max-occurrences", type=int, default=100_000,
                   help="infini-gram: per-entity cost cap (default 100,000)")
    p.add_argument("--max-diff-tokens", type=int, default=100,
                   help="infini-gram: window of the engine's AND count (default 100)")
    p.add_argument("--cpus", type=int, default=1, help="infini-gram: indexer processes (default 1)")
    p.add_argument("--mem-gb", type=int, default=4, help="infini-gram: indexer memory in GiB (default 4)")
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


def _add_fields(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-field", default=None,
                   help="field/column holding the text (default: as --linked was made, else text)")
    p.add_argument("--id-field", default=None,
                   help="field/column holding the document id (default: as --linked was made, else id)")
    p.add_argument("--split", default=None,
                   help="Hugging Face data set split (default: as --linked was made, else train)")


def _add_es(p: argparse.ArgumentParser) -> None:
    p.add_argument("--es-url", help="Elasticsearch URL, e.g. https://host:9200 (no credentials in it)")
    p.add_argument("--es-index", help="Elasticsearch index name")
    p.add_argument("--es-config", help="JSON/YAML config file with Elasticsearch credentials, TLS settings "
                                       "and the keys retries, retry_backoff, request_timeout (see above)")


def _add_stoplist(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stoplist", help="entity ids to leave out: a file (one id a line) or `countries`, "
                                      "the 184 countries the original study left out (DBpedia URIs "
                                      "and Wikidata ids, shipped with ltprobe)")
    p.add_argument("--stoplist-sides", choices=["question", "both"], default="question",
                   help="where the stop-list removes entities: question (the original study: a "
                        "question whose answer is a country keeps it; default) or both")


def _add_index_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", help="index folder from `ltprobe index` (either backend)")
    _add_es(p)


def _open(args: argparse.Namespace) -> Any:
    from indexes import open_index

    return open_index(args.index, es_url=args.es_url, es_index=args.es_index, es_config=args.es_config)


def _index(args: argparse.Namespace) -> int:
    from indexes import build_index

    info = build_index(args.corpus, args.linked, args.out, backend=args.backend,
                       passages=args.passages, passage_words=args.passage_words,
                       es_url=args.es_url, es_index=args.es_index, es_config=args.es_config,
                       es_shards=args.es_shards, es_replicas=args.es_replicas,
                       es_workers=args.es_workers, on_error=args.on_error,
                       executor=args.executor, workers=args.workers, text_field=args.text_field,
                       id_field=args.id_field, split=args.split, counts_only=args.counts_only)
    where = args.out or f"{info.get('url')} {info.get('index')}"
    logger.info(f"indexed {info['n_docs']} documents ({info['n_mentions']} entity mentions) and "
                f"{info['n_passages']} passages into {where}")
    if info.get("skipped_records"):
        logger.warning(f"skipped {info['skipped_records']} bad record(s)" +
                       (f": {info['skipped_summary']}" if info.get("skipped_summary") else ""))
    return 0


def _count(args: argparse.Namespace) -> int:
    from entity_linking.io import InputError
    from indexes import write_counts

    if args.infini_gram or args.phrases:
        if not args.kb:
            raise InputError("phrase counts (--phrases, --infini-gram) need --kb (names and aliases)")
        index: Any = open_phrase_index(
            load_aliases(args.kb), infini_gram=args.infini_gram, index=args.index, es_url=args.es_url,
            es_index=args.es_index, es_config=args.es_config, text_field=args.text_field,
            tokenizer=args.tokenizer, token_dtype=args.token_dtype, max_occurrences=args.max_occurrences,
            max_check_docs=args.max_check_docs, max_diff_tokens=args.max_diff_tokens)
    else:
        index = _open(args)
    if args.order or args.steps:
        return _count_by_step(args, index)
    try:
        summary = write_counts(index, args.qa_entities, args.out, stoplist=args.stoplist,
                               stoplist_sides=args.stoplist_sides, on_error=args.on_error)
    finally:
        index.close()
    logger.info(f"wrote {summary['n']} counts to {args.out}: {summary['ok']} ok, {summary['no_q_entity']} "
                f"without a question entity, {summary['no_a_entity']} without an answer entity")
    if summary["skipped"]:
        logger.warning(summary["skipped_summary"])
    return 0


def _count_by_step(args: argparse.Namespace, index: Any) -> int:
    from entity_linking.io import InputError
    from indexes import load_order, parse_steps, write_counts_by_step

    try:
        if not (args.order and args.steps):
            raise InputError("--order and --steps go together (counts before each step of a training order)")
        order = load_order(args.order, docs_per_step=args.docs_per_step)
        summary = write_counts_by_step(index, args.qa_entities, order, parse_steps(args.steps), args.out,
                                       stoplist=args.stoplist, on_error=args.on_error)
    finally:
        index.close()
    logger.info(f"wrote {summary['n']} counts by step ({order.steps} steps in the order) to {args.out}")
    if summary["skipped"]:
        logger.warning(summary["skipped_summary"])
    return 0


def _compare_counts(args: argparse.Namespace) -> int:
    from indexes import compare_counts

    index_a = _open(argparse.Namespace(index=args.index, es_url=None, es_index=None, es_config=None)) \
        if args.index else None
    index_b = None
    try:
        if args.kb and (args.infini_gram or args.index):
            index_b = open_phrase_index(load_aliases(args.kb), infini_gram=args.infini_gram,
                                        index=None if args.infini_gram else args.index,
                                        tokenizer=args.tokenizer)
        summary = compare_counts(args.a, args.b, args.out, label_a=args.label_a, label_b=args.label_b,
                                 qa=args.qa, index_a=index_a, index_b=index_b, top=args.top)
    finally:
        for index in (index_a, index_b):
            if index is not None:
                index.close()
    logger.info(f"{summary['n_both']} QA pairs counted by both, Spearman {summary['spearman']}; report in "
                f"{args.out}/report.html")
    print(json.dumps({k: v for k, v in summary.items() if k != "disagreements"}))
    return 0


def _docs(args: argparse.Namespace) -> int:
    from indexes import find_qa_record, relevant_docs

    record = find_qa_record(args.qa_entities, args.qa_id)
    with _open(args) as index:
        result = relevant_docs(index, record, limit=args.limit, stoplist=args.stoplist,
                               stoplist_sides=args.stoplist_sides)
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
    from probe.analysis import error_docs

    error = error_docs(args.errors, args.qa_id, index, setting=args.setting, limit=args.limit)
    docs = error.pop("docs")
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
    if args.backend == "infini-gram":
        from indexes.infinigram import bench_infinigram

        result = bench_infinigram(n_docs=args.docs, n_qa=args.qa, n_entities=args.entities,
                                  seed=args.seed, folder=args.dir, max_occurrences=args.max_occurrences,
                                  max_diff_tokens=args.max_diff_tokens, cpus=args.cpus, mem_gb=args.mem_gb)
        print(json.dumps(result))
        return 0
    from indexes import bench_count

    result = bench_count(n_docs=args.docs, n_qa=args.qa, n_entities=args.entities,
                         per_doc=args.per_doc, seed=args.seed, folder=args.dir,
                         compare_tantivy=args.compare_tantivy)
    print(json.dumps(result))
    return 0


def _bench_retrieve(args: argparse.Namespace) -> int:
    from indexes import bench_retrieve

    result = bench_retrieve(n_passages=args.passages, n_queries=args.queries,
                            n_reference=args.reference_passages, seed=args.seed, folder=args.dir)
    print(json.dumps(result))
    return 0
