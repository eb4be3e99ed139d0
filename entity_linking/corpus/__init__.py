"""Reading corpora (the one reader of every stage: files, folders, globs, JSONL, Parquet, `hf:`, object
stores) and linking them into sharded per-document entity sets, in local processes or on Ray."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "iter_linked": "entity_linking.corpus._link:iter_linked",
    "link_corpus": "entity_linking.corpus._link:link_corpus",
    "read_manifest": "entity_linking.corpus._link:read_manifest",
    "start_ray": "entity_linking.corpus._ray:start_ray",
    "Corpus": "entity_linking.corpus._reader:Corpus",
    "DEFAULT_MAX_DOC_CHARS": "entity_linking.corpus._reader:DEFAULT_MAX_DOC_CHARS",
    "file_identity": "entity_linking.corpus._reader:file_identity",
    "identity": "entity_linking.corpus._reader:identity",
    "resolve": "entity_linking.corpus._reader:resolve",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
