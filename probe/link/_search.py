"""LINK-style rule-guided search for long-tail statements, with count-guided tails.

For each rule (`probe.link._rules`), the generic variable becomes a placeholder ("PersonX") and the
other variables are filled one at a time in the rule's fill order:

1. *Knowledge*: a model is sampled for values of the next variable, prompted with the
   predicates that link it to the filled ones and a "do not generate these" list of the values
   already accepted for the same partial statement. New values are de-duplicated
   (case-insensitively) against everything seen for that partial statement. A partial statement
   stops asking after `patience` calls in a row without a new accepted value (or
   `max_calls`, or once it has `2 * beam_size` accepted values: enough to fill both beams).
2. *Critic*: a yes/no model scores each candidate: "is this filled predicate true?" for the
   predicates that do not involve a generic variable (those with one are hypothetical) and
   "is <value> a <datatype>?". The yes-probability is the softmax over the two answers'
   log-probabilities as the prompt's continuation (summed over their tokens, so answers that a
   tokenizer splits into pieces with a common first token are still told apart). A candidate's score is the mean of every critic score along
   its beam; it is accepted at the threshold of its parent, which starts at 0.85 and is
   lowered by 0.05 (down to 0.65) while none of that parent's candidates passes.
3. *Rerankers*: (a) likelihood, the oracle model's mean token log-probability of the partial
   statement; (b) count, beyond LINK: the filled values are linked to the knowledge base and
   the documents mentioning them are counted in the toolkit's index; a fact's count is the
   pair co-occurrence count of its two specific arguments (or the document frequency when it
   has one), and a statement's count is that of its rarest fact; (c) combined, a weighted sum
   of the two, each standardised over the candidates of the step.
   The *head* beam keeps the highest-scoring children of its parents, the *tail* beam the
   lowest. Both beams are expanded together: one knowledge call per round, one critic call per
   round and one oracle call per variable, each a batch over every candidate.

`generate_statements` runs the search for a list of rules, probes a model on the results
(`probe.link._probing`) and writes `statements.jsonl` and `generation_summary.json`.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from entity_linking.io import InputError
from probe.link._rules import FillStep, Predicate, Rule, load_rules
from probe.link._templates import join_and, load_templates, sentence

Reranker = Literal["auto", "likelihood", "count", "combined"]
BEAMS = ("head", "tail")


class Generator(Protocol):
    """The part of the toolkit's generation backends (`probe.get_generator`) LINK uses."""

    name: str

    def sample(self, prompts: list[str], n: int, max_tokens: int, temperature: float,
               stop: list[str] | None = None, seed: int | None = None) -> list[list[str]]: ...

    def next_token_logprobs(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]: ...

    def mean_logprob(self, texts: list[str]) -> list[float]: ...


@dataclass
class SearchConfig:
    """Settings of the search (LINK's defaults)."""

    beam_size: int = 200
    """Partial statements kept per beam (head and tail each) after every variable."""
    samples_per_call: int = 50
    """Values sampled from the knowledge model per partial statement per call."""
    patience: int = 2
    """Stop asking for a partial statement after this many calls in a row without a new
    accepted value."""
    max_calls: int = 10
    """At most this many knowledge calls per partial statement and variable."""
    threshold: float = 0.85
    """Critic threshold to start with."""
    min_threshold: float = 0.65
    """The threshold is never relaxed below this."""
    threshold_step: float = 0.05
    """How much the threshold is relaxed at a time while nothing passes."""
    temperature: float = 1.0
    """Sampling temperature of the knowledge model."""
    max_value_tokens: int = 16
    """Longest value the knowledge model may write, in tokens."""
    max_value_chars: int = 80
    """Longer values are discarded as not a value."""
    max_exclude: int = 50
    """At most this many accepted values are listed as "do not generate these"."""
    reranker: Reranker = "likelihood"
    """likelihood (LINK's, the default whatever else is given: the head/tail statistic is a
    likelihood gap), count, combined; auto: combined when an index is given, else likelihood."""
    count_weight: float = 0.5
    """Weight of the count in the combined reranker (the likelihood gets 1 - weight)."""
    order: Literal["auto", "premise", "conclusion"] = "auto"
    """Fill order: premise-first, conclusion-first, or LINK's choice (auto)."""
    seed: int = 0
    """Sampling seed (each call uses seed + call number)."""
    progress: bool = True
    """Show a progress bar on stderr."""

    def check(self) -> None:
        """Raise InputError for settings that make no sense."""
        for name in ("beam_size", "samples_per_call", "patience", "max_calls", "max_value_tokens"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if not 0 <= self.min_threshold <= self.threshold <= 1:
            raise InputError(f"thresholds must satisfy 0 <= min ({self.min_threshold}) <= start "
                             f"({self.threshold}) <= 1")
        if self.threshold_step <= 0:
            raise InputError(f"--threshold-step must be positive, not {self.threshold_step}")
        if self.reranker not in ("auto", "likelihood", "count", "combined"):
            raise InputError(f"--reranker must be auto, likelihood, count or combined, not {self.reranker!r}")
        if not 0 <= self.count_weight <= 1:
            raise InputError(f"--count-weight must be between 0 and 1, not {self.count_weight}")


# --------------------------------------------------------------------------- counts


class CountScorer:
    """Counts the documents that mention the filled values, through the toolkit's linker and
    index (`entity_linking.Linker`, `indexes.open_index`).

    A value's entities are the knowledge-base ids linked in its text. A fact (a filled
    predicate) with two specific arguments counts the documents containing both (the best
    linked pair, as for QA pairs); with one, that entity's document frequency. A fact with a
    value that links to nothing has an unknown count (None), not 0: as with QA pairs without a
    linked entity, it is reported apart rather than silently counted as rare.
    """

    def __init__(self, linker: Any, index: Any):
        self.linker = linker
        self.index = index
        self._entities: dict[str, tuple[str, ...]] = {}
        self.unlinked: set[str] = set()
        """Values that linked to no entity (their facts' counts are unknown)."""

    @classmethod
    def open(cls, index: str | os.PathLike, kb: str | os.PathLike) -> CountScorer:
        """Load the knowledge base and open the index (any backend `open_index` reads)."""
        from entity_linking import KnowledgeBase, Linker
        from indexes import open_index

        return cls(Linker(KnowledgeBase.load(kb)), open_index(index))

    def entities(self, value: str) -> tuple[str, ...]:
        if value not in self._entities:
            ids = [getattr(m, "kb_id", None) for m in self.linker.link(value)]
            self._entities[value] = tuple(dict.fromkeys(i for i in ids if i))
            if not self._entities[value]:
                self.unlinked.add(value)
        return self._entities[value]

    def fact_counts(self, facts: Sequence[Sequence[str]]) -> list[int | None]:
        """For each fact (the values of its specific arguments), its document count (None
        when a value links to nothing); one batched index query for all pairs and one for all
        single entities."""
        pairs: dict[tuple[str, str], int] = {}
        singles: dict[str, int] = {}
        plans = []
        for values in facts:
            linked = [self.entities(v) for v in values]
            if not values or any(not ids for ids in linked):
                plans.append(None)
            elif len(linked) == 1:
                plans.append(("single", linked[0]))
                for e in linked[0]:
                    singles.setdefault(e, 0)
            else:
                arg_pairs = []
                for i in range(len(linked)):
                    for j in range(i + 1, len(linked)):
                        options = [tuple(sorted((a, b))) for a in linked[i] for b in linked[j] if a != b]
                        arg_pairs.append(options)
                        for p in options:
                            pairs.setdefault(p, 0)
                plans.append(("pairs", arg_pairs))
        if pairs:
            keys = list(pairs)
            for key, n in zip(keys, self.index.count_cooccurrence(keys)):
                pairs[key] = int(n)
        if singles:
            keys = list(singles)
            freqs = (self.index.doc_freqs(keys) if hasattr(self.index, "doc_freqs")
                     else [self.index.doc_freq(k) for k in keys])
            for key, n in zip(keys, freqs):
                singles[key] = int(n)
        out: list[int | None] = []
        for plan in plans:
            if plan is None:
                out.append(None)
            elif plan[0] == "single":
                out.append(max(singles[e] for e in plan[1]))
            else:
                # Each pair of arguments: the best linked pair; the fact: its rarest argument pair.
                out.append(min((max((pairs[p] for p in options), default=0) for options in plan[1]),
                               default=0))
        return out

    def close(self) -> None:
        close = getattr(self.index, "close", None)
        if close:
            close()


# --------------------------------------------------------------------------- search


@dataclass
class Node:
    """A partial statement: the values filled so far and what the search knows about them."""

    values: dict[str, str]
    """Variable -> value, in fill order (generic variables hold their placeholder)."""
    critic: list[float] = field(default_factory=list)
    """Every critic yes-probability along the beam; the beam's critic score is their mean."""
    checks: dict[str, float] = field(default_factory=dict)
    """Critic yes-probability by check (`"fact:is_one_type_of(Z, A)"`, `"type:A"`)."""
    thresholds: dict[str, float] = field(default_factory=dict)
    """Variable -> the critic threshold its value was accepted at."""
    loglik: float | None = None
    """Oracle mean token log-probability of the partial statement."""
    count: int | None = None
    """Documents of the rarest fact so far (None without an index or when a value of the
    statement links to no entity; see `count_known`)."""
    count_known: bool | None = None
    """None without an index; False once a value of the statement linked to no entity."""
    score: float | None = None
    """The reranker's score at the last step."""
    parent: Node | None = field(default=None, repr=False)

    @property
    def critic_mean(self) -> float:
        return sum(self.critic) / len(self.critic) if self.critic else 1.0


@dataclass
class StepReport:
    """What happened while filling one variable (for the summary and the tests)."""

    variable: str
    rounds: int = 0
    """Knowledge calls (each a batch over the active partial statements)."""
    calls: dict[str, int] = field(default_factory=lambda: {"knowledge": 0, "critic": 0, "oracle": 0})
    """Engine calls by role."""
    sampled: int = 0
    """Values sampled."""
    candidates: int = 0
    """New distinct values scored by the critic."""
    accepted: int = 0
    """Values accepted by the critic (over all parents)."""
    thresholds: dict[str, int] = field(default_factory=dict)
    """Final threshold -> number of parents that ended the step at it."""
    kept: dict[str, int] = field(default_factory=dict)
    """Beam -> partial statements kept."""


@dataclass
class RuleResult:
    """The outcome of the search for one rule."""

    rule: Rule
    beams: dict[str, list[Node]]
    """`head` and `tail`: complete statements, best first for their beam."""
    steps: list[StepReport]
    status: str = "ok"
    """`ok`, or why the search stopped early."""


@dataclass
class _Parent:
    node: Node
    threshold: float
    seen: set[str] = field(default_factory=set)
    scored: list[Node] = field(default_factory=list)
    accepted: list[Node] = field(default_factory=list)
    streak: int = 0
    calls: int = 0
    active: bool = True


_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|[a-z][.)])\s+")


def clean_value(text: str, max_chars: int = 80) -> str | None:
    """The value in a knowledge-model completion: its first line without list markers,
    quotes, brackets or final punctuation; None when nothing usable is left."""
    line = text.strip().split("\n", 1)[0]
    line = _LIST_MARKER.sub("", line)
    line = line.strip().strip("\"'`").strip()
    line = re.sub(r"[.,;:!?]+$", "", line).strip().strip("\"'`").strip()
    line = re.sub(r"\s+", " ", line)
    if not line or len(line) > max_chars or "[" in line or "]" in line or "=" in line:
        return None
    # Broken bytes or control characters: a sampling artefact, not a value.
    if "\ufffd" in line or any(unicodedata.category(ch) == "Cc" for ch in line):
        return None
    return line


def _norm(value: str) -> str:
    return re.sub(r"\s+", " ", value.casefold()).strip()


def partial_statement(rule: Rule, values: dict[str, str], order: str = "auto") -> str:
    """The predicates whose variables are all filled, as sentences in search order: the text
    the oracle scores."""
    return " ".join(sentence(p.render(values)) for p in rule.traversal(order)  # type: ignore[arg-type]
                    if all(a in values for a in p.args))


def statements(rule: Rule, values: dict[str, str]) -> dict[str, str]:
    """The succinct form (the premises that mention a generic variable, then the conclusion,
    as LINK prints them) and the full form (all premises) of a filled rule."""
    generic = {v.name for v in rule.generic}
    premises = [p.render(values) for p in rule.premises]
    personal = [p.render(values) for p in rule.premises if generic & set(p.args)] or premises
    conclusion = rule.conclusion.render(values)
    succinct = sentence(f"If {join_and(personal)}, {conclusion}")
    full = sentence(f"If {join_and(premises)}, then {conclusion}")
    return {"succinct": succinct, "full": full}


def p_yes(logprobs: dict[str, float], yes: str, no: str) -> float:
    a = logprobs.get(yes)
    b = logprobs.get(no)
    a = -math.inf if a is None else float(a)
    b = -math.inf if b is None else float(b)
    if a == b == -math.inf:
        return 0.5
    m = max(a, b)
    return math.exp(a - m) / (math.exp(a - m) + math.exp(b - m))


def _zscores(xs: list[float]) -> list[float]:
    if len(xs) < 2:
        return [0.0] * len(xs)
    mean = statistics.fmean(xs)
    sd = statistics.pstdev(xs)
    return [0.0] * len(xs) if sd == 0 else [(x - mean) / sd for x in xs]


class Searcher:
    """The search for one configuration and set of models; `search(rule)` runs one rule."""

    def __init__(self, knowledge: Generator, critic: Generator | None = None,
                 oracle: Generator | None = None, *, counter: CountScorer | None = None,
                 config: SearchConfig | None = None, templates: dict[str, dict] | None = None):
        self.knowledge = knowledge
        self.critic = critic or knowledge
        self.oracle = oracle or knowledge
        self.counter = counter
        self.config = config or SearchConfig()
        self.config.check()
        self.templates = templates or load_templates()
        reranker = self.config.reranker
        if reranker == "auto":
            reranker = "combined" if counter is not None else "likelihood"
        if reranker in ("count", "combined") and counter is None:
            raise InputError(f"the {reranker} reranker needs an index: pass --index INDEX_DIR and --kb KB")
        self.reranker = reranker
        self._seed = self.config.seed

    # prompts -----------------------------------------------------------------------------

    def knowledge_prompt(self, rule: Rule, step: FillStep, values: dict[str, str],
                         exclude: list[str]) -> str:
        template = self.templates["knowledge"]
        var = step.variable
        lines = [sentence(p.render(values)) for p in step.predicates]
        excluded = ""
        if exclude:
            shown = exclude[-self.config.max_exclude:]
            excluded = template.get("exclude", "Do not generate these: {values}.").format(
                values=", ".join(shown))
        prompt = template["prompt"].format(domain=rule.domain, variable=var.name, datatype=var.datatype,
                                           statements="\n".join(lines), exclude=excluded)
        # An empty exclude line would leave a blank line in the prompt.
        return re.sub(r"\n\s*\n", "\n", prompt)

    def _fact_checks(self, rule: Rule, step: FillStep) -> list[Predicate]:
        generic = {v.name for v in rule.generic}
        return [p for p in step.predicates if not generic & set(p.args)]

    # search ------------------------------------------------------------------------------

    def search(self, rule: Rule) -> RuleResult:
        cfg = self.config
        root = Node(values=dict(rule.placeholders()))
        frontier: dict[str, list[Node]] = {beam: [root] for beam in BEAMS}
        reports: list[StepReport] = []
        steps = rule.fill_order(cfg.order)
        bar = _progress(len(steps), f"LINK {rule.id}", cfg.progress)
        try:
            for step in steps:
                report = StepReport(step.variable.name)
                reports.append(report)
                parents: dict[int, Node] = {}
                for beam in BEAMS:
                    for node in frontier[beam]:
                        parents.setdefault(id(node), node)
                children = self._expand(rule, step, list(parents.values()), report)
                if not children:
                    bar.close()
                    return RuleResult(rule, {b: [] for b in BEAMS}, reports,
                                      f"no value of {step.variable.name} ({step.variable.datatype}) "
                                      f"passed the critic at threshold {cfg.min_threshold}")
                self._rerank(rule, step, children, report)
                for beam in BEAMS:
                    members = {id(n) for n in frontier[beam]}
                    pool = [c for c in children if id(c.parent) in members]
                    sign = -1.0 if beam == "head" else 1.0
                    order = sorted(range(len(pool)), key=lambda i: (sign * pool[i].score, i))
                    frontier[beam] = [pool[i] for i in order[:cfg.beam_size]]
                    report.kept[beam] = len(frontier[beam])
                bar.update(1)
        finally:
            bar.close()
        return RuleResult(rule, frontier, reports)

    def _expand(self, rule: Rule, step: FillStep, parents: list[Node], report: StepReport) -> list[Node]:
        cfg = self.config
        var = step.variable.name
        states = [_Parent(node, cfg.threshold) for node in parents]
        fact_checks = self._fact_checks(rule, step)
        fact_t, type_t = self.templates["critic_fact"], self.templates["critic_type"]
        answers = [fact_t["answers"]["yes"], fact_t["answers"]["no"],
                   type_t["answers"]["yes"], type_t["answers"]["no"]]
        candidates = list(dict.fromkeys(answers))
        stop = self.templates["knowledge"].get("stop") or ["\n"]
        eps = 1e-9
        while True:
            active = [s for s in states if s.active]
            if not active:
                break
            prompts = [self.knowledge_prompt(rule, step, s.node.values,
                                             [c.values[var] for c in s.accepted]) for s in active]
            outputs = self.knowledge.sample(prompts, n=cfg.samples_per_call, max_tokens=cfg.max_value_tokens,
                                            temperature=cfg.temperature, stop=list(stop), seed=self._seed)
            self._seed += 1
            report.rounds += 1
            report.calls["knowledge"] += 1
            fresh: list[tuple[_Parent, Node]] = []
            for state, outs in zip(active, outputs):
                report.sampled += len(outs)
                for text in outs:
                    value = clean_value(text, cfg.max_value_chars)
                    if value is None or _norm(value) in state.seen:
                        continue
                    if _norm(value) in {_norm(v) for v in state.node.values.values()}:
                        continue  # a value already used for another variable of the statement
                    state.seen.add(_norm(value))
                    values = {**state.node.values, var: value}
                    fresh.append((state, Node(values=values, parent=state.node,
                                              critic=list(state.node.critic),
                                              checks=dict(state.node.checks),
                                              thresholds=dict(state.node.thresholds),
                                              count=state.node.count,
                                              count_known=state.node.count_known)))
            report.candidates += len(fresh)
            if fresh:
                queries: list[tuple[Node, str, str, str, str]] = []
                for _, child in fresh:
                    for predicate in fact_checks:
                        prompt = fact_t["prompt"].format(statement=sentence(predicate.render(child.values)))
                        queries.append((child, f"fact:{predicate.key}", prompt,
                                        fact_t["answers"]["yes"], fact_t["answers"]["no"]))
                    prompt = type_t["prompt"].format(value=child.values[var], datatype=step.variable.datatype)
                    queries.append((child, f"type:{var}", prompt, type_t["answers"]["yes"], type_t["answers"]["no"]))
                scores = self.critic.next_token_logprobs([q[2] for q in queries], candidates)
                report.calls["critic"] += 1
                for (child, check, _, yes, no), logprobs in zip(queries, scores):
                    p = p_yes(logprobs, yes, no)
                    child.checks[check] = p
                    child.critic.append(p)
            for state in active:
                state.calls += 1
                before = len(state.accepted)
                state.scored.extend(child for owner, child in fresh if owner is state)

                def passing(s: _Parent = state) -> list[Node]:
                    return [c for c in s.scored if c.critic_mean >= s.threshold - eps]

                state.accepted = passing()
                # Relax while nothing of this partial statement passes (LINK: 0.85 -> 0.65).
                while (not state.accepted and state.scored
                       and state.threshold - cfg.threshold_step >= cfg.min_threshold - eps):
                    state.threshold = round(state.threshold - cfg.threshold_step, 6)
                    state.accepted = passing()
                state.streak = 0 if len(state.accepted) > before else state.streak + 1
                # One parent can fill both beams on its own, but never needs more than that.
                state.active = (state.streak < cfg.patience and state.calls < cfg.max_calls
                                and len(state.accepted) < 2 * cfg.beam_size)
        children = []
        for state in states:
            key = f"{state.threshold:.2f}"
            report.thresholds[key] = report.thresholds.get(key, 0) + 1
            for child in state.accepted:
                child.thresholds[var] = state.threshold
                children.append(child)
        report.accepted = len(children)
        return children

    def _rerank(self, rule: Rule, step: FillStep, children: list[Node], report: StepReport) -> None:
        texts = [partial_statement(rule, c.values, self.config.order) for c in children]
        logliks = self.oracle.mean_logprob(texts)
        report.calls["oracle"] += 1
        for child, ll in zip(children, logliks):
            child.loglik = float(ll) if ll is not None and not math.isnan(float(ll)) else -math.inf
        if self.counter is not None:
            generic = {v.name for v in rule.generic}
            facts, owners = [], []
            for i, child in enumerate(children):
                for predicate in step.predicates:
                    specific = [child.values[a] for a in predicate.args if a not in generic]
                    if specific:
                        facts.append(specific)
                        owners.append(i)
            counts = self.counter.fact_counts(facts)
            new: dict[int, int] = {}
            for i, n in zip(owners, counts):
                if n is None:
                    children[i].count_known = False
                else:
                    new[i] = min(new.get(i, n), n)
            for i, child in enumerate(children):
                if child.count_known is None:
                    child.count_known = True
                if not child.count_known:
                    child.count = None
                elif i in new:
                    child.count = new[i] if child.count is None else min(child.count, new[i])
        finite = [c.loglik for c in children if c.loglik != -math.inf]
        floor = (min(finite) - 1.0) if finite else 0.0
        ll = [c.loglik if c.loglik != -math.inf else floor for c in children]
        if self.reranker == "likelihood":
            scores = ll
        else:
            # An unknown count is no evidence either way: it takes the mean of the known ones.
            known = [math.log10(c.count + 1) for c in children if c.count is not None]
            neutral = statistics.fmean(known) if known else 0.0
            lc = [math.log10(c.count + 1) if c.count is not None else neutral for c in children]
            if self.reranker == "count":
                scores = lc
            else:
                w = self.config.count_weight
                scores = [(1 - w) * a + w * b for a, b in zip(_zscores(ll), _zscores(lc))]
        for child, s in zip(children, scores):
            child.score = float(s)


def _progress(total: int, desc: str, enabled: bool):
    from entity_linking.logs import progress_bar

    return progress_bar(total=total, desc=desc, unit="var", enabled=enabled, leave=False)


# --------------------------------------------------------------------------- output


def statement_records(result: RuleResult, order: str = "auto") -> list[dict[str, Any]]:
    """The rows of `statements.jsonl` for one rule: head beam first, then tail, best first."""
    rows = []
    rule = result.rule
    for beam in BEAMS:
        for rank, node in enumerate(result.beams[beam]):
            texts = statements(rule, node.values)
            rows.append({
                "id": f"{rule.id}:{beam}:{rank}",
                "rule": rule.id,
                "beam": beam,
                "rank": rank,
                "values": dict(node.values),
                "statement": texts["succinct"],
                "statement_full": texts["full"],
                "loglik": node.loglik,
                "count": node.count,
                "count_status": (None if node.count_known is None
                                 else "ok" if node.count_known else "unlinked"),
                "score": node.score,
                "critic": {"mean": node.critic_mean, "checks": dict(node.checks)},
                "thresholds": dict(node.thresholds),
                "partial": partial_statement(rule, node.values, order),
            })
    return rows


def _describe(xs: list[float]) -> dict[str, Any]:
    if not xs:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": len(xs), "mean": statistics.fmean(xs), "median": statistics.median(xs),
            "min": min(xs), "max": max(xs)}


def summarize_rule(result: RuleResult, rows: list[dict[str, Any]],
                   probing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The per-rule entry of `generation_summary.json`."""
    out: dict[str, Any] = {"status": result.status, "domain": result.rule.domain}
    by_beam = {beam: [r for r in rows if r["beam"] == beam] for beam in BEAMS}
    out["n"] = {beam: len(by_beam[beam]) for beam in BEAMS}
    ll = {beam: [r["loglik"] for r in by_beam[beam] if r["loglik"] is not None
                 and math.isfinite(r["loglik"])] for beam in BEAMS}
    out["loglik"] = {beam: _describe(ll[beam]) for beam in BEAMS}
    out["loglik"]["gap"] = (out["loglik"]["head"]["mean"] - out["loglik"]["tail"]["mean"]
                            if ll["head"] and ll["tail"] else None)
    out["loglik"]["gap_ci"] = _gap_interval(ll["head"], ll["tail"])
    counts = {beam: [r["count"] for r in by_beam[beam] if r["count"] is not None] for beam in BEAMS}
    if any(r.get("count_status") is not None for r in rows):
        out["count"] = {beam: {**_describe([float(c) for c in counts[beam]]),
                               "zero": sum(1 for c in counts[beam] if c == 0),
                               "unlinked": sum(1 for r in by_beam[beam] if r.get("count_status") == "unlinked"),
                               "mean_log10": (statistics.fmean(math.log10(c + 1) for c in counts[beam])
                                              if counts[beam] else None)}
                        for beam in BEAMS}
        heads, tails = out["count"]["head"]["mean_log10"], out["count"]["tail"]["mean_log10"]
        out["count"]["gap_log10"] = heads - tails if heads is not None and tails is not None else None
    else:
        out["count"] = None
    keys = {beam: {tuple(sorted(r["values"].items())) for r in by_beam[beam]} for beam in BEAMS}
    out["overlap"] = len(keys["head"] & keys["tail"])
    out["critic"] = {beam: _describe([r["critic"]["mean"] for r in by_beam[beam]]) for beam in BEAMS}
    out["steps"] = [asdict(s) for s in result.steps]
    if probing is not None:
        out["probing"] = probing
    return out


def _gap_interval(head: list[float], tail: list[float], n_boot: int = 1000, seed: int = 0) -> list[float] | None:
    """95% bootstrap interval of mean(head) - mean(tail), the beams resampled independently
    (they hold different statements)."""
    if len(head) < 2 or len(tail) < 2:
        return None
    import numpy as np

    rng = np.random.default_rng(seed)
    h, t = np.asarray(head, float), np.asarray(tail, float)
    gaps = (h[rng.integers(0, len(h), (n_boot, len(h)))].mean(axis=1)
            - t[rng.integers(0, len(t), (n_boot, len(t)))].mean(axis=1))
    return [float(np.percentile(gaps, 2.5)), float(np.percentile(gaps, 97.5))]


def _warnings(rows: list[dict[str, Any]]) -> list[str]:
    """Signs that a result says little, for the summary."""
    out = []
    if rows and all(r.get("count_status") == "unlinked" for r in rows):
        out.append("no generated value linked to the knowledge base, so no statement has a count; "
                   "check that --kb is the knowledge base the index was linked with")
    return out


def _get_generator(backend: str, model: str, options: dict[str, Any]) -> Generator:
    from probe.generation import get_generator

    return get_generator(backend, model, **options)


def generate_statements(
    rules: str | os.PathLike | Sequence[Rule],
    out_dir: str | os.PathLike,
    *,
    model: str | Generator | None = None,
    knowledge_model: str | Generator | None = None,
    critic_model: str | Generator | None = None,
    oracle_model: str | Generator | None = None,
    probe_model: str | Generator | None = None,
    backend: str = "vllm",
    backend_options: dict[str, Any] | None = None,
    index: str | os.PathLike | None = None,
    kb: str | os.PathLike | None = None,
    counter: CountScorer | None = None,
    config: SearchConfig | None = None,
    rule_ids: list[str] | None = None,
    probe_templates: Sequence[str] | None = None,
    negated: bool = True,
    templates_dir: str | os.PathLike | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Generate head and tail statements for each rule, probe a model on them, and write
    `OUT_DIR/statements.jsonl`, `OUT_DIR/probing.jsonl` and `OUT_DIR/generation_summary.json`.

    `model` serves every role the specific `*_model` arguments leave open (knowledge, critic,
    oracle, probe); each may be a model folder or id (built with `probe.get_generator(backend,
    model, **backend_options)`, one engine per distinct model) or a ready generator object.
    `probe_templates=[]` skips probing.
    With `index` and `kb` (or a ready `counter`) the count reranker is available and each
    statement gets its document count. Returns the summary; when the summary already exists
    and `force` is false, the stage is complete and it is returned as is.
    """
    import json

    from entity_linking.io import write_json, write_jsonl
    from probe.link._probing import PROBE_TEMPLATES, probe_statements, summarize_probing

    out_dir = Path(out_dir)
    summary_path = out_dir / "generation_summary.json"
    if summary_path.exists() and (out_dir / "statements.jsonl").exists() and not force:
        return json.loads(summary_path.read_text(encoding="utf-8"))
    config = config or SearchConfig()
    config.check()
    rule_list = load_rules(rules, rule_ids) if isinstance(rules, (str, os.PathLike)) else list(rules)
    templates = load_templates(templates_dir)
    wanted_probes = list(PROBE_TEMPLATES if probe_templates is None else probe_templates)

    unknown = [t for t in wanted_probes if t not in PROBE_TEMPLATES]
    if unknown:
        raise InputError(f"unknown probing template {unknown[0]!r}; choose from {', '.join(PROBE_TEMPLATES)}")
    has_counts = counter is not None or index is not None or kb is not None
    if config.reranker in ("count", "combined") and not has_counts:
        raise InputError(f"the {config.reranker} reranker needs an index: pass --index INDEX_DIR and --kb KB")
    roles = {"knowledge": knowledge_model or model, "critic": critic_model or model,
             "oracle": oracle_model or model, "probe": probe_model or model}
    for role in ("knowledge", "critic", "oracle"):
        if roles[role] is None:
            raise InputError(f"no {role} model: pass --model MODEL_DIR (all roles) or --{role}-model")
    if wanted_probes and roles["probe"] is None:
        raise InputError("no probe model: pass --model or --probe-model, or --no-probe")
    engines: dict[str, Generator] = {}
    built: list[Generator] = []

    def engine(spec: str | Generator) -> Generator:
        if not isinstance(spec, (str, os.PathLike)):
            return spec
        key = str(spec)
        if key not in engines:
            engines[key] = _get_generator(backend, key, dict(backend_options or {}))
            built.append(engines[key])
        return engines[key]

    owns_counter = False
    if counter is None and (index is not None or kb is not None):
        if index is None or kb is None:
            raise InputError("counts need both --index INDEX_DIR and --kb KB (the knowledge base the "
                             "corpus was linked with)")
        counter = CountScorer.open(index, kb)
        owns_counter = True
    try:
        searcher = Searcher(engine(roles["knowledge"]), engine(roles["critic"]), engine(roles["oracle"]),
                            counter=counter, config=config, templates=templates)
        rows: list[dict[str, Any]] = []
        results: list[RuleResult] = []
        for rule in rule_list:
            result = searcher.search(rule)
            results.append(result)
            rows.extend(statement_records(result, config.order))
        probe_rows: list[dict[str, Any]] = []
        if wanted_probes and rows:
            rules_by_id = {r.id: r for r in rule_list}
            probe_rows = probe_statements(engine(roles["probe"]), rows, rules_by_id,
                                          templates=wanted_probes, negated=negated,
                                          prompt_templates=templates)
        per_rule = {}
        for result in results:
            mine = [r for r in rows if r["rule"] == result.rule.id]
            probing = (summarize_probing([p for p in probe_rows if p["rule"] == result.rule.id])
                       if wanted_probes else None)
            per_rule[result.rule.id] = summarize_rule(result, mine, probing)
        gaps = [s["loglik"]["gap"] for s in per_rule.values() if s["loglik"]["gap"] is not None]
        summary = {
            "models": {role: getattr(engine(spec), "name", str(spec)) if spec is not None else None
                       for role, spec in roles.items()},
            "reranker": searcher.reranker,
            "index": str(index) if index is not None else None,
            "config": {k: v for k, v in asdict(config).items() if k != "progress"},
            "n_statements": len(rows),
            "mean_loglik_gap": statistics.fmean(gaps) if gaps else None,
            "probing": summarize_probing(probe_rows) if wanted_probes else None,
            "rules": per_rule,
        }
        if counter is not None:
            summary["unlinked_values"] = sorted(counter.unlinked)[:100]
        summary["warnings"] = _warnings(rows)
        models = summary["models"]
        summary["critic_is_knowledge_model"] = bool(models.get("critic")) and models.get("critic") == models.get("knowledge")
        if summary["critic_is_knowledge_model"]:
            summary["warnings"].append(
                "the critic is the knowledge model itself: it judges its own proposals, so the accepted "
                "values are not independently checked (LINK used a separate critic; --critic-model)")
        out_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(out_dir / "statements.jsonl", rows)
        if wanted_probes:
            write_jsonl(out_dir / "probing.jsonl", probe_rows)
        write_json(summary_path, summary)
        return summary
    finally:
        if owns_counter and counter is not None:
            counter.close()
        for generator in built:
            close = getattr(generator, "close", None)
            if close:
                close()
