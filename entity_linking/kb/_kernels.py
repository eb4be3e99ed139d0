"""The numba kernels of `entity_linking.kb._store` (imported on first use: numba is heavy).

Compiled on first call and cached beside this module (numba's on-disk cache), so a process
that opens a knowledge base pays the compilation once per installation, not once per run.
"""

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True, boundscheck=False)
offset0 = np.uint64(0xCBF29CE484222325)
prime = np.uint64(0x100000001B3)
space = np.uint8(32)

@_jit
def mix(h):
    h = h ^ (h >> np.uint64(31))
    h = h * np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(29))

@_jit
def fnv(blob, start, end):
    h = offset0
    for j in range(start, end):
        h = (h ^ np.uint64(blob[j])) * prime
    return h

@_jit
def same(blob_a, a, blob_b, b, n):
    for j in range(n):
        if blob_a[a + j] != blob_b[b + j]:
            return False
    return True

@_jit
def dedupe(blob, off, size):
    """Unique strings of (blob, off): uid per item (first-seen order), the table (slot ->
    leader item, -1 empty) and slot hashes; `size` is the table size (a power of two)."""
    n = off.shape[0] - 1
    mask = np.uint64(size - 1)
    tab = np.full(size, -1, np.int64)
    tab_hash = np.zeros(size, np.uint64)
    tab_uid = np.zeros(size, np.int64)
    uid = np.empty(n, np.int64)
    leaders = np.empty(n, np.int64)
    count = 0
    for i in range(n):
        s = off[i]
        e = off[i + 1]
        h = fnv(blob, s, e)
        slot = mix(h) & mask
        while True:
            t = tab[slot]
            if t < 0:
                tab[slot] = i
                tab_hash[slot] = h
                tab_uid[slot] = count
                uid[i] = count
                leaders[count] = i
                count += 1
                break
            if tab_hash[slot] == h and off[t + 1] - off[t] == e - s and same(blob, off[t], blob, s, e - s):
                uid[i] = tab_uid[slot]
                break
            slot = (slot + np.uint64(1)) & mask
    return uid, leaders[:count].copy(), tab, tab_hash

@_jit
def lookup(blob, off, tab, tab_hash, query):
    """Index of the string equal to `query` (uint8 array), or -1."""
    size = tab.shape[0]
    mask = np.uint64(size - 1)
    n = query.shape[0]
    h = fnv(query, 0, n)
    slot = mix(h) & mask
    for _ in range(size):
        t = tab[slot]
        if t < 0:
            return -1
        if tab_hash[slot] == h and off[t + 1] - off[t] == n and same(blob, off[t], query, 0, n):
            return t
        slot = (slot + np.uint64(1)) & mask
    return -1

REP = np.uint64(0xFFFFFFFF)
LEN_MASK = np.uint64(0x3FFFFFFF)
FULL = np.uint64(1 << 62)
PUNCTUATED = np.int64(1 << 13)  # see `entity_linking.kb._kb._pack`
EXT = np.uint64(1 << 63)

@_jit
def prefix_table(blob, off, size):
    """The matcher's table over keys and their word prefixes, one row of two uint64 per slot
    (`rows[2 * slot]`, `rows[2 * slot + 1]`), so that a probe reads one cache line: the
    string's FNV-1a hash, then `info`: 0 for an empty slot, else bits 0-31 one more than a
    key that starts with the slot's string (`rep`), bits 32-61 the string's length in bytes,
    bit 62 set when the string is the key `rep` itself, bit 63 when a longer key extends it."""
    n = off.shape[0] - 1
    mask = np.uint64(size - 1)
    rows = np.zeros(2 * size, np.uint64)
    for k in range(n):  # the keys (unique)
        s = off[k]
        e = off[k + 1]
        h = fnv(blob, s, e)
        slot = mix(h) & mask
        while rows[2 * slot + 1] != 0:
            slot = (slot + np.uint64(1)) & mask
        rows[2 * slot] = h
        rows[2 * slot + 1] = np.uint64(k + 1) | (np.uint64(e - s) << np.uint64(32)) | FULL
    for k in range(n):  # their word prefixes: up to the end of each word but the last
        s = off[k]
        e = off[k + 1]
        h = offset0
        for j in range(s, e):
            b = blob[j]
            if b == space and j > s and blob[j - 1] != space:
                length = np.uint64(j - s)
                slot = mix(h) & mask
                while True:
                    info = rows[2 * slot + 1]
                    if info == 0:
                        rows[2 * slot] = h
                        rows[2 * slot + 1] = np.uint64(k + 1) | (length << np.uint64(32)) | EXT
                        break
                    if rows[2 * slot] == h and (info >> np.uint64(32)) & LEN_MASK == length \
                            and same(blob, off[(info & REP) - np.uint64(1)], blob, s, j - s):
                        rows[2 * slot + 1] = info | EXT
                        break
                    slot = (slot + np.uint64(1)) & mask
            h = (h ^ np.uint64(b)) * prime
    return rows

@_jit
def probe(rows, mask, h, length, blob, off, text, s):
    """The row of the string `text[s:s + length]` (hash `h`), or -1."""
    slot = mix(h) & mask
    ulen = np.uint64(length)
    for _ in range(rows.shape[0] // 2):  # bounded: a damaged file may have no empty slot
        info = rows[2 * slot + 1]
        if info == 0:
            return -1
        if rows[2 * slot] == h and (info >> np.uint64(32)) & LEN_MASK == ulen \
                and same(blob, off[(info & REP) - np.uint64(1)], text, s, length):
            return np.int64(slot)
        slot = (slot + np.uint64(1)) & mask
    return -1

@_jit
def scan(text, blob, off, values, rows, shape_keys, ascii_only, out):
    """Every span of the normalized UTF-8 `text` that starts and ends at word boundaries and
    is a key: rows `(start, end, value, shape)` of `out` sorted by end, longer first
    (character offsets); `shape` is the key's position in the sorted `shape_keys` (the keys
    with punctuation shapes), -1 when it has none. Returns the number of rows, or -1 when
    `out` is too small."""
    n = text.shape[0]
    mask = np.uint64(rows.shape[0] // 2 - 1)
    # first the hash of each word, and a read of its slot in a loop without dependencies
    # between words, so that the processor overlaps the cache misses of a large table (the
    # scan below then finds the rows in cache)
    starts = np.empty(n // 2 + 1, np.int64)
    ends = np.empty(n // 2 + 1, np.int64)
    hashes = np.empty(n // 2 + 1, np.uint64)
    words = 0
    j = 0
    while j < n:
        while j < n and text[j] == space:
            j += 1
        if j == n:
            break
        starts[words] = j
        h = offset0
        while j < n and text[j] != space:
            h = (h ^ np.uint64(text[j])) * prime
            j += 1
        ends[words] = j
        hashes[words] = h
        words += 1
    home = np.empty(words, np.uint64)
    for w in range(words):
        home[w] = rows[2 * (mix(hashes[w]) & mask) + 1]
    # the same for what checking a word found in its home slot reads: the key's offset, then
    # its first byte and value
    key_at = np.empty(words, np.int64)
    for w in range(words):
        info = home[w]
        key_at[w] = off[(info & REP) - np.uint64(1)] if info != 0 else -1
    for w in range(words):
        if key_at[w] >= 0:
            key_at[w] = blob[key_at[w]] + values[(home[w] & REP) - np.uint64(1)]
    count = 0
    cap = out.shape[0]
    for w in range(words):
        if home[w] == 0:  # an empty home slot: no key starts with this word
            continue
        s = starts[w]
        j = ends[w]
        h = hashes[w]
        while True:
            slot = probe(rows, mask, h, j - s, blob, off, text, s)
            if slot < 0:
                break
            info = rows[2 * slot + 1]
            if info & FULL:
                if count >= cap:
                    return -1
                out[count, 0] = s
                out[count, 1] = j
                k = np.int64((info & REP) - np.uint64(1))
                out[count, 2] = values[k]
                out[count, 3] = k
                count += 1
            if not info & EXT:
                break
            while j < n and text[j] == space:
                h = (h ^ np.uint64(space)) * prime
                j += 1
            if j == n:
                break
            while j < n and text[j] != space:
                h = (h ^ np.uint64(text[j])) * prime
                j += 1
    n_shapes = shape_keys.shape[0]
    for i in range(count):
        k = out[i, 3]
        at = np.searchsorted(shape_keys, k) if out[i, 2] & PUNCTUATED else n_shapes
        out[i, 3] = at if at < n_shapes and shape_keys[at] == k else -1
    if count > 1:
        order = np.argsort(out[:count, 1] * (n + 1) + out[:count, 0])
        out[:count] = out[order]
    if not ascii_only and count:
        chars = np.empty(n + 1, np.int64)
        c = 0
        for b in range(n):
            chars[b] = c
            if (text[b] & 0xC0) != 0x80:
                c += 1
        chars[n] = c
        for i in range(count):
            out[i, 0] = chars[out[i, 0]]
            out[i, 1] = chars[out[i, 1]]
    return count

@_jit
def key_lookup(off, blob, rows, query):
    """The key equal to `query`, or -1 (a prefix that is no key gives -1 too)."""
    n = query.shape[0]
    slot = probe(rows, np.uint64(rows.shape[0] // 2 - 1), fnv(query, 0, n), n, blob, off, query, 0)
    if slot < 0:
        return -1
    info = rows[2 * slot + 1]
    return np.int64((info & REP) - np.uint64(1)) if info & FULL else -1

@_jit
def check_rows(rows, off):
    """The first slot of `rows` (see `prefix_table`) that names no key of `off` or whose
    string is longer than its key (a full key's: not exactly as long), or -1."""
    n = np.uint64(off.shape[0] - 1)
    for slot in range(rows.shape[0] // 2):
        info = rows[2 * slot + 1]
        if info == 0:
            continue
        rep = info & REP
        if rep == 0 or rep > n:
            return slot
        key_len = np.uint64(off[rep] - off[rep - np.uint64(1)])
        length = (info >> np.uint64(32)) & LEN_MASK
        if length > key_len or (info & FULL and length != key_len):
            return slot
    return -1

@_jit
def gather(blob, off, idx):
    """The strings `idx` of (blob, off) as a new (blob, off)."""
    n = idx.shape[0]
    new_off = np.zeros(n + 1, np.int64)
    for i in range(n):
        new_off[i + 1] = new_off[i] + off[idx[i] + 1] - off[idx[i]]
    new_blob = np.empty(new_off[n], np.uint8)
    for i in range(n):
        s = off[idx[i]]
        new_blob[new_off[i]:new_off[i + 1]] = blob[s:s + new_off[i + 1] - new_off[i]]
    return new_blob, new_off

@_jit
def char_lengths(blob, off):
    n = off.shape[0] - 1
    out = np.empty(n, np.int64)
    for k in range(n):
        c = 0
        for j in range(off[k], off[k + 1]):
            if (blob[j] & 0xC0) != 0x80:
                c += 1
        out[k] = c
    return out
