"""Test data shared by the entity_linking tests (imported as a plain module)."""

from __future__ import annotations

from pathlib import Path

TEN = [
    {"id": "P1", "name": "John Smith", "aliases": ["J. Smith"], "type": "person",
     "description": "chemist born in Springfield, Illinois", "prior": 0.2},
    {"id": "P2", "name": "John Smith", "aliases": [], "type": "person",
     "description": "painter born in Paris", "prior": 0.3},
    {"id": "P3", "name": "Zoë O'Brien", "aliases": ["Zoe OBrien"], "type": "person",
     "description": "astronomer working for Acme Labs", "prior": 0.1},
    {"id": "C1", "name": "Springfield", "aliases": ["Springfield, Illinois"], "type": "city",
     "description": "city in Illinois", "prior": 0.5},
    {"id": "C2", "name": "Springfield", "aliases": ["Springfield, Oregon"], "type": "city",
     "description": "city in Oregon", "prior": 0.4},
    {"id": "C3", "name": "Paris", "aliases": ["City of Light"], "type": "city",
     "description": "capital of France", "prior": 0.9},
    {"id": "S1", "name": "Illinois", "aliases": ["IL"], "type": "state", "description": "state", "prior": 0.6},
    {"id": "S2", "name": "Oregon", "aliases": [], "type": "state", "description": "state", "prior": 0.5},
    {"id": "O1", "name": "Acme Labs", "aliases": ["Acme Laboratories"], "type": "organisation",
     "description": "research company", "prior": 0.3},
    {"id": "M1", "name": "May", "aliases": [], "type": "month", "description": "month", "prior": 0.1},
]


def write_compressed(path: Path, data: bytes) -> Path:
    """Write `data` to `path`, gzip- or zstd-compressed when the name ends in .gz or .zst."""
    if path.suffix == ".gz":
        import gzip

        data = gzip.compress(data)
    elif path.suffix == ".zst":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)
    return path
