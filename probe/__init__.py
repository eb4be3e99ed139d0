"""Evaluation, retrieval augmentation, long-tail generation, analysis and the `ltprobe` command."""

__all__: list[str] = []
