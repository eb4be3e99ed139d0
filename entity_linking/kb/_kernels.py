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

@_jit
def group_shares(group_off, group_mem, priors):
    """Each group member's prior share, as `Linker` computed it per group in Python: the
    member's prior over the group's total (summed in member order), floored at 1e-6 of the
    total; equal shares when the total is 0. Aligned with `group_mem`."""
    out = np.empty(group_mem.shape[0], np.float64)
    for g in range(group_off.shape[0] - 1):
        a = group_off[g]
        b = group_off[g + 1]
        total = 0.0
        for j in range(a, b):
            total += priors[group_mem[j]]
        if total > 0:
            floor = 1e-6 * total
            for j in range(a, b):
                out[j] = max(priors[group_mem[j]], floor) / total
        else:
            for j in range(a, b):
                out[j] = 1.0 / (b - a)
    return out

@_jit
def _window_tokens(text, a, b, tab, tab_start, tab_len, mask):
    """Put the words (runs of non-spaces) of `text[a:b]` into the open-addressing table
    (`tab`: hash | 1, 0 for an empty slot; where the word is in `text`), each once."""
    j = a
    while j < b:
        while j < b and text[j] == space:
            j += 1
        if j == b:
            break
        s = j
        h = offset0
        while j < b and text[j] != space:
            h = (h ^ np.uint64(text[j])) * prime
            j += 1
        h |= np.uint64(1)  # never 0: 0 marks an empty slot
        slot = mix(h) & mask
        while tab[slot] != 0:
            if tab[slot] == h and tab_len[slot] == j - s and same(text, tab_start[slot], text, s, j - s):
                break  # a repeated word: in once
            slot = (slot + np.uint64(1)) & mask
        if tab[slot] == 0:
            tab[slot] = h
            tab_start[slot] = s
            tab_len[slot] = j - s

@_jit
def contexts(text, ascii_only, starts, ends, groups, width, prior_weight, group_off, group_mem, group_prior,
             ctx_off, ctx_word, word_blob, word_off, word_weight):
    """What disambiguating each ambiguous mention needs, for all mentions of one text at once.

    `text` is the normalized text (UTF-8), mention `k` spans characters `starts[k]:ends[k]`
    and has the candidate group `groups[k]`. Returns `(off, candidates, priors, context)`:
    mention `k`'s candidates are `candidates[off[k]:off[k + 1]]` (entity indices), with
    `prior_weight * log(prior share)` and the context score of each: the summed weights of
    the candidate's context words (in word order, i.e. sorted) that are whole words of the
    text within `width` characters before or after the mention, exactly as `Linker` sums
    them in Python (`" word "` found in `" left right "`)."""
    return _context_rows(text, ascii_only, starts, ends, groups, starts.shape[0], width, prior_weight, group_off,
                         group_mem, group_prior, ctx_off, ctx_word, word_blob, word_off, word_weight)

@_jit
def _context_rows(text, ascii_only, starts, ends, groups, m, width, prior_weight, group_off, group_mem, group_prior,
                  ctx_off, ctx_word, word_blob, word_off, word_weight):
    """`contexts` of the first `m` mentions."""
    n = text.shape[0]
    if ascii_only:
        chars = n
        pos = np.empty(0, np.int64)
    else:
        chars = 0
        for b in range(n):
            if (text[b] & 0xC0) != 0x80:
                chars += 1
        pos = np.empty(chars + 1, np.int64)  # character -> byte offset
        c = 0
        for b in range(n):
            if (text[b] & 0xC0) != 0x80:
                pos[c] = b
                c += 1
        pos[chars] = n
    off = np.zeros(m + 1, np.int64)
    for k in range(m):
        g = groups[k]
        off[k + 1] = off[k] + group_off[g + 1] - group_off[g]
    total = off[m]
    candidates = np.empty(total, np.int64)
    priors = np.empty(total, np.float64)
    context = np.zeros(total, np.float64)
    size = 16
    while size < 2 * (min(width, chars) + 2):  # a window holds at most width + 1 words on each side
        size *= 2
    mask = np.uint64(size - 1)
    tab = np.zeros(size, np.uint64)
    tab_start = np.zeros(size, np.int64)
    tab_len = np.zeros(size, np.int64)
    for k in range(m):
        s = starts[k]
        e = ends[k]
        left = max(0, s - width)
        right = min(chars, e + width)
        if ascii_only:
            la, lb, ra, rb = left, s, e, right
        else:
            la, lb, ra, rb = pos[left], pos[s], pos[e], pos[right]
        tab[:] = 0
        _window_tokens(text, la, lb, tab, tab_start, tab_len, mask)
        _window_tokens(text, ra, rb, tab, tab_start, tab_len, mask)
        g = groups[k]
        at = off[k]
        for j in range(group_off[g], group_off[g + 1]):
            c = group_mem[j]
            candidates[at] = c
            priors[at] = prior_weight * group_prior[j]
            score = 0.0
            for x in range(ctx_off[c], ctx_off[c + 1]):
                w = ctx_word[x]
                ws = word_off[w]
                wl = word_off[w + 1] - ws
                h = fnv(word_blob, ws, ws + wl) | np.uint64(1)
                slot = mix(h) & mask
                while tab[slot] != 0:
                    if tab[slot] == h and tab_len[slot] == wl and same(word_blob, ws, text, tab_start[slot], wl):
                        score += word_weight[w]
                        break
                    slot = (slot + np.uint64(1)) & mask
            context[at] = score
            at += 1
    return off, candidates, priors, context

SHAPES_SEP = np.uint8(0x1E)  # see `entity_linking.kb._kb._encode_shapes`
SHAPE_SEP = np.uint8(0x1F)
# the bits of a character's entry in the `props` table (`entity_linking.kb._store.CharProps`)
KNOWN = np.int32(1 << 24)
PUNCT = np.int32(1 << 21)
LOWER = np.int32(1 << 22)
NOT_LOWER = np.int32(1 << 23)  # upper or title case: a span with it is not lower case
SPACE = np.int32(1 << 25)  # str.isspace
CHAR = np.int32((1 << 21) - 1)

@_jit
def _put_utf8(buf, n, c):
    """Write code point `c` as UTF-8 at `buf[n:]`; returns the new length."""
    if c < 0x80:
        buf[n] = c
        return n + 1
    if c < 0x800:
        buf[n] = 0xC0 | (c >> 6)
        buf[n + 1] = 0x80 | (c & 0x3F)
        return n + 2
    if c < 0x10000:
        buf[n] = 0xE0 | (c >> 12)
        buf[n + 1] = 0x80 | ((c >> 6) & 0x3F)
        buf[n + 2] = 0x80 | (c & 0x3F)
        return n + 3
    buf[n] = 0xF0 | (c >> 18)
    buf[n + 1] = 0x80 | ((c >> 12) & 0x3F)
    buf[n + 2] = 0x80 | ((c >> 6) & 0x3F)
    buf[n + 3] = 0x80 | (c & 0x3F)
    return n + 4

@_jit
def _punctuation_ok(orig, s, e, at, shape_off, shape_blob, props, buf):
    """Whether the punctuation of `orig[s:e]` (code points) is one of the shapes of punctuated
    key number `at` (`shape_blob[shape_off[at]:shape_off[at + 1]]`, UTF-8: shapes separated by
    0x1E, a shape's runs of punctuation by 0x1F), as `punctuation_shape` reads it (`props`)."""
    if at < 0:
        return False
    n = 0  # the span's shape, encoded, into buf
    inside = False
    for j in range(s, e):
        p = props[orig[j]]
        if p & PUNCT:
            if not inside and n > 0:
                buf[n] = SHAPE_SEP
                n += 1
            n = _put_utf8(buf, n, p & CHAR)
            inside = True
        else:
            inside = False
    a = shape_off[at]
    end = shape_off[at + 1]
    while True:  # each shape of the key
        b = a
        while b < end and shape_blob[b] != SHAPES_SEP:
            b += 1
        if b - a == n and same(shape_blob, a, buf, 0, n):
            return True
        if b >= end:
            return False
        a = b + 1

@_jit
def scan_resolve(orig, text, blob, off, values, rows, shape_keys, shape_off, shape_blob, props, min_chars, smart,
                 out, chosen, dropped, missing):
    """`scan` of a normalized text (`text`, UTF-8; `orig`: the text's code points), then the
    first rules of `Linker.resolve` on its spans: spans shorter than `min_chars` are left out,
    with `smart` an all-lower-case span of a cased key too, a punctuated span whose punctuation
    is not its key's, and of overlapping spans the longer wins (the earlier of equals).

    Fills `chosen` and `dropped` with rows `(start, end, entity index, or -1 - group for an
    ambiguous key)` in the order `resolve` makes them and returns their counts; returns
    (-1, 0) when `out` is too small, (-2, k) when `props` does not know the `k` characters
    now in `missing` (the caller fills them in and calls again)."""
    chars = orig.shape[0]
    k = 0
    for j in range(chars):
        if props[orig[j]] == 0:
            missing[k] = orig[j]
            k += 1
    if k:
        return -2, k
    count = scan(text, blob, off, values, rows, shape_keys, text.shape[0] == chars, out)
    if count < 0:
        return -1, 0
    buf = np.empty(4 * chars + 1, np.uint8)
    nc = 0
    nd = 0
    for i in range(count):
        s = out[i, 0]
        e = out[i, 1]
        value = out[i, 2]
        if e - s < min_chars:
            continue
        if smart and value & 1 and props[orig[s]] & LOWER:
            upper = False
            for j in range(s, e):
                if props[orig[j]] & NOT_LOWER:
                    upper = True
                    break
            if not upper:
                continue
        if value & PUNCTUATED and not _punctuation_ok(orig, s, e, out[i, 3], shape_off, shape_blob, props, buf):
            continue
        payload = value >> np.int64(14)  # PAYLOAD_SHIFT
        mention = -1 - (payload >> 1) if payload & 1 else payload >> 1
        pushed = True
        while nc > 0 and chosen[nc - 1, 1] > s:
            if e - s > chosen[nc - 1, 1] - chosen[nc - 1, 0]:
                nc -= 1
                dropped[nd, 0] = chosen[nc, 0]
                dropped[nd, 1] = chosen[nc, 1]
                dropped[nd, 2] = chosen[nc, 2]
                nd += 1
            else:
                dropped[nd, 0] = s
                dropped[nd, 1] = e
                dropped[nd, 2] = mention
                nd += 1
                pushed = False
                break
        if pushed:
            chosen[nc, 0] = s
            chosen[nc, 1] = e
            chosen[nc, 2] = mention
            nc += 1
    return nc, nd

@_jit
def link_spans(orig, text, blob, off, values, rows, shape_keys, shape_off, shape_blob, props, min_chars, smart,
               qualifiers, width, prior_weight, group_off, group_mem, group_prior, ctx_off, ctx_word, word_blob,
               word_off, word_weight, out, chosen, dropped, final, missing):
    """`scan_resolve`, then rule 2b of `Linker` (with `qualifiers`: in a kept span with a comma,
    what follows the comma is linked on its own, as `_add_qualifiers` does) and `contexts` of
    the ambiguous mentions, all in one call. Fills `final` with rows `(start, end, entity index
    or -1 - group)` in text order; returns `(count, off, candidates, priors, context)` of
    `contexts` for the rows with a group, in row order; `count` is -1 or -2 as `scan_resolve`
    returns them (then nothing else is filled)."""
    nc, nd = scan_resolve(orig, text, blob, off, values, rows, shape_keys, shape_off, shape_blob, props, min_chars,
                          smart, out, chosen, dropped, missing)
    if nc < 0:  # off[0]: how many characters `missing` lists
        return nc, np.full(1, nd, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.float64)
    chars = orig.shape[0]
    n = 0
    if not (qualifiers and nd > 0):
        for i in range(nc):
            final[n, 0] = chosen[i, 0]
            final[n, 1] = chosen[i, 1]
            final[n, 2] = chosen[i, 2]
            n += 1
    else:
        comma = -1  # the first comma at or after the current span's start (`chars` if none)
        found = np.empty(nd, np.int64)
        for i in range(nc):
            start = chosen[i, 0]
            end = chosen[i, 1]
            if comma < start:
                comma = start
                while comma < chars and orig[comma] != 44:
                    comma += 1
            k = 0
            if comma < end:
                for d in range(nd):
                    if dropped[d, 0] > comma and dropped[d, 1] <= end:
                        found[k] = d
                        k += 1
            if k == 0:
                final[n, 0] = start
                final[n, 1] = end
                final[n, 2] = chosen[i, 2]
                n += 1
                continue
            # the outer span keeps its entity but ends at the comma (trailing spaces stripped)
            stop = comma
            while stop > start and props[orig[stop - 1]] & SPACE:
                stop -= 1
            final[n, 0] = start
            final[n, 1] = stop
            final[n, 2] = chosen[i, 2]
            n += 1
            if k == 1:
                final[n, 0] = dropped[found[0], 0]
                final[n, 1] = dropped[found[0], 1]
                final[n, 2] = dropped[found[0], 2]
                n += 1
                continue
            # longest first (then the earlier start), kept when disjoint from those kept; in
            # text order (`_longest_disjoint`)
            keys = np.empty(k, np.int64)
            for j in range(k):
                d = found[j]
                keys[j] = (dropped[d, 0] - dropped[d, 1]) * (chars + 1) + dropped[d, 0]
            order = np.argsort(keys, kind="mergesort")
            picked = np.empty(k, np.int64)
            p = 0
            for j in range(k):
                d = found[order[j]]
                ok = True
                for q in range(p):
                    if not (dropped[d, 1] <= dropped[picked[q], 0] or dropped[d, 0] >= dropped[picked[q], 1]):
                        ok = False
                        break
                if ok:
                    picked[p] = d
                    p += 1
            starts = np.empty(p, np.int64)
            for q in range(p):
                starts[q] = dropped[picked[q], 0]
            for q in np.argsort(starts, kind="mergesort"):
                d = picked[q]
                final[n, 0] = dropped[d, 0]
                final[n, 1] = dropped[d, 1]
                final[n, 2] = dropped[d, 2]
                n += 1
    m = 0
    for i in range(n):
        if final[i, 2] < 0:
            m += 1
    starts = np.empty(m, np.int64)
    ends = np.empty(m, np.int64)
    groups = np.empty(m, np.int64)
    m = 0
    for i in range(n):
        if final[i, 2] < 0:
            starts[m] = final[i, 0]
            ends[m] = final[i, 1]
            groups[m] = -1 - final[i, 2]
            m += 1
    c_off, candidates, priors, context = _context_rows(text, text.shape[0] == chars, starts, ends, groups, m, width,
                                                       prior_weight, group_off, group_mem, group_prior, ctx_off,
                                                       ctx_word, word_blob, word_off, word_weight)
    return n, c_off, candidates, priors, context
