"""The spaCy pipeline component `ltprobe_linker`.

    nlp = spacy.blank("en")            # or any trained pipeline the user has installed
    nlp.add_pipe("ltprobe_linker", config={"kb": "path/to/kb_dir_or_kb.jsonl"})
    doc = nlp("Zoë O'Brien was born in Lyon.")
    [(ent.text, ent.kb_id_, ent.label_) for ent in doc.ents]

Candidates come from a `PhraseMatcher` over the pipeline's own tokens (lower-case forms of the
aliases and of their punctuation variants), checked against the same word-boundary, case and
alias-key rules as the fast path, then resolved by the same `Linker.resolve`, so both give the
same links. The entity label is the entity's type (upper-cased, "ENTITY" when it has none);
`ent.kb_id_` is the entity id and `ent._.ltprobe_score` the disambiguation score. Config keys
are the `Linker` options plus `kb` (a saved KB folder or a kb.jsonl path) and `overwrite_ents`
(replace `doc.ents`; with False, existing entities are kept and overlapping links dropped).
A `KnowledgeBase` object may be given instead of a path through `set_kb(kb)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span

from entity_linking._linker import NIL_THRESHOLD, Linker
from entity_linking._normalize import alias_variants, normalize
from entity_linking.kb import KnowledgeBase

if not Span.has_extension("ltprobe_score"):
    Span.set_extension("ltprobe_score", default=None)

_CURLY = str.maketrans({"'": "\u2019"})


class LinkerComponent:
    """spaCy component: sets `doc.ents` to the linked mentions (`kb_id_` = entity id)."""

    def __init__(self, nlp: Language, name: str, kb: Any = None, overwrite_ents: bool = True,
                 batch_size: int = 256, **options: Any):
        self.nlp = nlp
        self.name = name
        self.overwrite_ents = overwrite_ents
        self.batch_size = batch_size
        self.options = options
        self.linker: Linker | None = None
        self.matcher: PhraseMatcher | None = None
        if kb is not None:
            self.set_kb(kb if isinstance(kb, KnowledgeBase) else KnowledgeBase.load(kb))

    def set_kb(self, kb: KnowledgeBase) -> None:
        """Use this knowledge base (builds the phrase matcher: about a second per 10k aliases)."""
        self.linker = Linker(kb, **self.options)
        matcher = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        patterns: dict[str, None] = {}
        for i in range(len(kb)):
            for alias in (kb.names[i], *kb.aliases[i]):
                patterns[alias] = None
                if "'" in alias:
                    patterns[alias.translate(_CURLY)] = None
                for variant in alias_variants(alias):
                    patterns[variant] = None
        tokenizer = self.nlp.tokenizer
        # "Lake Kan." is tokenized ["Lake", "Kan."] (a tokenizer exception for "Kan."): a
        # name followed by a full stop needs a pattern of its own
        rules = getattr(tokenizer, "rules", None) or {}
        for alias in list(patterns):
            words = alias.split()
            if words and words[-1] + "." in rules:
                patterns[alias + "."] = None
        batch = []
        for doc in tokenizer.pipe(patterns, batch_size=1000):
            batch.append(doc)
            if len(batch) >= 10000:
                matcher.add("ALIAS", batch)
                batch = []
        if batch:
            matcher.add("ALIAS", batch)
        self.matcher = matcher

    def _spans(self, doc: Doc, norm: str) -> list[tuple[int, int, int]]:
        """Candidate spans `(start, end, value)` ordered by end, as `Linker.find` gives them."""
        text = doc.text
        n = len(norm)
        seen = set()
        out = []
        matcher = self.linker._matcher
        for _, first, last in self.matcher(doc):
            start = doc[first].idx
            end = doc[last - 1].idx + len(doc[last - 1].text)
            piece = norm[start:end]
            end = start + len(piece.rstrip())  # a pattern may end in punctuation ("Kan.")
            if end <= start:
                continue
            # the same word-boundary rule as the fast path: a space (in normalized text) or the
            # end of the text on both sides
            if (start > 0 and norm[start - 1] != " ") or (end < n and norm[end] != " "):
                continue
            if (start, end) in seen:
                continue
            seen.add((start, end))
            value = matcher.get(norm[start:end])
            if value is None:
                value = matcher.get(normalize(text[start:end]).strip())
            if value is not None:
                out.append((start, end, value))
        out.sort(key=lambda s: (s[1], s[0]))
        return out

    def __call__(self, doc: Doc) -> Doc:
        if self.linker is None:
            raise ValueError("ltprobe_linker has no knowledge base: pass config={'kb': PATH} or call set_kb(kb)")
        text = doc.text
        norm = normalize(text)
        resolved = self.linker.resolve(text, norm, self._spans(doc, norm))
        ids = self.linker._ids
        kb = self.linker.kb
        spans = []
        last = 0
        for start, end, i, score in resolved:
            label = (kb.types[i] or "entity").upper()
            span = doc.char_span(start, end, label=label, kb_id=ids[i], alignment_mode="expand")
            # a link inside a token that spaCy did not split (rare) cannot be an entity span
            if span is None or span.start < last:
                continue
            last = span.end
            span._.ltprobe_score = score
            spans.append(span)
        if self.overwrite_ents:
            doc.ents = spans
        else:
            taken = set()
            for ent in doc.ents:
                taken.update(range(ent.start, ent.end))
            keep = [s for s in spans if not taken.intersection(range(s.start, s.end))]
            doc.ents = sorted([*doc.ents, *keep], key=lambda s: s.start)
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 256) -> Iterator[Doc]:
        for doc in stream:
            yield self(doc)


@Language.factory(
    "ltprobe_linker",
    default_config={"kb": None, "overwrite_ents": True, "context_chars": 250, "context_weight": 1.0,
                    "prior_weight": 1.0, "coherence_weight": 2.0, "nil_threshold": NIL_THRESHOLD, "case": "smart",
                    "min_chars": 2, "link_qualifiers": True},
)
def make_linker(nlp: Language, name: str, kb: Any, overwrite_ents: bool, context_chars: int,
                context_weight: float, prior_weight: float, coherence_weight: float, nil_threshold: float,
                case: str, min_chars: int, link_qualifiers: bool) -> LinkerComponent:
    return LinkerComponent(nlp, name, kb=kb, overwrite_ents=overwrite_ents, context_chars=context_chars,
                           context_weight=context_weight, prior_weight=prior_weight,
                           coherence_weight=coherence_weight, nil_threshold=nil_threshold, case=case,
                           min_chars=min_chars, link_qualifiers=link_qualifiers)


def spacy_pipeline(kb: KnowledgeBase | str, nlp: Language | None = None, **options: Any) -> Language:
    """A pipeline (default `spacy.blank("en")`) with `ltprobe_linker` added for `kb`."""
    import spacy

    nlp = nlp if nlp is not None else spacy.blank("en")
    component = nlp.add_pipe("ltprobe_linker", config={k: v for k, v in options.items()})
    component.set_kb(kb if isinstance(kb, KnowledgeBase) else KnowledgeBase.load(kb))
    return nlp
