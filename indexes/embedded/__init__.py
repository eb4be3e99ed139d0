"""The embedded on-disk backend, the default: memory-mapped postings, document text and BM25 passages in
one folder, and its string tables."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "build_embedded": "indexes.embedded._index:build_embedded",
    "EmbeddedIndex": "indexes.embedded._index:EmbeddedIndex",
    "EmbeddedWriter": "indexes.embedded._index:EmbeddedWriter",
    "FORMAT_VERSION": "indexes.embedded._index:FORMAT_VERSION",
    "PassageSearcher": "indexes.embedded._index:PassageSearcher",
    "PassageWriter": "indexes.embedded._index:PassageWriter",
    "RAW_POSTINGS_BELOW": "indexes.embedded._index:RAW_POSTINGS_BELOW",
    "write_strings": "indexes.embedded._strings:write_strings",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
