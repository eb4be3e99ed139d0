"""Document indexes (embedded on-disk, Elasticsearch), relevant-document counts and retrieval."""

from entity_linking._lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
