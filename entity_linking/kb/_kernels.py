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

@_jit
def prefix_table(blob, off, size):
    """The matcher's table over keys and their word prefixes: per slot the hash, a key that
    starts with the slot's string (`rep`, -1 empty), the string's length in bytes, the key
    equal to it (`full`, -1 when it is only a prefix) and whether a longer key extends it."""
    n = off.shape[0] - 1
    mask = np.uint64(size - 1)
    t_hash = np.zeros(size, np.uint64)
    t_rep = np.full(size, -1, np.int32)
    t_len = np.zeros(size, np.int32)
    t_full = np.full(size, -1, np.int32)
    t_ext = np.zeros(size, np.uint8)
    for k in range(n):  # the keys (unique)
        s = off[k]
        e = off[k + 1]
        h = fnv(blob, s, e)
        slot = mix(h) & mask
        while t_rep[slot] >= 0:
            slot = (slot + np.uint64(1)) & mask
        t_hash[slot] = h
        t_rep[slot] = k
        t_len[slot] = e - s
        t_full[slot] = k
    for k in range(n):  # their word prefixes: up to the end of each word but the last
        s = off[k]
        e = off[k + 1]
        h = offset0
        for j in range(s, e):
            b = blob[j]
            if b == space and j > s and blob[j - 1] != space:
                length = j - s
                slot = mix(h) & mask
                while True:
                    r = t_rep[slot]
                    if r < 0:
                        t_hash[slot] = h
                        t_rep[slot] = k
                        t_len[slot] = length
                        t_ext[slot] = 1
                        break
                    if t_hash[slot] == h and t_len[slot] == length and same(blob, off[r], blob, s, length):
                        t_ext[slot] = 1
                        break
                    slot = (slot + np.uint64(1)) & mask
            h = (h ^ np.uint64(b)) * prime
    return t_hash, t_rep, t_len, t_full, t_ext

@_jit
def scan(text, blob, off, values, t_hash, t_rep, t_len, t_full, t_ext, ascii_only, out):
    """Every span of the normalized UTF-8 `text` that starts and ends at word boundaries and
    is a key: rows `(start, end, value)` of `out` sorted by end, longer first (character
    offsets). Returns the number of rows, or -1 when `out` is too small."""
    n = text.shape[0]
    size = t_rep.shape[0]
    mask = np.uint64(size - 1)
    count = 0
    cap = out.shape[0]
    for s in range(n):
        if text[s] == space or (s > 0 and text[s - 1] != space):
            continue
        h = offset0
        j = s
        while j < n:
            while j < n and text[j] != space:
                h = (h ^ np.uint64(text[j])) * prime
                j += 1
            length = j - s
            slot = mix(h) & mask
            found = False
            for _ in range(size):
                r = t_rep[slot]
                if r < 0:
                    break
                if t_hash[slot] == h and t_len[slot] == length and same(blob, off[r], text, s, length):
                    found = True
                    break
                slot = (slot + np.uint64(1)) & mask
            if not found:
                break
            full = t_full[slot]
            if full >= 0:
                if count >= cap:
                    return -1
                out[count, 0] = s
                out[count, 1] = j
                out[count, 2] = values[full]
                count += 1
            if t_ext[slot] == 0:
                break
            while j < n and text[j] == space:
                h = (h ^ np.uint64(space)) * prime
                j += 1
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
def key_lookup(off, blob, t_hash, t_rep, t_len, t_full, query):
    """The key equal to `query`, or -1 (a prefix that is no key gives -1 too)."""
    size = t_rep.shape[0]
    mask = np.uint64(size - 1)
    n = query.shape[0]
    h = fnv(query, 0, n)
    slot = mix(h) & mask
    for _ in range(size):
        r = t_rep[slot]
        if r < 0:
            return -1
        if t_hash[slot] == h and t_len[slot] == n and same(blob, off[r], query, 0, n):
            return t_full[slot]
        slot = (slot + np.uint64(1)) & mask
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
