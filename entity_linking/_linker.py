"""Linking text to knowledge-base entities: candidates from aliases, then disambiguation.

Two ways to find candidate spans share one disambiguation (`Linker.resolve`), so they give
the same links:

- the fast path (`Linker.link`, `Linker.link_many`): one pass of the alias matcher over the
  normalized text (see `entity_linking._normalize` and `entity_linking.kb._store`), no tokenizer;
  with a `KnowledgeBase` its rules up to the choice among candidates run in the same kernel
  call (`KnowledgeBase.link_spans`, the same results as `resolve`);
- the spaCy component (`entity_linking._spacy`, `nlp.add_pipe("ltprobe_linker")`): a
  `PhraseMatcher` over the pipeline's tokens.

Rules, in order:

1. **Candidates** are spans whose normalized text is a normalized alias variant and that
   start and end at word boundaries (letters, digits and combining marks are word characters).
   Matching ignores case and punctuation variants, except that with `case="smart"` (default)
   an all-lower-case span does not match an alias that is only ever written with capitals
   ("may" is not "May", "MAY" is). Spans shorter than `min_chars` are ignored. A span that
   matches an alias with punctuation ("Springfield, Illinois") only counts when its
   punctuation is the alias's ("Springfield. Illinois" is two sentences, not that alias).
2. **Longest match wins**: overlapping candidates are resolved in favour of the longer span
   ("New York City" over "New York" and "York"); equal lengths keep the earlier span.
   With `link_qualifiers` (default), a winning span with a comma also links what follows
   the comma on its own: "Springfield, Illinois" links "Springfield" to the city that the
   whole alias names and "Illinois" to the state, as the controlled world's gold links and
   Wikipedia-style names expect.
3. **Disambiguation** of a span whose alias belongs to several entities: each candidate
   entity gets a weight `prior_share ** prior_weight * exp(context_weight * context +
   coherence_weight * coherent)`, where `prior_share` is its prior over the candidates'
   priors, `context` is the summed weight (inverse document frequency over the knowledge
   base) of the words of its type and description found within `context_chars` characters
   on either side of the span, and `coherent` is 1 when the same entity is linked elsewhere
   in the text (by an unambiguous or a confident mention). The best candidate wins; its
   score is its share of the candidates' total weight (1.0 for an unambiguous alias).
   **Ties** (weights equal to within 1e-9, e.g. two people of the same name with no prior and
   no context) go to the smallest entity id: not to the knowledge base's order, nor to the
   order in which a process happens to sum context words, so question linking and corpus
   linking (other processes, other builds of the same knowledge base) break a tie the same way.
4. **NIL**: a span whose best score is below `nil_threshold` is not linked.

Question linking (`Linker.link_question`, used by `entity_linking.link_qa`) resolves the
question exactly as above (same context window, same ties) and then:

5. keeps *every* candidate of an ambiguous mention whose score is at least `nil_threshold`
   (`question_candidates`, default on): "Where was John Smith born?" names one of two John
   Smiths, and the answer would tell which; counting takes the maximum over (question entity,
   answer entity) pairs, so the candidate that co-occurs with the answer is the one counted;
6. leaves out common nouns (`question_lowercase`, default off): a span written without any
   upper-case letter ("city", "film", "year" as Wikidata's lower-case labels; in a question
   written all in lower case, as Natural Questions' are, only a span that matches a lower-case
   alias, since the text's case then says nothing), and class items
   (`question_classes`, default off): entities whose id is another entity's `type` (Wikidata's
   "instance of" classes such as Q515 city). Both would make the maximum over pairs count the
   documents of a generic concept. Spans of digits only ("1984", "2003") are kept.

The defaults were chosen by `ltprobe bench qa-link` on Mintaka's gold question entities
(docs/benchmarks.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import pairwise
from dataclasses import dataclass

from entity_linking._normalize import normalize
from entity_linking.kb import PAYLOAD_SHIFT, PUNCTUATED, KnowledgeBase


NIL_THRESHOLD = 0.2
"""Default `nil_threshold` (chosen by `ltprobe bench qa-link` on real data, docs/benchmarks.md)."""


@dataclass(slots=True)
class Mention:
    """A linked span of text."""

    start: int
    """Offset of the first character in the text (Python string index)."""
    end: int
    """Offset just past the last character."""
    text: str
    """The span as written in the text."""
    kb_id: str
    """Id of the linked entity."""
    score: float
    """Share of the chosen entity in the candidates' weight: 1.0 for an unambiguous alias."""
    candidates: tuple[tuple[str, float], ...] = ()
    """`link_question` only: every candidate `(id, score)` at or above the NIL threshold, best
    first (the chosen entity is the first); empty from `link`."""


@dataclass(slots=True, frozen=True)
class _Group:
    """What disambiguating an ambiguous alias needs, computed once per alias group."""

    candidates: tuple[int, ...]
    """Entity indices of the candidates."""
    priors: tuple[float, ...]
    """`prior_weight * log(prior share)` of each candidate."""
    words: tuple[str, ...]
    """The candidates' context words (each once), padded as `" word "`."""
    weights: tuple[tuple[tuple[int, float], ...], ...]
    """Each candidate's context words as `(index into words, weight)`."""


class Linker:
    """Links text to entities of a `KnowledgeBase`; see the module docstring for the rules.

    Options (all keyword): `context_chars` (250), `context_weight` (1.0), `prior_weight`
    (1.0), `coherence_weight` (2.0), `nil_threshold` (NIL_THRESHOLD: a mention whose best
    candidate has a lower score is not linked), `case` ("smart" or "insensitive"), `min_chars`
    (2), `link_qualifiers` (True); for question linking: `question_candidates` (True),
    `question_lowercase` (False), `question_classes` (False).
    """

    def __init__(self, kb: KnowledgeBase, *, context_chars: int = 250, context_weight: float = 1.0,
                 prior_weight: float = 1.0, coherence_weight: float = 2.0, nil_threshold: float = NIL_THRESHOLD,
                 case: str = "smart", min_chars: int = 2, link_qualifiers: bool = True,
                 question_candidates: bool = True, question_lowercase: bool = False,
                 question_classes: bool = False):
        if case not in ("smart", "insensitive"):
            raise ValueError(f"case must be 'smart' or 'insensitive', not {case!r}")
        if not 0.0 <= nil_threshold <= 1.0:
            raise ValueError(f"nil_threshold must be within [0, 1], not {nil_threshold!r}")
        self.kb = kb
        self.context_chars = int(context_chars)
        self.context_weight = float(context_weight)
        self.prior_weight = float(prior_weight)
        self.coherence_weight = float(coherence_weight)
        self.nil_threshold = float(nil_threshold)
        self.case = case
        self.min_chars = int(min_chars)
        self.link_qualifiers = bool(link_qualifiers)
        self.question_candidates = bool(question_candidates)
        self.question_lowercase = bool(question_lowercase)
        self.question_classes = bool(question_classes)
        self._classes: frozenset[int] | None = None
        self._matcher = kb.matcher
        # a loaded folder's ids are decoded from the memory map: keep the recent ones as strings
        self._ids = kb.ids if isinstance(kb.ids, list) else _IdCache(kb.ids)
        # candidates, priors and context of all ambiguous mentions of a text in one kernel call
        # (the flat arrays of `KnowledgeBase`); format 1's knowledge base has none, it goes
        # through `_table`
        self._contexts = getattr(kb, "contexts", None)
        # the scan and the rules up to disambiguation in one kernel (format 1's has none)
        self._link_spans = getattr(kb, "link_spans", None)
        self._tables: dict[int, _Group] = {}

    def options(self) -> dict:
        """The options as a dict (for manifests and the spaCy component's config)."""
        return {"context_chars": self.context_chars, "context_weight": self.context_weight,
                "prior_weight": self.prior_weight, "coherence_weight": self.coherence_weight,
                "nil_threshold": self.nil_threshold, "case": self.case, "min_chars": self.min_chars,
                "link_qualifiers": self.link_qualifiers, "question_candidates": self.question_candidates,
                "question_lowercase": self.question_lowercase, "question_classes": self.question_classes}

    # -- public -----------------------------------------------------------------------------

    def link(self, text: str) -> list[Mention]:
        """Link one text; mentions in text order."""
        norm = normalize(text)
        ids = self._ids
        return [Mention(s, e, text[s:e], ids[i], score) for s, e, i, score in self._resolve_text(text, norm)]

    def link_question(self, text: str) -> list[Mention]:
        """Link a question (rules 5-6 of the module docstring): the mentions of `link`, less
        common nouns and class items unless the options keep them, each with `candidates`: every
        candidate at or above the NIL threshold for an ambiguous mention (only the chosen one
        with `question_candidates=False`)."""
        norm = normalize(text)
        ids = self._ids
        shares: dict[tuple[int, int], list[tuple[int, float]]] = {}
        out = []
        classes = None if self.question_classes else self.class_items()
        # a question with capitals says which spans are names; an all-lower-case one ("who won
        # the super bowl", NQ's style) does not: there only a lower-case alias makes a common noun
        cased_text = any(c.isupper() for c in text)
        for s, e, i, score in self._resolve_text(text, norm, shares):
            span = text[s:e]
            if not self.question_lowercase and _lower_case(span) \
                    and (cased_text or not (self.key_value(span) or 0) & 1):
                continue
            if classes and i in classes:
                continue
            kept = [(i, score)]
            if self.question_candidates and (s, e) in shares:
                kept += [(c, x) for c, x in shares[(s, e)] if c != i and x >= self.nil_threshold
                         and not (classes and c in classes)]
            out.append(Mention(s, e, span, ids[i], score, tuple((ids[c], x) for c, x in kept)))
        return out

    def class_items(self) -> frozenset[int]:
        """Indices of the entities whose id is the `type` of some entity (class items, such as
        Wikidata's Q515 "city" when entities carry their "instance of" as type)."""
        if self._classes is None:
            kb = self.kb
            index = kb.index
            found = set()
            for t in set(kb.types):
                if t:
                    i = index.get(t)
                    if i is not None:
                        found.add(int(i))
            self._classes = frozenset(found)
        return self._classes

    def link_many(self, texts: Iterable[str]) -> list[list[Mention]]:
        """Link each text (the fast path; no tokenizer)."""
        return [self.link(text) for text in texts]

    def link_ids(self, text: str) -> list[str]:
        """The set of linked entity ids of a text, in order of first mention (what corpus
        linking stores per document)."""
        norm = normalize(text)
        ids = self._ids
        return [ids[i] for i in dict.fromkeys([m[2] for m in self._resolve_text(text, norm)])]

    # -- candidates (fast path) -------------------------------------------------------------

    def find(self, norm: str) -> list[tuple[int, int, int]]:
        """Candidate spans `(start, end, value)` of a normalized text, ordered by end (longer
        spans first among equal ends): every span that starts and ends at a word boundary and
        is an alias key. `value` is the key's packed value (see `_kb._pack`)."""
        return self._matcher.find(norm)

    def key_value(self, span_text: str) -> int | None:
        """The packed value for a span's text, or None when it is no alias (spaCy path)."""
        return self._matcher.get(normalize(span_text).strip())

    def _resolve_text(self, text: str, norm: str, shares: dict | None = None) -> list[tuple[int, int, int, float]]:
        """`resolve(text, norm, find(norm))`, with the scan and the rules up to disambiguation in
        one kernel when the knowledge base has it (`KnowledgeBase.link_spans`): the same results."""
        fast = self._link_spans
        if fast is None:
            return self.resolve(text, norm, self.find(norm), shares=shares)
        found, off, candidates, priors, context = fast(text, norm, self.min_chars, self.case == "smart",
                                                       self.link_qualifiers, self.context_chars, self.prior_weight)
        out = [(s, e, i, 1.0) if i >= 0 else (s, e, i, 0.0) for s, e, i in found]
        if len(off) > 1:
            rows = [(candidates[a:b], priors[a:b], context[a:b]) for a, b in pairwise(off)]
            self._disambiguate(norm, out, [k for k, m in enumerate(out) if m[2] < 0], shares, rows)
        threshold = self.nil_threshold
        if threshold > 0.0:
            out = [m for m in out if m[3] >= threshold]
        return out

    # -- disambiguation (shared) ------------------------------------------------------------

    def resolve(self, text: str, norm: str, spans: list[tuple[int, int, int]], *,
                shares: dict | None = None) -> list[tuple[int, int, int, float]]:
        """Apply rules 1-4 to candidate spans `(start, end, value)` sorted by end; returns
        `(start, end, entity_index, score)` in text order. `shares`, when given, receives
        `{(start, end): [(entity_index, score), ...]}` (best first) for each ambiguous mention."""
        if not spans:
            return []
        smart = self.case == "smart"
        min_chars = self.min_chars
        kb = self.kb
        # mentions `(start, end, entity_index, 1.0)`, or `(start, end, -1 - group, 0.0)` for an
        # alias of several entities until disambiguation
        chosen: list[tuple[int, int, int, float]] = []
        dropped: list[tuple[int, int, int, float]] = []
        for start, end, value in spans:
            if end - start < min_chars:
                continue
            if smart and value & 1 and text[start].islower() and text[start:end].islower():
                continue
            if value & PUNCTUATED and not kb.punctuation_ok(text[start:end], norm[start:end]):
                continue
            payload = value >> PAYLOAD_SHIFT
            mention = (start, end, -1 - (payload >> 1), 0.0) if payload & 1 else (start, end, payload >> 1, 1.0)
            # longest match wins; a new span can only overlap spans at the top of the stack
            while chosen and chosen[-1][1] > start:
                top = chosen[-1]
                if end - start > top[1] - top[0]:
                    dropped.append(chosen.pop())
                else:
                    dropped.append(mention)
                    break
            else:
                chosen.append(mention)
        return self._finish(norm, text, chosen, dropped, shares)

    def _finish(self, norm: str, text: str, chosen: list, dropped: list, shares: dict | None) -> list:
        """The rules after the longest match: qualifiers, disambiguation, NIL."""
        out = _add_qualifiers(text, chosen, dropped) if dropped and self.link_qualifiers else chosen
        ambiguous = [k for k, m in enumerate(out) if m[2] < 0]
        if ambiguous:
            self._disambiguate(norm, out, ambiguous, shares)
        threshold = self.nil_threshold
        if threshold > 0.0:
            out = [m for m in out if m[3] >= threshold]
        return out

    def _disambiguate(self, norm: str, out: list, ambiguous: list[int], shares: dict | None = None,
                      rows: list | None = None) -> None:
        """Rule 3 for the mentions `out[k]` of `ambiguous`; `rows`, when given, holds their
        candidates, prior terms and context scores (else computed here)."""
        width = self.context_chars
        # per ambiguous mention: its candidates, their prior terms and context scores
        if rows is None and self._contexts is not None:
            off, candidates, priors, context = self._contexts(
                norm, [out[k][0] for k in ambiguous], [out[k][1] for k in ambiguous],
                [-1 - out[k][2] for k in ambiguous], width, self.prior_weight)
            off, candidates, priors, context = off.tolist(), candidates.tolist(), priors.tolist(), context.tolist()
            rows = [(candidates[a:b], priors[a:b], context[a:b]) for a, b in pairwise(off)]
        elif rows is None:
            rows = []
            for k in ambiguous:
                start, end, group, _ = out[k]
                table = self._table(-1 - group)
                # a context word counts when it is a whole word within `width` characters on
                # either side: " word " is in this string
                window = f" {norm[max(0, start - width):start]} {norm[end:end + width]} "
                present = [word in window for word in table.words]
                context = []
                for weights in table.weights:
                    total = 0.0
                    for j, weight in weights:
                        if present[j]:
                            total += weight
                    context.append(total)
                rows.append((table.candidates, table.priors, context))
        provisional = [self._choose(candidates, priors, context, (False,) * len(context))
                       for candidates, priors, context in rows]
        # other mentions' entities: unambiguous ones, and ambiguous ones that context decided
        linked: dict[int, int] = {}
        for _, _, i, _ in out:
            if i >= 0:
                linked[i] = linked.get(i, 0) + 1
        for best, share, _ in provisional:
            if share >= 0.9:
                linked[best] = linked.get(best, 0) + 1
        for k, (candidates, priors, context), (best, share, logs) in zip(ambiguous, rows, provisional):
            own = best if share >= 0.9 else None
            coherent = [linked.get(c, 0) - (c == own) > 0 for c in candidates]
            if True in coherent:  # else no coherence evidence: the provisional choice stands
                best, share, logs = self._choose(candidates, priors, context, coherent)
            start, end, _, _ = out[k]
            out[k] = (start, end, best, share)
            if shares is not None:
                top = max(logs)
                total = sum([math.exp(x - top) for x in logs])
                ranked = sorted(((math.exp(x - top) / total, c) for c, x in zip(candidates, logs)
                                 if c != best), key=lambda p: (-p[0], self._ids[p[1]]))
                shares[(start, end)] = [(best, share)] + [(c, x) for x, c in ranked]

    def _choose(self, candidates, priors, context: list[float], coherent) -> tuple[int, float, list[float]]:
        """The best of `candidates` (of equals, the smallest id), its share of the candidates'
        weight, and every candidate's log weight."""
        bonus = self.coherence_weight
        context_weight = self.context_weight
        logs = [prior + context_weight * ctx + (bonus if c else 0.0)
                for prior, ctx, c in zip(priors, context, coherent)]
        top = max(logs)
        at = logs.index(top)
        best = candidates[at]
        tolerance = 1e-9 * max(1.0, abs(top))
        tied = [c for c, x in zip(candidates, logs) if top - x <= tolerance]
        if len(tied) > 1:  # a tie: the smallest id, whatever the KB's order or the sums' rounding
            ids = self._ids
            best = min(tied, key=lambda c: ids[c])
        return best, 1.0 / sum([math.exp(x - top) for x in logs]), logs

    def _table(self, group: int) -> _Group:
        """The candidates of an ambiguous alias group with their prior terms and context words
        (computed on first sight of the group)."""
        table = self._tables.get(group)
        if table is None:
            kb = self.kb
            candidates = kb._group(group)
            priors = kb.priors
            # a loaded folder's priors are a memory-mapped array: one gather, Python floats
            priors = priors[list(candidates)].tolist() if hasattr(priors, "take") else [priors[c] for c in candidates]
            total = sum(priors)
            if total > 0:
                floor = 1e-6 * total
                shares = [max(p, floor) / total for p in priors]
            else:
                shares = [1.0 / len(candidates)] * len(candidates)
            index: dict[str, int] = {}
            # words sorted: the same summation order in every process (sets of str are not)
            weights = tuple(tuple((index.setdefault(f" {w} ", len(index)), x)
                                  for w, x in sorted(kb.context_words(c).items())) for c in candidates)
            table = _Group(candidates, tuple(self.prior_weight * math.log(s) for s in shares), tuple(index), weights)
            if len(self._tables) >= 100_000:
                self._tables.clear()
            self._tables[group] = table
        return table


def _lower_case(span: str) -> bool:
    """A span written without an upper-case letter but with a lower-case one ("city", "lb")."""
    return not any(c.isupper() for c in span) and any(c.islower() for c in span)


class _IdCache(dict):
    """Entity index -> id string, filled from a memory-mapped column on first use (a dict
    lookup on a hit, as fast as the list of an in-memory knowledge base); bounded."""

    def __init__(self, column):
        super().__init__()
        self.column = column
        self._get = getattr(column, "get_unchecked", column.__getitem__)

    def __missing__(self, i: int) -> str:
        if len(self) >= 200_000:
            self.clear()
        value = self[i] = self._get(i)
        return value


def _add_qualifiers(text: str, chosen: list[tuple], dropped: list[tuple]) -> list[tuple]:
    """Rule 2b: in a span such as "Springfield, Illinois", also link what follows the comma."""
    out = []
    comma = -1  # the first comma at or after the current span's start (len(text) if none)
    for mention in chosen:
        start, end = mention[0], mention[1]
        if comma < start:
            comma = text.find(",", start)
            if comma < 0:
                comma = len(text)
        if comma < end:
            found = [d for d in dropped if d[0] > comma and d[1] <= end]
            if found:
                # the outer span keeps its entity but ends at the comma, so spans stay disjoint
                # (doc.ents)
                out.append((start, start + len(text[start:comma].rstrip()), mention[2], mention[3]))
                out += found if len(found) == 1 else _longest_disjoint(found)
                continue
        out.append(mention)
    return out


def _longest_disjoint(spans: list[tuple]) -> list[tuple]:
    """Greedy longest-first selection of non-overlapping spans, returned in text order."""
    picked: list[tuple] = []
    for span in sorted(spans, key=lambda s: (s[0] - s[1], s[0])):
        if all(span[1] <= p[0] or span[0] >= p[1] for p in picked):
            picked.append(span)
    picked.sort()
    return picked
