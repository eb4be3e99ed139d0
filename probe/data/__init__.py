"""Question-answer data: loading QA sets (JSONL, published formats, `hf:` data sets) into the contract's
records, with their default scoring."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "default_scoring": "probe.data._qa:default_scoring",
    "load_qa": "probe.data._qa:load_qa",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
