"""`ltprobe report` and `ltprobe compare` (handlers import matplotlib and pandas when they run)."""

from __future__ import annotations

import argparse


def register(commands) -> None:
    from probe.cli import add_on_error

    report = commands.add(
        "report", _report,
        help="write report.html and plots/ for a finished run",
        description=(
            "Write a self-contained report.html (figures embedded) and plots/*.png and *.svg for a\n"
            "run folder: the finding in words, accuracy against relevant-document count per setting\n"
            "with 95% intervals and the histogram of questions per bucket, slopes and the\n"
            "count-dependence reduction, and, when the run has them, recall@k by bucket, retrieval\n"
            "precision, adaptive retrieval, scaling across models, truth agreement, the causal check\n"
            "(counterfactual.json), LINK head/tail statements, and the run's manifest.\n\n"
            "example: ltprobe report --run runs/demo"))
    report.add_argument("--run", required=True, metavar="DIR",
                        help="run folder written by `ltprobe run` (summary.json, counts.jsonl, ...)")
    report.add_argument("--out", metavar="FILE",
                        help="where to write the report (default: DIR/report.html; plots/ goes beside it)")
    report.add_argument("--generation", metavar="DIR",
                        help="a LINK generation run folder (statements.jsonl) to include "
                             "(default: DIR itself or DIR/generation when present)")
    add_on_error(report)

    compare = commands.add(
        "compare", _compare,
        help="put several runs side by side in one report and one table",
        description=(
            "Compare runs (models, corpora, retrievers). Writes OUT/compare.html (one\n"
            "accuracy-against-count figure per setting with a line per run, the slopes of every run,\n"
            "the table, each run's finding), OUT/compare.csv (every figure, full precision),\n"
            "OUT/compare.md (the table in markdown) and OUT/plots/compare_*.png|svg.\n\n"
            "example: ltprobe compare runs/small runs/large --out runs/compare"))
    compare.add_argument("runs", nargs="+", metavar="RUN", help="run folders to compare")
    compare.add_argument("--out", required=True, metavar="DIR", help="folder for the comparison")
    compare.add_argument("--labels", nargs="+", metavar="LABEL",
                         help="names for the runs in the same order (default: their folder names)")
    add_on_error(compare)


def _report(args: argparse.Namespace) -> int:
    from probe.report import write_report

    path = write_report(args.run, args.out, generation=args.generation, on_error=args.on_error)
    print(f"report: {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from probe.report import compare_runs

    path = compare_runs(args.runs, args.out, labels=args.labels, on_error=args.on_error)
    print(f"comparison: {path} (table: {path.parent / 'compare.csv'}, {path.parent / 'compare.md'})")
    return 0
