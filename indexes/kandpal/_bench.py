"""`ltprobe bench import`: the import rate of an entity map in the released format."""

from __future__ import annotations

import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _sizes(n_entities: int, n_indices: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like array lengths (rank^-1, shuffled) summing to `n_indices`, at least 1 each."""
    weights = 1.0 / np.arange(1, n_entities + 1)
    sizes = np.maximum(1, np.floor(weights / weights.sum() * n_indices)).astype(np.int64)
    sizes[0] += max(0, n_indices - int(sizes.sum()))
    rng.shuffle(sizes)
    return sizes


def write_entity_map(path: Path, n_entities: int, n_indices: int, n_docs: int, seed: int = 0,
                     progress: bool = True) -> dict[str, Any]:
    """Write an entity map `.npz` as the released ones are (DBpedia URI -> int64 document
    indices, unsorted, with repeats), member by member so that memory stays small."""
    from entity_linking.logs import progress_bar

    rng = np.random.default_rng(seed)
    sizes = _sizes(n_entities, n_indices, rng)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for e in progress_bar(range(n_entities), desc="generate map", unit=" entities", enabled=progress):
            values = rng.integers(0, n_docs, size=int(sizes[e]), dtype=np.int64)
            if len(values) > 1:  # the released arrays repeat documents (one per mention)
                values[-1] = values[0]
            with archive.open(f"http://dbpedia.org/resource/Entity_{e}.npy", "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, values, allow_pickle=False)
    return {"n_indices": int(sizes.sum()), "bytes": path.stat().st_size}


def bench_import(n_entities: int = 1_000_000, n_indices: int = 200_000_000, n_docs: int | None = None,
                 seed: int = 0, folder: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Generate a map, import it in a child process (`ltprobe import kandpal`), check a sample
    of entities against numpy; return the rates and the import's peak resident memory."""
    from indexes._backends import open_index
    from indexes.kandpal._import import iter_entity_map

    n_docs = n_docs or max(1, n_indices // 20)
    own = folder is None
    work = Path(tempfile.mkdtemp(prefix="ltprobe-bench-import-")) if own else Path(folder)
    work.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        map_path = work / "entity_map.npz"
        generated = write_entity_map(map_path, n_entities, n_indices, n_docs, seed, progress)
        generate_s = time.perf_counter() - started
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "probe.cli", "import", "kandpal", "--entity-map", str(map_path),
                        "--out", str(work / "imported")], check=True, env=env)
        import_s = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # kB on Linux
        # check a sample of entities: document frequency and pair counts equal numpy's
        rng = np.random.default_rng(seed + 1)
        sample = set(rng.choice(n_entities, size=min(200, n_entities), replace=False).tolist())
        truth: dict[str, np.ndarray] = {}
        for e, (name, values) in enumerate(iter_entity_map(map_path)):
            if e in sample:
                truth[name] = np.unique(values)
        names = list(truth)
        with open_index(work / "imported" / "index") as index:
            dfs_ok = index.doc_freqs(names) == [len(truth[n]) for n in names]
            pairs = list(zip(names, names[1:] + names[:1]))
            expected = [len(np.intersect1d(truth[a], truth[b], assume_unique=True)) for a, b in pairs]
            pairs_ok = index.count_cooccurrence(pairs) == expected
            index_bytes = index.disk_bytes("all")
        result = {
            "n_entities": n_entities, "n_indices": generated["n_indices"], "n_docs": n_docs,
            "map_bytes": generated["bytes"], "index_bytes": index_bytes,
            "generate_s": round(generate_s, 2), "import_s": round(import_s, 2),
            "entities_per_s": round(n_entities / import_s, 1),
            "indices_per_s": round(generated["n_indices"] / import_s, 1),
            "map_mb_per_s": round(generated["bytes"] / 2**20 / import_s, 2),
            "import_peak_rss_mb": round(peak_mb, 1),
            "sample_checked": len(names), "counts_agree": bool(dfs_ok and pairs_ok),
        }
        logger.info(f"import of {n_entities:,} entities / {generated['n_indices']:,} indices: {import_s:.1f} s "
                    f"({result['entities_per_s']:,.0f} entities/s, {result['indices_per_s']:,.0f} indices/s), "
                    f"peak {peak_mb:,.0f} MB; sample agrees with numpy: {result['counts_agree']}")
        return result
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
