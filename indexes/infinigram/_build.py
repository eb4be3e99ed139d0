"""Building small local infini-gram indexes, a generated phrase corpus, and `ltprobe bench count
--backend infini-gram`.

`build_infinigram_index` runs the infini-gram package's own indexer (`python -m
infini_gram.indexing`) on a JSONL corpus, byte-level (`u8`) by default, with document ids kept
as metadata. `phrase_corpus` generates documents that mention entities whose names have
accents, apostrophes, several words, shared names and names inside longer words, in several
casings, for the tests and the benchmark.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from entity_linking.io import InputError

logger = logging.getLogger(__name__)


def build_infinigram_index(corpus: str | os.PathLike, out: str | os.PathLike, *, token_dtype: str = "u8",
                           tokenizer: str | None = None, cpus: int = 1, mem_gb: int = 2,
                           quiet: bool = True) -> Path:
    """Index a JSONL corpus (`text`, other fields kept as metadata) into `out` with infini-gram's
    indexer; `tokenizer` is one of its names (gpt2, llama, olmo) or None for bytes."""
    corpus, out = Path(corpus).resolve(), Path(out).resolve()
    _check_out(out)
    if not corpus.exists():
        raise InputError(f"{corpus}: no such corpus file")
    data = Path(tempfile.mkdtemp(prefix="ig-data-", dir=out.parent if out.parent.exists() else None))
    try:
        os.symlink(corpus, data / (corpus.name if corpus.name.endswith((".jsonl", ".gz", ".zst")) else "corpus.jsonl"))
        out.mkdir(parents=True, exist_ok=True)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
        cmd = [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(data), "--save_dir", str(out),
               "--token_dtype", token_dtype, "--cpus", str(cpus), "--mem", str(mem_gb), "--add_metadata",
               "--ulimit", str(limit)]
        if tokenizer:
            cmd += ["--tokenizer", tokenizer]
        done = subprocess.run(cmd, capture_output=quiet, text=True)
        if done.returncode != 0 or not (out / "table.0").exists():
            tail = (done.stderr or done.stdout or "")[-400:] if quiet else ""
            raise InputError(f"infini-gram indexing of {corpus} failed: {tail.strip().splitlines()[-1:] or ''}")
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return out


def _check_out(out: Path) -> None:
    # infini-gram's indexer names the suffix array by replacing "tokenized" in the whole path
    if "tokenized" in str(out):
        raise InputError(f"{out}: infini-gram's indexer cannot write into a path containing "
                         "'tokenized'; choose another folder name")


_SPECIAL = [  # (entity id, names): accents, apostrophes, several words, shared and embedded names
    ("zoe", ["Zoë Dvořák", "Dvořák"]), ("sao", ["São Paulo"]), ("ada", ["Ada Lovelace", "Ada"]),
    ("obrien", ["O'Brien"]), ("brien", ["Brien"]), ("sartre", ["Jean-Paul Sartre"]),
    ("cat", ["cat"]), ("bank", ["Bank of America"]), ("paris_city", ["Paris"]),
    ("paris_hilton", ["Paris Hilton", "Paris"]), ("beijing", ["北京"]), ("muller", ["Müller"]),
]
_SYLLABLES = ["ka", "lo", "mé", "ri", "sü", "ta", "no", "vå", "ze", "pi", "dra", "ñu", "bel", "or", "qui"]
_FILLER = ("the of and in a to was is for on with as by at from his her that which category catalog "
           "cathedral adam brienne parisian bank america lovely paul jean").split()


def _entities(n: int, seed: int) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out = list(_SPECIAL)
    seen = {names[0] for _, names in out}
    while len(out) < n:
        first = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))).capitalize()
        last = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
        if rng.random() < 0.15:
            last = "D'" + last
        name = f"{first} {last}"
        if name not in seen:
            seen.add(name)
            out.append((f"e{len(out)}", [name] + ([last] if rng.random() < 0.2 else [])))
    return out[:n] if n >= len(_SPECIAL) else out


def _render(name: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.55:
        text = name
    elif r < 0.7:
        text = name.lower()
    elif r < 0.8:
        text = name.upper()
    elif r < 0.9:
        text = name + "'s"  # a possessive is another word: not an occurrence
    else:
        text = name.replace(" ", "-") if " " in name else "x" + name.lower()  # no longer the phrase
    return text


def phrase_corpus(n_docs: int, n_entities: int = 200, *, seed: int = 0, words: int = 20
                  ) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    """`n_docs` documents (`id`, `text`) and the knowledge base's names (entity id -> names)."""
    rng = random.Random(seed)
    entities = _entities(max(n_entities, len(_SPECIAL)), seed)
    weights = [1.0 / (i + 1) for i in range(len(entities))]  # Zipf-like popularity
    docs = []
    for d in range(n_docs):
        parts = [rng.choice(_FILLER) for _ in range(rng.randint(words // 2, words))]
        for _ in range(rng.randint(1, 4)):
            _, names = rng.choices(entities, weights)[0]
            parts.insert(rng.randint(0, len(parts)), _render(rng.choice(names), rng))
        text = " ".join(parts)
        if rng.random() < 0.3:
            text = text[:1].upper() + text[1:] + "."
        docs.append({"id": f"doc{d}", "text": text})
    return docs, {e: names for e, names in entities}


def write_jsonl_plain(path: Path, records: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def bench_infinigram(*, n_docs: int = 1_000_000, n_qa: int = 2000, n_entities: int | None = None,
                     seed: int = 0, folder: str | None = None, max_occurrences: int = 100_000,
                     max_check_docs: int = 10_000, max_diff_tokens: int = 100, cpus: int = 1,
                     mem_gb: int = 4) -> dict[str, Any]:
    """Generate a corpus, index it with infini-gram (bytes), and time document-level phrase
    counts of QA pairs against the engine's own window AND count of the same pairs."""
    from indexes.infinigram._index import InfiniGramIndex

    own = folder is None
    root = Path(folder or tempfile.mkdtemp(prefix="ltprobe-bench-ig-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        n_entities = n_entities or max(200, n_docs // 100)
        index_dir = root / f"index-{n_docs}-{n_entities}-{seed}"
        started = time.perf_counter()
        if (index_dir / "table.0").exists():  # a folder from an earlier run: its names only
            aliases = {e: names for e, names in _entities(max(n_entities, len(_SPECIAL)), seed)}
        else:
            docs, aliases = phrase_corpus(n_docs, n_entities, seed=seed)
            corpus = root / "corpus.jsonl"
            write_jsonl_plain(corpus, docs)
            del docs
            build_infinigram_index(corpus, index_dir, cpus=cpus, mem_gb=mem_gb)
        build_s = time.perf_counter() - started
        rng = random.Random(seed + 1)
        ids = list(aliases)
        weights = [1.0 / (i + 1) for i in range(len(ids))]
        pairs = [tuple(rng.choices(ids, weights, k=2)) for _ in range(n_qa)]
        pairs = [(a, b) for a, b in pairs if a != b]
        exact = InfiniGramIndex(index_dir, aliases, max_occurrences=max_occurrences,
                                max_check_docs=max_check_docs, approx_window=max_diff_tokens)
        t0, c0 = time.perf_counter(), time.process_time()
        counts = exact.count_cooccurrence(pairs)
        ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
        approx = sum(exact.pair_approx(p) for p in pairs)
        window = InfiniGramIndex(index_dir, aliases, max_diff_tokens=max_diff_tokens)
        t0, c0 = time.perf_counter(), time.process_time()
        engine = [window.window_count(a, b)[0] for a, b in pairs]
        engine_s, engine_cpu = time.perf_counter() - t0, time.process_time() - c0
        n = len(pairs)
        disk = sum(p.stat().st_size for p in index_dir.iterdir() if p.is_file())
        result = {
            "backend": "infini-gram", "docs": exact.n_docs, "entities": len(aliases), "qa_pairs": n,
            "index_bytes": disk, "build_s": round(build_s, 1),
            "counts_per_s": round(n / ours_s, 1) if ours_s else None,
            "ms_per_pair": round(1000 * ours_s / n, 3) if n else None,
            "counts_per_cpu_s": round(n / ours_cpu, 1) if ours_cpu else None,
            "engine_window_counts_per_s": round(n / engine_s, 1) if engine_s else None,
            "engine_window_counts_per_cpu_s": round(n / engine_cpu, 1) if engine_cpu else None,
            "engine_ms_per_pair": round(1000 * engine_s / n, 3) if n else None,
            "approx_pairs": approx, "max_occurrences": max_occurrences, "max_check_docs": max_check_docs,
            "max_diff_tokens": max_diff_tokens,
            "pairs_where_window_differs": sum(1 for x, y in zip(counts, engine) if x != y),
            "mean_doc_count": round(sum(counts) / n, 2) if n else None,
            "mean_window_count": round(sum(engine) / n, 2) if n else None,
        }
        exact.close()
        window.close()
        logger.info(f"infini-gram, {result['docs']} docs, {n} pairs: document-level {result['counts_per_s']} "
                    f"counts/s ({result['ms_per_pair']} ms/pair, {approx} approx); engine window AND "
                    f"{result['engine_window_counts_per_s']} counts/s ({result['engine_ms_per_pair']} ms/pair)")
        return result
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)


def build_tokenized_index(docs: list[dict[str, Any]], out: str | os.PathLike, tokenizer: str | os.PathLike,
                          *, cpus: int = 1, mem_gb: int = 2) -> Path:
    """Index documents tokenized with any local Hugging Face tokenizer (`u16` tokens), in
    infini-gram's layout: the token files are written here, and infini-gram's indexer (which
    only knows the gpt2/llama/olmo tokenizers by name) builds the suffix array over them."""
    import numpy as np
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    if len(tok) >= 65535:
        raise InputError(f"tokenizer {tokenizer} has {len(tok)} tokens; u16 indexes hold at most 65,534")
    out = Path(out).resolve()
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    offsets, meta_offsets, position, meta_position = [], [], 0, 0
    with open(out / "tokenized.0", "wb") as ds, open(out / "metadata.0", "w", encoding="utf-8") as meta:
        for line, doc in enumerate(docs):
            ids = tok.encode(doc["text"], add_special_tokens=False)
            data = b"\xff\xff" + np.asarray(ids, dtype=np.uint16).tobytes()
            ds.write(data)
            offsets.append(position)
            position += len(data)
            record = json.dumps({"path": "corpus.jsonl", "linenum": line,
                                 "metadata": {k: v for k, v in doc.items() if k != "text"}}) + "\n"
            meta.write(record)
            meta_offsets.append(meta_position)
            meta_position += len(record.encode("utf-8"))
    np.asarray(offsets, dtype=np.uint64).tofile(out / "offset.0")
    np.asarray(meta_offsets, dtype=np.uint64).tofile(out / "metaoff.0")
    empty = Path(tempfile.mkdtemp(prefix="ig-empty-"))
    try:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
        done = subprocess.run([sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(empty),
                               "--save_dir", str(out), "--token_dtype", "u16", "--cpus", str(cpus),
                               "--mem", str(mem_gb), "--ulimit", str(limit)], capture_output=True, text=True)
    finally:
        shutil.rmtree(empty, ignore_errors=True)
    if done.returncode != 0 or not (out / "table.0").exists():
        raise InputError(f"infini-gram suffix-array build in {out} failed: {(done.stderr or '')[-300:]}")
    return out
