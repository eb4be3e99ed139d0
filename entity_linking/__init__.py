"""Entity linking: knowledge bases, linkers (a spaCy component and a fast path), QA and corpus linking."""

from entity_linking.io import InputError, read_records, write_json, write_jsonl
from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
    "bench_link": "entity_linking._bench:bench_link",
    "bench_scale": "entity_linking._bench:bench_scale",
    "bench_qa_link": "entity_linking._bench_qa:bench_qa_link",
    "Linker": "entity_linking._linker:Linker",
    "Mention": "entity_linking._linker:Mention",
    "normalize": "entity_linking._normalize:normalize",
    "link_qa": "entity_linking._qa:link_qa",
    "link_qa_records": "entity_linking._qa:link_qa_records",
    "spacy_pipeline": "entity_linking._spacy:spacy_pipeline",
    "iter_linked": "entity_linking.corpus._link:iter_linked",
    "link_corpus": "entity_linking.corpus._link:link_corpus",
    "read_manifest": "entity_linking.corpus._link:read_manifest",
    "start_ray": "entity_linking.corpus._ray:start_ray",
    "Entity": "entity_linking.kb._entity:Entity",
    "KnowledgeBase": "entity_linking.kb._kb:KnowledgeBase",
    "LinkedQAPair": "entity_linking.records:LinkedQAPair",
    "QAPair": "entity_linking.records:QAPair",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = ["InputError", "read_records", "write_json", "write_jsonl", *_LAZY]
