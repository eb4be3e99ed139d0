"""Summary records as pandas frames and the checks on their numbers, shared by the plots, the
headline and the report."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from probe.analysis import bucket_label

SETTING_NAMES = {"closed_book": "closed-book", "rag": "retrieval (RAG)", "oracle": "oracle passage"}
"""How the report and the plots name each setting."""


def buckets_frame(rows: list[dict[str, Any]], value: str) -> pd.DataFrame:
    """Summary bucket records (`lo`, `hi`, `n`, VALUE, `ci`, `flagged`) as a sorted frame."""
    columns = ["lo", "hi", "label", "n", value, "ci_low", "ci_high", "flagged"]
    out = []
    for row in rows:
        if not isinstance(row, dict) or row.get("lo") is None or row.get("hi") is None:
            continue
        ci = row.get("ci") if isinstance(row.get("ci"), (list, tuple)) and len(row["ci"]) == 2 else (None, None)
        out.append({"lo": row["lo"], "hi": row["hi"], "label": bucket_label(row["lo"], row["hi"]),
                    "n": row.get("n"), value: row.get(value),
                    "ci_low": ci[0], "ci_high": ci[1], "flagged": bool(row.get("flagged", False))})
    frame = pd.DataFrame(out, columns=columns)
    for col in (value, "ci_low", "ci_high"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame.sort_values("lo", ignore_index=True)



def num(value: Any) -> float | None:
    """A finite float, or None for missing / non-numeric / NaN values."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def pair(value: Any) -> tuple[float, float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        a, b = num(value[0]), num(value[1])
        if a is not None and b is not None:
            return (a, b)
    return None
