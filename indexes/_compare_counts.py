"""`ltprobe compare-counts`: two counts.jsonl files of one QA set side by side.

Typically linked-entity counts (`ltprobe count --index`) against alias-phrase counts
(`--phrases` or `--infini-gram`) on the same corpus, so that a user sees what each measures
before choosing one: the rank correlation (Spearman) over the pairs both count, a scatter plot
of log counts, and the questions where the two disagree most, with the documents only one of
them counts (when an index with text is given).
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, read_records, write_json


def _load(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for _, record in read_records(path, required={"id": (str, int)}):
        rows[str(record["id"])] = record
    return rows


def _excerpt(text: str | None, chars: int) -> str:
    text = " ".join((text or "(no text stored)").split())
    return text if len(text) <= chars else text[:chars].rstrip() + " ..."


def compare_counts(a: str | os.PathLike, b: str | os.PathLike, out: str | os.PathLike, *,
                   label_a: str | None = None, label_b: str | None = None,
                   qa: str | os.PathLike | None = None, index_a: Any = None, index_b: Any = None,
                   top: int = 20, docs_per_side: int = 3, chars: int = 240) -> dict[str, Any]:
    """Write `report.md`, `report.html`, `scatter.png` and `summary.json` into `out`; return the
    summary (`n_both`, `spearman`, ...). `index_a`/`index_b`: open indexes (the `DocumentIndex`
    each counts came from) used to show the documents only one side counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy.stats import spearmanr

    rows_a, rows_b = _load(a), _load(b)
    label_a = label_a or Path(a).name
    label_b = label_b or Path(b).name
    questions: dict[str, str] = {}
    if qa:
        for _, record in read_records(qa, required={"id": (str, int)}):
            questions[str(record["id"])] = str(record.get("question", ""))
    both = [i for i in rows_a if i in rows_b and rows_a[i].get("count") is not None
            and rows_b[i].get("count") is not None]
    if not both:
        raise InputError(f"{a} and {b} have no QA pair with a count in both (compare counts of one QA set)")
    x = np.array([rows_a[i]["count"] for i in both], dtype=float)
    y = np.array([rows_b[i]["count"] for i in both], dtype=float)
    rho = spearmanr(x, y).statistic if len(both) > 2 and x.std() > 0 and y.std() > 0 else float("nan")
    lx, ly = np.log10(x + 1), np.log10(y + 1)
    gap = ly - lx
    order = np.argsort(-np.abs(gap), kind="stable")[:top]
    approx = sum(1 for i in both if rows_b[i].get("approx") or rows_a[i].get("approx"))
    summary = {
        "a": str(a), "b": str(b), "label_a": label_a, "label_b": label_b,
        "n_a": len(rows_a), "n_b": len(rows_b), "n_both": len(both),
        "spearman": None if math.isnan(rho) else round(float(rho), 4),
        "equal": int((x == y).sum()), "b_higher": int((y > x).sum()), "a_higher": int((y < x).sum()),
        "zero_in_a_only": int(((x == 0) & (y > 0)).sum()), "zero_in_b_only": int(((y == 0) & (x > 0)).sum()),
        "median_log10_ratio_b_over_a": round(float(np.median(gap)), 4), "approx_pairs": approx,
    }
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(x + 1, y + 1, s=8, alpha=0.5)
    top_value = max(float(x.max()), float(y.max())) + 1
    ax.plot([1, top_value], [1, top_value], color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{label_a} count + 1")
    ax.set_ylabel(f"{label_b} count + 1")
    ax.set_title(f"{len(both)} QA pairs, Spearman {summary['spearman']}")
    fig.tight_layout()
    fig.savefig(folder / "scatter.png", dpi=120)
    plt.close(fig)

    items = []
    for k in order:
        i = both[int(k)]
        ra, rb = rows_a[i], rows_b[i]
        item: dict[str, Any] = {"id": i, "question": questions.get(i), "count_a": ra["count"],
                                "count_b": rb["count"], "pair_a": ra.get("pair"), "pair_b": rb.get("pair"),
                                "approx_b": bool(rb.get("approx"))}
        for side, index, pair, other_index, other_pair in (("a", index_a, ra.get("pair"), index_b, rb.get("pair")),
                                                           ("b", index_b, rb.get("pair"), index_a, ra.get("pair"))):
            if index is None or not pair:
                continue
            try:
                mine = index.docs_with(pair, limit=None)
                theirs = set(other_index.docs_with(other_pair, limit=None)) if other_index is not None and other_pair else set()
            except InputError:
                continue
            only = [d for d in mine if d not in theirs][:docs_per_side]
            item[f"only_{side}"] = [{"id": d, "text": _excerpt(index.get_text(d), chars)} for d in only]
        items.append(item)
    summary["disagreements"] = items
    write_json(folder / "summary.json", summary)
    _write_reports(folder, summary)
    return summary


def _write_reports(folder: Path, s: dict[str, Any]) -> None:
    la, lb = s["label_a"], s["label_b"]
    md = [f"# Counts compared: {la} vs {lb}", "",
          f"- QA pairs counted by both: {s['n_both']} (of {s['n_a']} / {s['n_b']})",
          f"- Spearman rank correlation: {s['spearman']}",
          f"- equal: {s['equal']}; {lb} higher: {s['b_higher']}; {la} higher: {s['a_higher']}",
          f"- zero in {la} only: {s['zero_in_a_only']}; zero in {lb} only: {s['zero_in_b_only']}",
          f"- median log10(({lb}+1)/({la}+1)): {s['median_log10_ratio_b_over_a']}",
          f"- pairs with an approximate count: {s['approx_pairs']}", "",
          "![scatter](scatter.png)", "", f"## The {len(s['disagreements'])} largest disagreements", ""]
    for item in s["disagreements"]:
        md.append(f"### {item['id']}: {la} {item['count_a']} vs {lb} {item['count_b']}"
                  + (" (approx)" if item["approx_b"] else ""))
        if item.get("question"):
            md.append(f"Question: {item['question']}")
        md.append(f"Pairs: {la} {item['pair_a']}, {lb} {item['pair_b']}")
        for side, label, other in (("a", la, lb), ("b", lb, la)):
            docs = item.get(f"only_{side}")
            if docs:
                md.append(f"\nDocuments {label} counts and {other} does not:")
                md.extend(f"- [{d['id']}] {d['text']}" for d in docs)
        md.append("")
    text = "\n".join(md) + "\n"
    (folder / "report.md").write_text(text, encoding="utf-8")
    body = []
    for line in md:
        if line.startswith("### "):
            body.append(f"<h3>{html.escape(line[4:])}</h3>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("!["):
            body.append('<img src="scatter.png" alt="scatter plot of the two counts">')
        elif line.strip():
            body.append(f"<p>{html.escape(line.lstrip('- ').strip())}</p>")
    (folder / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>Counts compared</title>\n" + "\n".join(body) + "\n",
        encoding="utf-8")
