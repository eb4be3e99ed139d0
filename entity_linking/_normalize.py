"""Text normalization shared by alias keys, the fast path and the spaCy component.

Matching works on a *normalized* copy of the text that has exactly the same length as the
original, so a match's offsets are offsets into the original text with no mapping table:

- letters and digits are lower-cased (a character whose lower case is longer, such as "İ",
  is kept as it is, so the length never changes); combining marks count as letters;
- every other character (spaces, punctuation, apostrophes, hyphens, newlines) becomes a space.

An alias key is the normalized alias with spaces around it, and the text is searched with a
space added at both ends, so a key can only match whole words: "Lyon" never matches inside
"Lyonnais". Punctuation variants come from the alias side (see `alias_variants`):
"O'Brien" matches "O'Brien", "O’Brien", "O Brien" and "OBrien"; "St. Louis" matches
"St. Louis", "st louis" and "ST.LOUIS".
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES_AND_HYPHENS = re.compile(r"['\u2018\u2019\u02bc\u00b4`\-\u2010\u2011\u2012\u2013]")
_SPACES = re.compile(r" +")


def _ascii_table() -> bytes:
    table = bytearray(256)
    for b in range(256):
        c = chr(b)
        if b >= 128:
            table[b] = b  # never used: the table is only applied to ASCII text
        elif c.isalnum():
            table[b] = ord(c.lower())
        else:
            table[b] = 32
    return bytes(table)


_ASCII = _ascii_table()


class _CharMap(dict):
    """str.translate table for non-ASCII text, filled on first sight of each character."""

    def __missing__(self, code: int) -> str:
        c = chr(code)
        if c.isalnum() or unicodedata.category(c).startswith("M"):
            lower = c.lower()
            out = lower if len(lower) == 1 else c
        else:
            out = " "
        self[code] = out
        return out


_UNICODE = _CharMap()


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def normalize(text: str) -> str:
    """Lower-case letters and digits, turn everything else into a space; same length as `text`."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII).decode("ascii")
    # ASCII parts through the byte table (each non-ASCII character becomes one "?"), then the
    # non-ASCII runs through the per-character table: much faster than translating it all
    raw = text.encode("ascii", "replace")
    out = raw.translate(_ASCII).decode("ascii")
    pieces = []
    last = 0
    at = raw.find(b"?")
    while at >= 0:
        run = _NON_ASCII.match(text, at)
        if run is None:  # a "?" of the text itself
            at = raw.find(b"?", at + 1)
            continue
        pieces.append(out[last:at])
        pieces.append(run.group().translate(_UNICODE))
        last = run.end()
        at = raw.find(b"?", last)
    pieces.append(out[last:])
    return "".join(pieces)


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def alias_variants(alias: str) -> list[str]:
    """The normalized forms under which `alias` is matched (without the surrounding spaces).

    1. the normalized alias (NFC), punctuation as spaces: "St. Louis" -> "st  louis";
    2. the same with runs of spaces collapsed: "st louis" (matches "St Louis");
    3. apostrophes and hyphens deleted: "O'Brien" -> "obrien", "Jean-Luc" -> "jeanluc";
    4. the forms above without accents: "Zoë" -> "zoe";
    5. the decomposed (NFD) form, for texts that were never NFC-normalized.

    Returns an empty list when the alias has no letters or digits at all.
    """
    nfc = unicodedata.normalize("NFC", alias)
    base = [nfc, _APOSTROPHES_AND_HYPHENS.sub("", nfc)]
    if not nfc.isascii():
        base += [_strip_accents(b) for b in base]
    out: list[str] = []
    for form in base:
        spaced = normalize(form).strip()
        for v in (spaced, _SPACES.sub(" ", spaced)):
            if v and v not in out:
                out.append(v)
    if not nfc.isascii():
        nfd = normalize(unicodedata.normalize("NFD", nfc)).strip()
        if nfd and nfd not in out:
            out.append(nfd)
    return out


_PUNCT = re.compile(r"[^\w\s]+")
_SAME_PUNCT = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'",
                             "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-"})


def punctuation_shape(text: str) -> tuple[str, ...]:
    """The punctuation between the words of a name: "Springfield, Illinois" -> (",",). A span
    whose key came from punctuation matches only with its alias's shape (`entity_linking.kb`)."""
    return tuple(_PUNCT.findall(text.translate(_SAME_PUNCT)))


def is_cased(alias: str) -> bool:
    """Whether the alias has an upper-case letter (then an all-lower-case match is refused)."""
    return any(c.isupper() for c in alias)
