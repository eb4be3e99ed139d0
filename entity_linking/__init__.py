"""Entity linking: knowledge bases, linkers (a spaCy component and a fast path), QA and corpus linking."""

from entity_linking.io import InputError, read_records, write_jsonl

__all__ = ["InputError", "read_records", "write_jsonl"]
