"""Document indexes (embedded on-disk, Elasticsearch), relevant-document counts and retrieval."""

__all__: list[str] = []
