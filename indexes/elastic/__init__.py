"""The Elasticsearch backend: the cluster client and bulk ingestion (`_client`), the index and phrase counts
(`_index`), and ingestion from Ray workers (`_ray`)."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "build_elasticsearch": "indexes.elastic._index:build_elasticsearch",
    "ElasticsearchIndex": "indexes.elastic._index:ElasticsearchIndex",
    "PhraseCounts": "indexes.elastic._index:PhraseCounts",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
