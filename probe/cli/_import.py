"""`ltprobe import kandpal` and `ltprobe bench import`: the original study's released entity data.

Lives in `probe` because naming the QA set a released file follows (`--qa`/`--preset`) needs
the QA loaders; the import itself is `indexes.kandpal._import`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

logger = logging.getLogger(__name__)


def register(commands) -> None:
    from probe.cli import add_on_error

    top = commands.add(
        "import", _import_help, help="import released entity data (the original study's entity maps)",
        description="Import data linked elsewhere into ltprobe's formats. `ltprobe import kandpal` "
                    "reads the entity maps and QA entities that Kandpal et al. (2023) released.")
    sub = top.add_subparsers(dest="import_format", metavar="FORMAT")
    p = sub.add_parser(
        "kandpal", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="entity maps (nkandpa2/pretraining_entities) and QA entities (nkandpa2/qa_entities)",
        description=(
            "Import the original study's released linking (DBpedia Spotlight, confidence 0.4, "
            "support 20).\n\n"
            "  --entity-map MAP.npz   e.g. the_pile_entity_map.npz: DBpedia URI -> document indices.\n"
            "                         Written to OUT/index/, an embedded index of document sets (no\n"
            "                         text; document ids are the indices) for `ltprobe count --index`\n"
            "                         and `ltprobe docs`. Read entity by entity: memory holds one\n"
            "                         entity's array, never the whole map.\n"
            "  --qa-entities QA.jsonl e.g. trivia_qa_unfiltered.nocontext_validation_entities.jsonl.\n"
            "                         Written to OUT/qa_entities.jsonl with ids \"0\", \"1\", ... (the\n"
            "                         line number), or the ids of the QA set named by --qa/--preset/\n"
            "                         --split (its length must match).\n\n"
            "Then `ltprobe count --index OUT/index --qa-entities OUT/qa_entities.jsonl --out "
            "counts.jsonl --stoplist countries` reproduces the published counts (mention votes, "
            "a_count over all answer entities, the 184 countries removed from the question side).\n\n"
            "example: ltprobe import kandpal --entity-map the_pile_entity_map.npz --qa-entities "
            "trivia_qa_unfiltered.nocontext_validation_entities.jsonl --preset trivia_qa "
            "--split validation --out imported/pile"))
    p.add_argument("--entity-map", help="an entity map .npz (DBpedia URI -> document indices)")
    p.add_argument("--qa-entities", help="a released QA-entities JSONL (q_entities/a_entities of "
                                         "Spotlight records), also .jsonl.gz")
    p.add_argument("--out", required=True, help="folder to write index/ and qa_entities.jsonl into")
    p.add_argument("--qa", help="the QA set the QA-entities file follows line by line (a local file or "
                                "a Hugging Face data set): its ids become the ids")
    p.add_argument("--preset", help="QA preset of that set (trivia_qa, nq_open, popqa); alone, the "
                                    "preset's data set")
    p.add_argument("--split", help="split of that set (e.g. validation, train)")
    add_on_error(p)
    p.set_defaults(handler=_import_kandpal)

    b = commands.add_bench(
        "import", _bench_import, help="import rate of an entity map (entities and indices per second)",
        description="Generate an entity map in the released format (.npz of int64 arrays, Zipf-sized, "
                    "unsorted with repeats), import it with `ltprobe import kandpal`, check a sample "
                    "of entities against numpy, and report the rate and peak memory. The last line "
                    "is one JSON object.")
    b.add_argument("--entities", type=int, default=1_000_000, help="entities (default 1,000,000)")
    b.add_argument("--indices", type=int, default=200_000_000,
                   help="document indices in all (default 200,000,000)")
    b.add_argument("--docs", type=int, default=None, help="corpus size (default: indices / 20)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--dir", help="folder for the generated map and index (default: temporary, removed)")


def _import_help(args: argparse.Namespace) -> int:
    print("usage: ltprobe import kandpal ...  (see ltprobe import kandpal --help)", file=sys.stderr)
    return 2


def _import_kandpal(args: argparse.Namespace) -> int:
    from entity_linking.io import InputError
    from indexes.kandpal import import_kandpal

    ids = None
    if args.qa or args.preset:
        if not args.qa_entities:
            raise InputError("--qa/--preset name the QA set of --qa-entities; give --qa-entities too")
        from probe.data import load_qa

        records = load_qa(args.qa or args.preset, preset=args.preset, split=args.split)
        ids = [str(r["id"]) for r in records]
    elif args.split:
        raise InputError("--split needs --qa or --preset")
    result = import_kandpal(args.out, entity_map=args.entity_map, qa_entities=args.qa_entities,
                            ids=ids, on_error=args.on_error)
    if "qa_entities" in result:
        qa = result["qa_entities"]
        logger.info(f"wrote {qa['n']} QA entity records to {qa['path']}"
                    + (f" (skipped {qa['skipped']}: {qa['skipped_summary']})" if qa["skipped"] else ""))
    if "index" in result:
        ix = result["index"]
        logger.info(f"wrote an index of {ix['n_entities']} entities over {ix['n_docs']} documents "
                    f"({ix['n_mentions']} distinct entity-document pairs) to {ix['path']} "
                    f"in {ix['build_seconds']} s")
    return 0


def _bench_import(args: argparse.Namespace) -> int:
    from indexes.kandpal import bench_import

    result = bench_import(n_entities=args.entities, n_indices=args.indices, n_docs=args.docs,
                          seed=args.seed, folder=args.dir)
    print(json.dumps(result))
    return 0
