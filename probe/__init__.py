"""Evaluation, retrieval augmentation, long-tail generation, analysis and the `ltprobe` command."""

from entity_linking._lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
    "compare_runs": "probe._report:compare_runs",
    "load_run": "probe._load:load_run",
    "CountScorer": "probe._linkgen:CountScorer",
    "SearchConfig": "probe._linkgen:SearchConfig",
    "generate_statements": "probe._linkgen:generate_statements",
    "probe_statements": "probe._probing:probe_statements",
    "write_report": "probe._report:write_report",
    "Rule": "probe._rules:Rule",
    "load_rules": "probe._rules:load_rules",
    "TrainConfig": "probe._train:TrainConfig",
    "train_model": "probe._train:train_model",
    "WorldConfig": "probe._world:WorldConfig",
    "generate_world": "probe._world:generate_world",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
