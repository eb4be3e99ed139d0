"""`ltprobe attribute`: why answers are wrong (issue 19; see `probe.analysis._learning`)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

logger = logging.getLogger(__name__)

_HELP = """\
Attribute wrong answers: link each wrong prediction against the knowledge base (the question as
context, as the gold answers are linked), count the documents holding both the question entity
and the predicted entity, and compare with the gold answer's count. Writes OUT (errors.jsonl,
one record per wrong answer: status, pred_entities, pred_pair, pred_count, gold_count,
more_frequent) and prints, per setting, the share of wrong answers whose predicted answer
co-occurs with the question entity more often than the gold answer, by bucket of the gold count.
`ltprobe docs QA_ID --errors OUT` shows the documents behind a wrong answer."""


def register(commands: Any) -> None:
    p = commands.add("attribute", _attribute, help="attribute wrong answers to frequent distractors (errors.jsonl)",
                     description=_HELP)
    p.add_argument("--predictions", required=True, help="predictions.jsonl of `ltprobe eval` / `ltprobe run`")
    p.add_argument("--qa", required=True, help="qa.jsonl (the questions, for linking context)")
    p.add_argument("--qa-entities", required=True, help="qa_entities.jsonl of `ltprobe link-qa`")
    p.add_argument("--counts", required=True, help="counts.jsonl of `ltprobe count`")
    p.add_argument("--index", required=True, help="index folder of `ltprobe index`")
    p.add_argument("--kb", required=True, help="knowledge base (kb.jsonl or a `ltprobe kb build` folder)")
    p.add_argument("--model", help="whose predictions (default: the first model in --predictions)")
    p.add_argument("--out", required=True, help="errors.jsonl to write")


def _attribute(args: argparse.Namespace) -> int:
    from probe.analysis import write_errors

    summary = write_errors(args.predictions, args.qa, args.qa_entities, args.counts, args.index, args.kb,
                           args.out, model=args.model)
    for setting, s in summary["settings"].items():
        share = "n/a" if s["share_more_frequent"] is None else f"{s['share_more_frequent']:.3f}"
        print(f"{setting}: {s['n_errors']} wrong answers, {s['n_attributed']} linked to another entity; "
              f"share with a more frequent predicted answer {share}")
    print(json.dumps(summary))
    logger.info(f"wrote {args.out}")
    return 0
