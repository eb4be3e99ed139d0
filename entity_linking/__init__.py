"""Entity linking: knowledge bases, linkers (a spaCy component and a fast path), QA and corpus linking."""

from entity_linking._lazy import lazy_exports
from entity_linking.io import InputError, read_records, write_json, write_jsonl

# name -> "module:attribute", imported on first use (one line each; keep sorted by module).
_LAZY = {
    "iter_linked": "entity_linking._corpus:iter_linked",
    "link_corpus": "entity_linking._corpus:link_corpus",
    "read_manifest": "entity_linking._corpus:read_manifest",
    "Entity": "entity_linking._kb:Entity",
    "KnowledgeBase": "entity_linking._kb:KnowledgeBase",
    "Linker": "entity_linking._linker:Linker",
    "Mention": "entity_linking._linker:Mention",
    "normalize": "entity_linking._normalize:normalize",
    "link_qa": "entity_linking._qa:link_qa",
    "link_qa_records": "entity_linking._qa:link_qa_records",
    "start_ray": "entity_linking._ray:start_ray",
    "spacy_pipeline": "entity_linking._spacy:spacy_pipeline",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = ["InputError", "read_records", "write_json", "write_jsonl", *_LAZY]
