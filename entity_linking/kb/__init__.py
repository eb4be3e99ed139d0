"""Knowledge bases: building one from Wikidata, JSONL, TSV/CSV or PopQA sources (one reader each in
`_sources`, by name in `SOURCES`) into the memory-mapped format, loading it (shared by every worker),
and its benchmark."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "bench_kb": "entity_linking.kb._bench:bench_kb",
    "generate_kb": "entity_linking.kb._bench:generate_kb",
    "build_kb": "entity_linking.kb._build:build_kb",
    "Entity": "entity_linking.kb._entity:Entity",
    "KnowledgeBase": "entity_linking.kb._kb:KnowledgeBase",
    "PAYLOAD_SHIFT": "entity_linking.kb._kb:PAYLOAD_SHIFT",
    "PUNCTUATED": "entity_linking.kb._kb:PUNCTUATED",
    "guess_source": "entity_linking.kb._sources:guess_source",
    "read_entities": "entity_linking.kb._sources:read_entities",
    "SOURCES": "entity_linking.kb._sources:SOURCES",
    "jsonl_entities": "entity_linking.kb._sources.jsonl:jsonl_entities",
    "popqa_entities": "entity_linking.kb._sources.popqa:popqa_entities",
    "table_entities": "entity_linking.kb._sources.table:table_entities",
    "wikidata_entities": "entity_linking.kb._sources.wikidata:wikidata_entities",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
