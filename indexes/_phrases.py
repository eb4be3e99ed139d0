"""The one definition of an alias phrase occurring in a document, shared by every backend.

A document *contains a phrase* when the phrase's words occur in the document's words as a
consecutive run. Words are what Elasticsearch's `standard` analyzer (the default of a `text`
field) makes of a text, so that `match_phrase` on such a field, the embedded backend's scan
of its stored text and the infini-gram backend's check of its suffix-array hits count the same
documents:

- **Word boundaries** follow Unicode UAX #29 as Lucene's standard tokenizer applies it, for
  the cases that matter for names: a word is a run of letters, combining marks, digits and
  connector punctuation (`_`); `'`, `’`, `.`, `:` and `·` join two letters (`O'Brien`,
  `Ada's`, `U.S.A` and `x.org` are one word each, so the phrase "Ada" does not occur in
  "Ada's"); `.`, `,`, `;`, `'` and `’` join two digits (`3.14`, `1,000`); everything else
  (spaces, hyphens, other punctuation, symbols) separates words (`Jean-Paul` is the two words
  `jean paul`). Each Han ideograph and each Hiragana character is a word of its own. Scripts
  written without spaces that UAX #29 segments with dictionaries (Thai, Lao, Khmer, Myanmar)
  are runs of letters here, as in Lucene.
- **Case**: words are compared lowercased (`str.lower`); no accent folding (`Zoë` is not
  `Zoe`) and no Unicode normalization (a precomposed `é` is not `e` + U+0301). Known
  difference: dotted capital `İ` lowercases to two characters in Python and stays as it is
  in some Elasticsearch-compatible servers.
- No stemming and no stop words: `Bank of America` needs the `of`. An Elasticsearch field
  analyzed with a stop-word filter (ltprobe's own indices use `ltprobe_en`) treats a stop word
  in a name as any word, so phrase counts on such a field can be higher.

Engines that match raw bytes or tokens (infini-gram) look up one piece of the phrase (the one
with the fewest hits: a word on byte-level indexes, a whitespace-separated piece on subword
indexes, whose tokens only line up at such boundaries) as written, lowercased, UPPERCASED and
capitalized (`case_variants`), and keep a hit only where `phrase_at` finds the whole phrase
around it, word for word, whatever separates its other words. Not found there: a mention whose
looked-up piece is in another casing ("pARIS"), one whose words are more than about 60
characters apart, and on subword indexes a piece glued to other letters in the text (Han
names inside longer runs of Han characters, e.g. 北京 in 北京大学).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

_WORD_CHAR = r"(?:(?![\p{Han}\p{Hiragana}])[\p{L}\p{M}\p{N}\p{Pc}])"
_PATTERN = (
    r"[\p{Han}\p{Hiragana}]"
    rf"|{_WORD_CHAR}+(?:(?:(?<=[\p{{L}}\p{{M}}])[:·.'’](?=(?![\p{{Han}}\p{{Hiragana}}])\p{{L}})"
    rf"|(?<=\p{{N}})[.,;'’](?=\p{{N}})){_WORD_CHAR}+)*"
)


@lru_cache(maxsize=1)
def _regex() -> Any:
    import regex

    return regex.compile(_PATTERN)


def word_spans(text: str) -> list[tuple[int, int, str]]:
    """The words of `text` as `(start, end, lowercased word)`, character offsets into `text`."""
    return [(m.start(), m.end(), m.group().lower()) for m in _regex().finditer(text)]


def words(text: str) -> list[str]:
    """The lowercased words of `text` (the phrase definition above)."""
    return [m.group().lower() for m in _regex().finditer(text)]


def phrase_key(phrase: str) -> tuple[str, ...]:
    """The word sequence a phrase stands for (empty for a phrase without words)."""
    return tuple(words(phrase))


def case_variants(phrase: str) -> list[str]:
    """Spellings a case-sensitive engine is asked for: as written, lower, UPPER, Title Case,
    first letter capitalized (in that order, duplicates removed)."""
    variants = [phrase, phrase.lower(), phrase.upper(),
                " ".join(w[:1].upper() + w[1:] for w in phrase.split(" ")),
                phrase[:1].upper() + phrase[1:]]
    return [v for v in dict.fromkeys(variants) if v]


def occurs_at(text: str, start: int, end: int, key: Sequence[str]) -> bool:
    """Whether `text[start:end]` is, word for word, the phrase `key` with word boundaries at
    both ends (the check of an engine's raw substring hit)."""
    found = [(s, e, w) for s, e, w in word_spans(text) if e > start and s < end]
    return (len(found) == len(key) and bool(found) and found[0][0] == start
            and found[-1][1] == end and tuple(w for _, _, w in found) == tuple(key))


def phrase_at(text: str, start: int, end: int, key: Sequence[str], position: int) -> bool:
    """Whether `text[start:end]` is exactly whole words, the words of the phrase `key` from its
    `position`-th word on, within an occurrence of the whole phrase (the check of an engine's
    raw hit of part of a phrase, whatever separates the phrase's other words: spaces, hyphens,
    punctuation, line breaks)."""
    spans = word_spans(text)
    first_in = next((j for j, (s, _, _) in enumerate(spans) if s >= start), None)
    if first_in is None or spans[first_in][0] != start:
        return False
    if first_in > 0 and spans[first_in - 1][1] > start:  # a word running into the hit
        return False
    last_in = first_in
    while last_in + 1 < len(spans) and spans[last_in + 1][0] < end:
        last_in += 1
    if spans[last_in][1] != end:
        return False
    first = first_in - position
    return (first >= 0 and position + (last_in - first_in + 1) <= len(key)
            and first + len(key) <= len(spans)
            and tuple(w for _, _, w in spans[first:first + len(key)]) == tuple(key))


def surface_segments(phrase: str) -> list[tuple[int, str]]:
    """The phrase's whitespace-separated pieces as written, each with the number of the phrase
    word it starts at (pieces without words left out): what a subword-tokenized engine looks up."""
    out, seen = [], 0
    for piece in phrase.split():
        n = len(words(piece))
        if n:
            out.append((seen, piece))
        seen += n
    return out


def surface_words(phrase: str) -> list[str]:
    """The words of a phrase as written (not lowercased), for engines that match raw text."""
    return [m.group() for m in _regex().finditer(phrase)]


class PhraseMatcher:
    """Which of many keys (entities) occur in a text, each key standing for its phrases.

    `phrases`: key -> alias strings. `match(text)` returns the set of keys with at least one
    phrase in `text`, scanning the text's words once (a dictionary of word n-grams).
    """

    def __init__(self, phrases: dict[str, Iterable[str]]):
        self._table: dict[tuple[str, ...], list[str]] = {}
        self._lengths: set[int] = set()
        for key, names in phrases.items():
            for name in names:
                k = phrase_key(name)
                if k:
                    owners = self._table.setdefault(k, [])
                    if key not in owners:
                        owners.append(key)
                    self._lengths.add(len(k))
        self._order = sorted(self._lengths)

    def match(self, text: str) -> set[str]:
        if not self._table or not text:
            return set()
        ws = words(text)
        found: set[str] = set()
        table = self._table
        for i in range(len(ws)):
            for n in self._order:
                if i + n > len(ws):
                    break
                owners = table.get(tuple(ws[i:i + n]))
                if owners:
                    found.update(owners)
        return found
