"""Commands of the entity_linking package: `kb build`, `kb info`, `link-qa`, `link-corpus`,
`bench link`. Nothing heavy is imported here; each handler imports what it needs."""

from __future__ import annotations

import argparse
import json
import logging
import sys

logger = logging.getLogger(__name__)


def register(commands) -> None:
    from entity_linking.kb import SOURCES
    from probe.cli import add_on_error

    kb = commands.add(
        "kb", _kb_help, "build or inspect a knowledge base (entities and aliases)",
        description="Knowledge bases for linking. `ltprobe kb build` turns an entity table into a "
                    "folder that loads in seconds and is shared by worker processes; `ltprobe kb "
                    "info` prints its size and ambiguity.")
    sub = kb.add_subparsers(dest="kb_command", metavar="ACTION")
    build = sub.add_parser(
        "build", help="build a knowledge-base folder from kb.jsonl, a TSV/CSV alias table, PopQA rows "
                      "or a Wikidata JSON dump",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build a knowledge base folder.\n\n"
                    "Inputs (--from, default: guessed from the file):\n"
                    "  jsonl     the contract's kb.jsonl: {id, name, aliases, prior, type, description}\n"
                    "  table     a TSV/CSV with a header; map columns with --columns, e.g.\n"
                    "            --columns id=qid,name=label,aliases=alt_names,prior=views\n"
                    "            (an 'alias' column gives one alias per row; rows repeating an id merge)\n"
                    "  popqa     PopQA-style rows (s_uri, subj, s_aliases, s_pop, o_uri, obj, ...)\n"
                    "  wikidata  a Wikidata JSON dump (.json, .json.gz, .json.bz2), streamed\n\n"
                    "Example: ltprobe kb build --from wikidata latest-all.json.gz --min-sitelinks 5 "
                    "--out kb/")
    build.add_argument("input", help="the entity file")
    build.add_argument("--out", required=True, help="folder to write the knowledge base to")
    build.add_argument("--from", dest="source", choices=["auto", *SOURCES],
                       default="auto", help="input kind (default: guessed from name and header)")
    build.add_argument("--columns", default="", help="table column mapping FIELD=COLUMN,... (fields: id, "
                       "name, aliases, alias, prior, type, description)")
    build.add_argument("--delimiter", default=None, help="table delimiter (default: tab for .tsv, comma otherwise)")
    build.add_argument("--alias-separator", default="|", help="separator inside a table's aliases cell "
                       "(default |; a JSON list also works)")
    build.add_argument("--language", default="en", help="Wikidata label language (default en)")
    build.add_argument("--limit", type=int, default=None, help="Wikidata: stop after this many entities")
    build.add_argument("--min-sitelinks", type=int, default=0, help="Wikidata: leave out entities with fewer sitelinks")
    add_on_error(build)
    build.set_defaults(handler=_kb_build)
    info = sub.add_parser("info", help="print a knowledge base's size and ambiguity as JSON",
                          description="Print entities, aliases, alias keys and ambiguous keys of a "
                                      "knowledge base (a saved folder or a kb.jsonl) as JSON.")
    info.add_argument("kb", help="a folder written by `ltprobe kb build`, or a kb.jsonl")
    info.set_defaults(handler=_kb_info)

    qa = commands.add(
        "link-qa", _link_qa, "link QA pairs: question entities and salient answer entities",
        description="Link the question entities (from the question alone) and the salient answer "
                    "entities (answer aliases linked with the question as context; entities of the "
                    "question dropped; the entity linked in the most aliases, ties kept) of each QA "
                    "pair. Writes qa_entities.jsonl: {id, q_entities, a_entities, a_entity_votes, "
                    "q_mentions}.")
    qa.add_argument("--qa", required=True, help="QA pairs: {id, question, answers: [..]} per line (.jsonl[.gz])")
    qa.add_argument("--kb", required=True, help="knowledge base: a kb.jsonl or a folder from `ltprobe kb build`")
    qa.add_argument("--out", required=True, help="qa_entities.jsonl to write")
    _linker_options(qa)
    add_on_error(qa)

    corpus = commands.add(
        "link-corpus", _link_corpus, "link every document of a corpus into shards of entity ids",
        description="Link a corpus: a file, a folder (recursively, in sorted order) or a glob of .jsonl "
                    "(.gz/.zst) and .parquet files, a saved Hugging Face dataset folder, hf:NAME[:CONFIG] for "
                    "a Hugging Face dataset streamed from the hub, or an object-store URL (s3://, gs://, "
                    "file://; through fsspec). Writes LINKED_DIR/shard-NNNNN.jsonl ({id, entities} per "
                    "document, corpus order), a manifest per shard and manifest.json. Document ids: the "
                    "record's id field, else FILE:LINE (FILE relative to the folder or glob), the same in "
                    "`ltprobe index`. A re-run with the same arguments resumes after the last complete "
                    "shard.\n\n"
                    "Example: ltprobe link-corpus --corpus hf:allenai/c4:en --split validation "
                    "--kb kb/ --out linked/ --workers 16")
    corpus.add_argument("--corpus", required=True, help="the corpus (see above)")
    corpus.add_argument("--kb", required=True, help="knowledge base: a kb.jsonl or a folder from `ltprobe kb build`")
    corpus.add_argument("--out", required=True, help="LINKED_DIR to write")
    corpus.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    corpus.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local process pool (default) or Ray Data (ray must be installed)")
    corpus.add_argument("--text-field", default="text", help="field/column holding the text (default text)")
    corpus.add_argument("--id-field", default="id", help="field/column holding the document id (default id)")
    corpus.add_argument("--split", default="train", help="Hugging Face dataset split (default train)")
    corpus.add_argument("--shard-size", type=int, default=100_000, help="documents per shard (default 100000)")
    corpus.add_argument("--max-doc-chars", type=int, default=5_000_000,
                        help="longer documents are bad records (default 5000000)")
    corpus.add_argument("--no-progress", action="store_true", help="no progress bar")
    _linker_options(corpus)
    add_on_error(corpus)

    bench = commands.add_bench(
        "link", _bench_link, "entity-linking speed, agreement and quality: fast path vs spaCy component",
        description="Generates a knowledge base of about --aliases aliases (with shared names) and "
                    "--docs documents of about 200 words with gold links, then measures: documents/s "
                    "per core of the fast path and of the spaCy component (spacy.blank + "
                    "ltprobe_linker), their agreement, entity-id F1 and F1 on ambiguous mentions, and "
                    "peak memory linking the corpus and a five times larger one (in subprocesses). "
                    "The last line is one JSON object.")
    bench.add_argument("--docs", type=int, default=20000, help="documents (default 20000)")
    bench.add_argument("--aliases", type=int, default=100000, help="aliases in the knowledge base (default 100000)")
    bench.add_argument("--spacy-docs", type=int, default=None,
                       help="documents for the spaCy component (default: all)")
    bench.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    bench.add_argument("--no-rss", action="store_true", help="skip the peak-memory subprocesses")
    bench.add_argument("--work-dir", default=None, help="folder for generated files (default: a temporary one)")

    kbb = commands.add_bench(
        "kb", _bench_kb, "a Wikidata-size knowledge base: load, worker memory, build, linking speed vs format 1",
        description="Generates a knowledge base of --entities entities and --aliases aliases (the style of "
                    "`bench link`: shared names, qualifiers, Unicode) and --docs documents of about 200 "
                    "words, then builds, loads and links with it in today's format (memory-mapped "
                    "arrays) and in format 1 (pyahocorasick automaton, the code before) side by side, "
                    "each in fresh processes: load seconds, private memory of a forked linking worker "
                    "(/proc/PID/smaps_rollup), build seconds, documents/s per core, and whether every "
                    "document's links are identical. The full size needs about 8 GB of memory; "
                    "the last line is one JSON object.")
    kbb.add_argument("--entities", type=int, default=2_000_000, help="entities (default 2000000)")
    kbb.add_argument("--aliases", type=int, default=6_000_000, help="aliases in all (default 6000000)")
    kbb.add_argument("--docs", type=int, default=20000, help="documents to link (default 20000)")
    kbb.add_argument("--worker-docs", type=int, default=5000,
                     help="documents the forked worker links before its memory is read (default 5000)")
    kbb.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    kbb.add_argument("--no-baseline", action="store_true", help="skip format 1 (the baseline)")
    kbb.add_argument("--work-dir", default=None, help="keep the generated files here (default: a temporary folder)")

    qab = commands.add_bench(
        "qa-link", _bench_qa_link,
        "question-entity precision/recall and counts on real data: old vs new linker defaults",
        description="Builds a knowledge base from the real data in shared/data/real (Mintaka dev's gold "
                    "entities, Wikidata class items, Google-RE's places with their aliases and its people "
                    "with namesakes, EntityQuestions' subjects), links Mintaka, EntityQuestions and "
                    "Google-RE questions, and prints question-entity precision and recall against gold, "
                    "and Google-RE pair counts against the true count, for the linker defaults before "
                    "issue 16 and now side by side, with a NIL-threshold sweep and one row per question "
                    "option switched. The last line is one JSON object.")
    qab.add_argument("--data", default=None, help="the shared/data/real folder (default: ../shared/data/real "
                     "beside the repository)")
    qab.add_argument("--eq-per-relation", type=int, default=300,
                     help="EntityQuestions questions per relation (default 300)")

    scale = commands.add_bench(
        "scale", _bench_scale, "corpus linking on Ray Data with 1 and 2 workers (and the local pool)",
        description="Links a generated corpus (split into files) with `link-corpus --executor ray` using 1 "
                    "and 2 Ray workers in local mode, and with the local process pool as the baseline; "
                    "prints documents/s, the scaling efficiency docs_per_s_2 / (2 * docs_per_s_1), and "
                    "whether all four runs wrote identical shards. The last line is one JSON object.")
    scale.add_argument("--docs", type=int, default=200000,
                       help="documents (default 200000: enough that Ray's start-up and the actors' "
                            "knowledge-base loading are a small part of the time)")
    scale.add_argument("--aliases", type=int, default=20000, help="aliases in the knowledge base (default 20000)")
    scale.add_argument("--files", type=int, default=8, help="corpus files (default 8)")
    scale.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _linker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("linking options (see `help(entity_linking.Linker)`)")
    group.add_argument("--context-chars", type=int, default=250,
                       help="characters each side of a mention read as context (default 250)")
    group.add_argument("--nil-threshold", type=float, default=None,
                       help="leave a mention unlinked when its best candidate's score is lower; also the "
                            "least score of the candidates a question keeps (default 0.2, chosen by "
                            "`ltprobe bench qa-link`)")
    group.add_argument("--case", choices=["smart", "insensitive"], default="smart",
                       help="smart (default): an all-lower-case span does not match a capitalised-only "
                            "alias; insensitive: case never matters")
    group.add_argument("--min-chars", type=int, default=2, help="ignore shorter matches (default 2)")
    group.add_argument("--prior-weight", type=float, default=1.0, help="weight of the popularity prior (default 1)")
    group.add_argument("--context-weight", type=float, default=1.0, help="weight of context words (default 1)")
    group.add_argument("--coherence-weight", type=float, default=2.0,
                       help="bonus for an entity linked elsewhere in the text (default 2)")
    group.add_argument("--no-qualifiers", action="store_true",
                       help="do not link the part after a comma of an alias such as 'Paris, France'")
    group.add_argument("--no-question-candidates", action="store_true",
                       help="questions: keep only the best candidate of an ambiguous mention (default: every "
                            "candidate at or above the NIL threshold; counting takes the best pair)")
    group.add_argument("--question-lowercase", action="store_true",
                       help="questions: also link spans written without a capital ('city', 'film'; default: not)")
    group.add_argument("--question-classes", action="store_true",
                       help="questions: also link class items, entities that are another entity's type "
                            "(default: not)")


def _options(args: argparse.Namespace) -> dict:
    options = {"context_chars": args.context_chars, "case": args.case,
               "min_chars": args.min_chars, "prior_weight": args.prior_weight,
               "context_weight": args.context_weight, "coherence_weight": args.coherence_weight,
               "link_qualifiers": not args.no_qualifiers,
               "question_candidates": not args.no_question_candidates,
               "question_lowercase": args.question_lowercase, "question_classes": args.question_classes}
    if args.nil_threshold is not None:  # else the Linker's default
        options["nil_threshold"] = args.nil_threshold
    return options


def _kb_help(args: argparse.Namespace) -> int:
    print("usage: ltprobe kb {build,info} ...  (see ltprobe kb --help)", file=sys.stderr)
    return 2


def _kb_build(args: argparse.Namespace) -> int:
    import time

    from entity_linking.io import InputError, SkipCounter
    from entity_linking.kb import build_kb

    started = time.perf_counter()
    skips = SkipCounter()
    columns = {}
    for item in filter(None, args.columns.split(",")):
        field, sep, column = item.partition("=")
        if not sep:
            raise InputError(f"--columns: expected FIELD=COLUMN, got {item!r}")
        columns[field.strip()] = column.strip()
    kb = build_kb(args.input, args.out, source=args.source, columns=columns, delimiter=args.delimiter,
                  alias_separator=args.alias_separator, language=args.language, limit=args.limit,
                  min_sitelinks=args.min_sitelinks, on_error=args.on_error, skips=skips,
                  progress=True)
    info = kb.info()
    logger.info(f"knowledge base: {info['entities']} entities, {info['aliases']} aliases, {info['keys']} alias keys "
                f"({info['ambiguous_keys']} ambiguous) -> {args.out} in {time.perf_counter() - started:.1f}s")
    if skips.skipped:
        logger.warning(skips.summary())
    return 0


def _kb_info(args: argparse.Namespace) -> int:
    from entity_linking.kb import KnowledgeBase

    print(json.dumps(KnowledgeBase.load(args.kb).info(), indent=2))
    return 0


def _link_qa(args: argparse.Namespace) -> int:
    from entity_linking import link_qa

    stats = link_qa(args.qa, args.kb, args.out, on_error=args.on_error, linker_options=_options(args))
    logger.info(f"linked {stats['questions']} QA pairs: {stats['with_q_entity']} with a question entity, "
                f"{stats['with_a_entity']} with an answer entity -> {args.out}")
    if stats["skipped"]:
        logger.warning(stats["skip_summary"])
    return 0


def _link_corpus(args: argparse.Namespace) -> int:
    from entity_linking.corpus import link_corpus

    manifest = link_corpus(args.corpus, args.kb, args.out, workers=args.workers, on_error=args.on_error,
                           text_field=args.text_field, id_field=args.id_field, split=args.split,
                           shard_size=args.shard_size, max_doc_chars=args.max_doc_chars,
                           linker_options=_options(args), executor=args.executor,
                           progress=not args.no_progress)
    logger.info(f"linked {manifest['documents_linked']} documents ({manifest['entity_links']} entity links) in "
                f"{len(manifest['shards'])} shard(s) -> {args.out}")
    if manifest["skipped"]:
        logger.warning(f"skipped {manifest['skipped']} bad record(s); first: {manifest['skip_examples'][0]}")
    return 0


def _bench_link(args: argparse.Namespace) -> int:
    from entity_linking import bench_link

    result = bench_link(docs=args.docs, aliases=args.aliases, spacy_docs=args.spacy_docs, seed=args.seed,
                        rss=not args.no_rss, work_dir=args.work_dir)
    print(json.dumps(result))
    return 0


def _bench_kb(args: argparse.Namespace) -> int:
    from entity_linking.kb import bench_kb

    print(json.dumps(bench_kb(entities=args.entities, aliases=args.aliases, docs=args.docs,
                              worker_docs=args.worker_docs, seed=args.seed, baseline=not args.no_baseline,
                              work_dir=args.work_dir)))
    return 0


def _bench_qa_link(args: argparse.Namespace) -> int:
    from entity_linking import bench_qa_link

    print(json.dumps(bench_qa_link(data=args.data, eq_per_relation=args.eq_per_relation)))
    return 0


def _bench_scale(args: argparse.Namespace) -> int:
    from entity_linking import bench_scale

    print(json.dumps(bench_scale(docs=args.docs, aliases=args.aliases, files=args.files, seed=args.seed)))
    return 0
