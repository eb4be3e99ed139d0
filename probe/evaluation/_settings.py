"""The evaluation settings: one definition, imported by evaluation, analysis, the job and the
report (a leaf module, so that any of them may import it)."""

from __future__ import annotations

SETTINGS = ("closed_book", "rag", "oracle")
"""The evaluation settings (the `setting` of a prediction), in the order summaries and reports
list them: the one definition the rest of the toolkit imports."""

RETRIEVAL_SETTINGS = ("rag", "oracle")
"""The settings whose prompts carry passages from the index."""


def setting_order(name: str) -> tuple[int, str]:
    """Sort key of a setting name: the contract's settings in `SETTINGS` order, any other after
    them by name."""
    return (SETTINGS.index(name) if name in SETTINGS else len(SETTINGS), name)
