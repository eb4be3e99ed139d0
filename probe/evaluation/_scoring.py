"""Scoring completions against answer aliases.

Two scores are stored for every prediction (see docs/design.md, `predictions.jsonl`):

- `em`: SQuAD-normalised exact match against any alias (the original study's metric);
- `contains`: some normalised alias occurs in the normalised completion, on word boundaries
  (PopQA's substring scoring, made robust to "pol" matching "police").

One of them is copied into `correct` (config `scoring: em|contains`, default `em`).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable

SCORINGS = ("em", "contains")

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | {"‘", "’", "“", "”", "´", "`", "–", "—"}


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace.

    Unicode is NFKC-folded first so that compatibility forms (full-width letters, ligatures)
    compare equal; accents are kept, as in SQuAD.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(completion: str, answers: Iterable[str]) -> bool:
    """True when the normalised completion equals some normalised alias."""
    pred = normalize_answer(completion)
    return any(pred == normalize_answer(a) for a in answers if normalize_answer(a))


def contains_answer(completion: str, answers: Iterable[str]) -> bool:
    """True when some normalised alias occurs in the normalised completion as whole words."""
    pred = f" {normalize_answer(completion)} "
    for answer in answers:
        alias = normalize_answer(answer)
        if alias and f" {alias} " in pred:
            return True
    return False


def score(completion: str, answers: Iterable[str], scoring: str = "em") -> dict[str, bool]:
    """`{"em", "contains", "correct"}` for one completion; `correct` copies the chosen score."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, not {scoring!r}")
    answers = list(answers)
    result = {"em": exact_match(completion, answers), "contains": contains_answer(completion, answers)}
    result["correct"] = result[scoring]
    return result
