"""Counting by exact phrase match on an infini-gram suffix-array index: the index view and building one
from a corpus."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "bench_infinigram": "indexes.infinigram._build:bench_infinigram",
    "build_infinigram_index": "indexes.infinigram._build:build_infinigram_index",
    "InfiniGramIndex": "indexes.infinigram._index:InfiniGramIndex",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
