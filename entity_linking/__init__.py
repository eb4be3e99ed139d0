"""Entity linking: knowledge bases, linkers (a spaCy component and a fast path), QA and corpus linking."""

from entity_linking._lazy import lazy_exports
from entity_linking.io import InputError, read_records, write_json, write_jsonl

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = ["InputError", "read_records", "write_json", "write_jsonl", *_LAZY]
