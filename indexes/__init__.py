"""Document indexes (embedded on-disk, Elasticsearch), relevant-document counts and retrieval."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
    "Backend": "indexes._backends:Backend",
    "BACKENDS": "indexes._backends:BACKENDS",
    "build_index": "indexes._backends:build_index",
    "load_aliases": "indexes._backends:load_aliases",
    "open_index": "indexes._backends:open_index",
    "open_phrase_index": "indexes._backends:open_phrase_index",
    "DocumentIndex": "indexes._base:DocumentIndex",
    "Passage": "indexes._base:Passage",
    "bench_count": "indexes._bench:bench_count",
    "bench_retrieve": "indexes._bench:bench_retrieve",
    "compare_counts": "indexes._compare_counts:compare_counts",
    "count_qa": "indexes._counts:count_qa",
    "find_qa_record": "indexes._counts:find_qa_record",
    "iter_count_records": "indexes._counts:iter_count_records",
    "iter_counts": "indexes._counts:iter_counts",
    "load_stoplist": "indexes._counts:load_stoplist",
    "relevant_docs": "indexes._counts:relevant_docs",
    "write_counts": "indexes._counts:write_counts",
    "count_by_step": "indexes._order:count_by_step",
    "load_order": "indexes._order:load_order",
    "parse_steps": "indexes._order:parse_steps",
    "seen_table": "indexes._order:seen_table",
    "TrainingOrder": "indexes._order:TrainingOrder",
    "write_counts_by_step": "indexes._order:write_counts_by_step",
    "Count": "indexes._records:Count",
    "EmbeddedPhraseCounts": "indexes._phrase_index:EmbeddedPhraseCounts",
    "phrase_key": "indexes._phrases:phrase_key",
    "PhraseMatcher": "indexes._phrases:PhraseMatcher",
    "split_passages": "indexes._text:split_passages",
    "tokenize": "indexes._text:tokenize",
    "ElasticsearchIndex": "indexes.elastic._index:ElasticsearchIndex",
    "PhraseCounts": "indexes.elastic._index:PhraseCounts",
    "EmbeddedIndex": "indexes.embedded._index:EmbeddedIndex",
    "build_infinigram_index": "indexes.infinigram._build:build_infinigram_index",
    "InfiniGramIndex": "indexes.infinigram._index:InfiniGramIndex",
    "import_kandpal": "indexes.kandpal._import:import_kandpal",
    "iter_entity_map": "indexes.kandpal._import:iter_entity_map",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
