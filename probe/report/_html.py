"""Building blocks of the report's HTML: the page, tables, figures and number formats."""

from __future__ import annotations

import datetime as _dt
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from probe.report._frames import num

# ---- HTML helpers -------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#666;font-size:.9em}.warning{color:#8b0000;background:#fdecea;padding:.5em .7em;border-radius:4px}
.note{color:#8a5a00;background:#fff7e6;padding:.4em .6em;border-radius:4px}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}th,td{border:1px solid #ddd;padding:.25em .55em;
text-align:right;vertical-align:top}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%}figcaption{color:#555;font-size:.88em}
pre{background:#f6f6f6;padding:.7em;overflow:auto;font-size:.82em}.finding p{font-size:1.05em}
details{margin:.6em 0}
"""


def html_page(title: str, meta: Mapping[str, Any], body: str) -> str:
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta_html = " · ".join(f"{html.escape(str(k))}: <b>{html.escape(str(v))}</b>" for k, v in meta.items())
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1><p class='meta'>{meta_html} · written {when}</p>\n{body}\n"
            f"</body></html>\n")


def how_to_read() -> str:
    return ("<details><summary>How to read this report</summary><p>Each question's <i>relevant-document "
            "count</i> is the number of pretraining documents that mention both the question's entity and "
            "the answer's entity (found by entity linking). Questions are grouped into decade buckets of the "
            "count (0, 1-9, 10-99, ...); for each bucket the report shows the share answered correctly with a "
            "95% interval. <i>Closed-book</i>: the model answers from memory; <i>retrieval</i>: passages found "
            "by BM25 are put before the question; <i>oracle</i>: a passage that states the answer. The "
            "<i>slope per decade</i> is how much accuracy changes when the count grows tenfold; the "
            "<i>reduction</i> is how much smaller that slope is with retrieval. Buckets with too few "
            "questions are flagged (open markers) and should not be read too closely.</p></details>")


def paragraphs(sentences: Iterable[str]) -> str:
    return "<div class='finding'>" + "".join(f"<p>{html.escape(s)}</p>" for s in sentences) + "</div>"


def html_figure(fig: Any, plots_dir: Path, name: str, caption: str) -> str:
    from probe.report._plots import save_figure

    saved = save_figure(fig, plots_dir, name)
    return (f"<figure><img alt='{html.escape(caption)}' src='{saved['data_uri']}'>"
            f"<figcaption>{html.escape(caption)} (plots/{name}.png, .svg)</figcaption></figure>")


def html_table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = ["<table><thead><tr>", *(f"<th>{html.escape(str(h))}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def kv_table(obj: Any, limit: int = 60) -> str:
    """Any JSON value as a two-column table of dotted keys (lists of records as sub-tables)."""
    rows: list[tuple[str, str]] = []
    tables: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            tables.append(f"<h4>{html.escape(prefix)}</h4>" + records_table(value))
        else:
            rows.append((prefix or "value", cell(value)))

    walk("", obj)
    more = f"<p class='note'>{len(rows) - limit} more entries not shown.</p>" if len(rows) > limit else ""
    return (html_table(["key", "value"], rows[:limit]) if rows else "") + more + "".join(tables)


def records_table(records: Sequence[Mapping[str, Any]], limit: int = 20) -> str:
    cols = list(dict.fromkeys(k for r in records[:limit] for k in r))
    body = [[cell(r.get(c)) for c in cols] for r in records[:limit]]
    more = f"<p class='note'>{len(records) - limit} more rows not shown.</p>" if len(records) > limit else ""
    return html_table(cols, body) + more


def cell(value: Any) -> str:
    if missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return short(json.dumps(value, default=str), 120)
    return short(str(value), 160)


def logistic_text(fit: Any) -> str:
    if not isinstance(fit, Mapping) or num(fit.get("slope")) is None:
        return compact(fit)
    text = f"{fit['slope']:+.2f} log-odds per decade"
    half = num(fit.get("count_at_half"))
    if half is not None:
        text += f"; 50% accuracy at count ≈ {half:.3g}"
    elif fit.get("above_half_at_zero"):
        text += "; above 50% already at count 0"
    if fit.get("converged") is False:
        text += " (not converged)"
    return text


def compact(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items() if not isinstance(v, (list, dict)))
    return cell(value)


def short(text: Any, n: int = 160) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value)) if not isinstance(value, (list, dict, tuple, str)) else False
    except (TypeError, ValueError):
        return False


def fmt(value: Any, spec: str = ".3g") -> str:
    v = num(value)
    return "–" if v is None else f"{v:{spec}}"


def fmt_pct(value: Any) -> str:
    v = num(value)
    return "–" if v is None else f"{v:.1%}"


def fmt_int(value: Any) -> str:
    v = num(value)
    return "–" if v is None else f"{int(v):,}"


def first_num(mapping: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        v = num(mapping.get(key))
        if v is not None:
            return v
    return None

