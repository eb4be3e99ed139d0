"""Knowledge bases: building one from Wikidata, JSONL or TSV sources into the memory-mapped format, loading it
(shared by every worker), and its benchmark."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "bench_kb": "entity_linking.kb._bench:bench_kb",
    "build_kb": "entity_linking.kb._build:build_kb",
    "guess_source": "entity_linking.kb._build:guess_source",
    "Entity": "entity_linking.kb._kb:Entity",
    "jsonl_entities": "entity_linking.kb._kb:jsonl_entities",
    "KnowledgeBase": "entity_linking.kb._kb:KnowledgeBase",
    "PAYLOAD_SHIFT": "entity_linking.kb._kb:PAYLOAD_SHIFT",
    "PUNCTUATED": "entity_linking.kb._kb:PUNCTUATED",
    "wikidata_entities": "entity_linking.kb._kb:wikidata_entities",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
