"""Evaluation, retrieval augmentation, long-tail generation, analysis and the `ltprobe` command."""

from entity_linking._lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
    "compare_runs": "probe._report:compare_runs",
    "load_run": "probe._load:load_run",
    "write_report": "probe._report:write_report",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
