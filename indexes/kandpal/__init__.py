"""The original study's released entity data (Kandpal et al., 2023) imported as an embedded index, and its
benchmark."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "bench_import": "indexes.kandpal._bench:bench_import",
    "import_kandpal": "indexes.kandpal._import:import_kandpal",
    "iter_entity_map": "indexes.kandpal._import:iter_entity_map",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
