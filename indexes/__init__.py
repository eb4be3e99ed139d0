"""Document indexes (embedded on-disk, Elasticsearch), relevant-document counts and retrieval."""

from entity_linking._lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
    "DocumentIndex": "indexes._base:DocumentIndex",
    "Passage": "indexes._base:Passage",
    "build_index": "indexes._base:build_index",
    "open_index": "indexes._base:open_index",
    "count_qa": "indexes._counts:count_qa",
    "iter_counts": "indexes._counts:iter_counts",
    "load_stoplist": "indexes._counts:load_stoplist",
    "relevant_docs": "indexes._counts:relevant_docs",
    "write_counts": "indexes._counts:write_counts",
    "ElasticsearchIndex": "indexes._elastic:ElasticsearchIndex",
    "TrainingOrder": "indexes._order:TrainingOrder",
    "count_by_step": "indexes._order:count_by_step",
    "load_order": "indexes._order:load_order",
    "write_counts_by_step": "indexes._order:write_counts_by_step",
    "PhraseCounts": "indexes._elastic:PhraseCounts",
    "EmbeddedIndex": "indexes._embedded:EmbeddedIndex",
    "InfiniGramIndex": "indexes._infinigram:InfiniGramIndex",
    "build_infinigram_index": "indexes._infinigram_build:build_infinigram_index",
    "EmbeddedPhraseCounts": "indexes._phrase_index:EmbeddedPhraseCounts",
    "PhraseMatcher": "indexes._phrases:PhraseMatcher",
    "phrase_key": "indexes._phrases:phrase_key",
    "import_kandpal": "indexes._kandpal:import_kandpal",
    "iter_entity_map": "indexes._kandpal:iter_entity_map",
    "split_passages": "indexes._text:split_passages",
    "tokenize": "indexes._text:tokenize",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
