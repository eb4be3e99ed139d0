"""The LINK search checked exactly with a scripted knowledge/critic/oracle model.

The scripted model (`_link_scripted.py`) answers from fixed tables, so every beam, threshold
and engine call of the search is known in advance.
"""

from __future__ import annotations

import json
import math

import pytest

from entity_linking.io import InputError
from probe.link import CountScorer, SearchConfig, generate_statements, parse_rule
from probe.link._search import Searcher, clean_value, statement_records
from tests.probe.link.scripted import ScriptedModel
from tests.probe.link.test_link_rules import RULE2


def rule2():
    return parse_rule("rule2", RULE2)


def config(**overrides) -> SearchConfig:
    return SearchConfig(**{"beam_size": 2, "samples_per_call": 10, "progress": False, **overrides})


def values(nodes):
    return [(n.values["A"], n.values["Z"], n.values["B"]) for n in nodes]


def test_beams_thresholds_and_batching_exact():
    model = ScriptedModel(noisy=False)
    result = Searcher(model, config=config()).search(rule2())
    assert result.status == "ok"
    # Step A keeps milk, peanuts (head) and gluten, shellfish (tail); "rocks" fails the
    # datatype check. Step Z: crab fails (0.95, 0.6, 0.95 -> 0.83 < 0.85), lobster passes at
    # exactly 0.85. Step B: fondue passes with a mean of 0.87.
    assert values(result.beams["head"]) == [("milk", "cheese", "pizza"), ("milk", "butter", "croissant")]
    assert values(result.beams["tail"]) == [("gluten", "barley", "barley soup"),
                                            ("shellfish", "lobster", "lobster bisque")]
    head_ll = [n.loglik for n in result.beams["head"]]
    tail_ll = [n.loglik for n in result.beams["tail"]]
    assert head_ll == pytest.approx([-0.8 / 3, -1.1 / 3])
    assert tail_ll == pytest.approx([-2.75, -2.0])
    lobster = result.beams["tail"][1]
    assert lobster.checks["fact:is_one_type_of(Z, A)"] == pytest.approx(0.7)
    assert lobster.checks["type:Z"] == pytest.approx(0.9)
    assert lobster.critic_mean == pytest.approx((0.95 + 0.7 + 0.9 + 0.95 + 0.95) / 5)
    assert lobster.thresholds == {"A": 0.85, "Z": 0.85, "B": 0.85}
    # Predicates with the generic variable are not fact-checked (they are hypothetical).
    assert "fact:is_allergic_to(P, A)" not in lobster.checks
    assert "fact:is_not_able_to_eat(P, B)" not in lobster.checks

    a, z, b = result.steps
    assert (a.rounds, a.candidates, a.accepted) == (1, 5, 4)  # 4 = 2 * beam size: both beams full
    assert (z.rounds, z.candidates, z.accepted) == (3, 9, 8)  # 2 more calls with nothing new
    assert (b.rounds, b.candidates, b.accepted) == (3, 6, 6)
    # One critic call per round that found candidates, one oracle call per variable, each a
    # batch over every candidate (fact + type check per Z/B candidate).
    assert model.calls == [
        ("sample", 1), ("next_token_logprobs", 5), ("mean_logprob", 4),
        ("sample", 4), ("next_token_logprobs", 18), ("sample", 4), ("sample", 4), ("mean_logprob", 8),
        ("sample", 4), ("next_token_logprobs", 12), ("sample", 4), ("sample", 4), ("mean_logprob", 6),
    ]
    for step in result.steps:
        assert step.calls["critic"] == 1 and step.calls["oracle"] == 1
    # Accepted values are listed as "do not generate these" in the next call.
    second_z_round = [p for p in model.prompts if "[Z] is one type of milk." in p][1]
    assert "Do not generate these: butter, cheese." in second_z_round
    assert second_z_round.endswith("[Z] =")


def test_threshold_relaxes_per_partial_statement():
    fact_p = {"Butter is one type of milk.": 0.6, "Cheese is one type of milk.": 0.62,
              "Peanut oil is one type of peanuts.": 1e-6, "Peanut butter is one type of peanuts.": 1e-6}
    model = ScriptedModel(noisy=False, fact_p=fact_p)
    result = Searcher(model, config=config()).search(rule2())
    z = result.steps[1]
    # milk: best mean 0.84 -> relaxed to 0.80; peanuts: nothing passes even at 0.65.
    assert z.thresholds == {"0.85": 2, "0.80": 1, "0.65": 1}
    assert z.accepted == 2 + 1 + 2 + 2  # milk 2, shellfish 2 (crab fails), gluten 2, peanuts 0
    heads = values(result.beams["head"])
    assert all(a == "milk" for a, _, _ in heads)
    assert result.beams["head"][0].thresholds["Z"] == pytest.approx(0.80)


def test_nothing_passes_stops_the_rule():
    model = ScriptedModel(noisy=False, type_p={v: 0.01 for v in ["shellfish", "peanuts", "gluten", "rocks", "milk"]})
    result = Searcher(model, config=config()).search(rule2())
    assert result.status.startswith("no value of A (Food Allergen) passed the critic at threshold 0.65")
    assert result.beams == {"head": [], "tail": []}
    assert result.steps[0].thresholds == {"0.65": 1}
    # Two calls without an accepted value (the second offers only repeats), then it stops.
    assert result.steps[0].rounds == 2


def test_cleaning_and_deduplication():
    assert clean_value(" Shellfish.\nmore") == "Shellfish"
    assert clean_value("1. peanut butter,") == "peanut butter"
    assert clean_value('- "prawn fried rice"') == "prawn fried rice"
    assert clean_value("   ") is None
    assert clean_value("[A]") is None
    assert clean_value("x" * 200) is None
    assert clean_value("\ufffdavld Breiholm\x16n") is None
    assert clean_value("São Paulo") == "São Paulo"
    model = ScriptedModel(noisy=True)
    result = Searcher(model, config=config(samples_per_call=3)).search(rule2())
    assert result.status == "ok"
    rows = statement_records(result)
    for row in rows:
        assert all("\n" not in v and not v.endswith(".") and "[" not in v for v in row["values"].values())
    # No partial statement got the same value twice (case-insensitively).
    for node in result.beams["head"] + result.beams["tail"]:
        chain = []
        while node is not None:
            chain.append(node)
            node = node.parent
        for parent in chain[1:]:
            siblings = [c for c in result.beams["head"] + result.beams["tail"] if c.parent is parent]
            names = [c.values[list(c.values)[-1]].lower() for c in siblings]
            assert len(names) == len(set(names))


def test_max_calls_and_patience():
    class Endless(ScriptedModel):
        """Always offers new values, all of which pass: only max_calls stops it."""

        def sample(self, prompts, n, max_tokens, temperature, stop=None, seed=None):
            self.calls.append(("sample", len(prompts)))
            return [[f"value {seed} {i}" for i in range(n)] for _ in prompts]

    model = Endless()
    searcher = Searcher(model, config=config(beam_size=50, samples_per_call=2, max_calls=3))
    result = searcher.search(rule2())
    assert [s.rounds for s in result.steps] == [3, 3, 3]
    assert result.steps[0].accepted == 6


class TinyLinker:
    """A real exact-match linker over a three-entity-style alias table (no spaCy needed)."""

    def __init__(self, aliases):
        self.aliases = {k.lower(): v for k, v in aliases.items()}

    def link(self, text):
        from types import SimpleNamespace

        kb_id = self.aliases.get(text.lower())
        return [SimpleNamespace(kb_id=kb_id, start=0, end=len(text))] if kb_id else []


class TinyIndex:
    """Per-entity document sets, intersected for pairs."""

    def __init__(self, docs):
        self.sets = {}
        for doc_id, entities in docs.items():
            for e in entities:
                self.sets.setdefault(e, set()).add(doc_id)
        self.queries = []

    def doc_freq(self, entity):
        return len(self.sets.get(entity, ()))

    def doc_freqs(self, entities):
        self.queries.append(("doc_freqs", len(entities)))
        return [self.doc_freq(e) for e in entities]

    def count_cooccurrence(self, pairs):
        self.queries.append(("count_cooccurrence", len(pairs)))
        return [len(self.sets.get(a, set()) & self.sets.get(b, set())) for a, b in pairs]


def tiny_counter():
    names = ["shellfish", "peanuts", "gluten", "milk", "shrimp", "crab", "lobster", "peanut oil",
             "peanut butter", "wheat flour", "barley", "butter", "cheese", "shrimp scampi",
             "prawn fried rice", "lobster bisque", "lobster roll", "pad thai", "satay", "bread", "udon",
             "barley soup", "croissant", "pizza", "fondue", "crab cakes", "peanut butter cookies"]
    aliases = {n: "Q" + n.replace(" ", "_") for n in names}
    del aliases["udon"]  # a value the knowledge base does not know: its facts count 0
    docs = {}
    # Shellfish is very common, gluten rare; lobster/lobster bisque co-occur often.
    counts = {("shellfish",): 50, ("peanuts",): 20, ("gluten",): 2, ("milk",): 8,
              ("shrimp", "shellfish"): 30, ("lobster", "shellfish"): 12, ("crab", "shellfish"): 3,
              ("peanut oil", "peanuts"): 1, ("peanut butter", "peanuts"): 9, ("wheat flour", "gluten"): 2,
              ("barley", "gluten"): 1, ("butter", "milk"): 5, ("cheese", "milk"): 6,
              ("shrimp", "shrimp scampi"): 7, ("shrimp", "prawn fried rice"): 4, ("lobster", "lobster bisque"): 9,
              ("lobster", "lobster roll"): 2, ("peanut butter", "satay"): 3,
              ("peanut butter", "peanut butter cookies"): 6, ("barley", "barley soup"): 1, ("wheat flour", "bread"): 9,
              ("cheese", "pizza"): 9, ("cheese", "fondue"): 2, ("butter", "croissant"): 4}
    i = 0
    for key, n in counts.items():
        for _ in range(n):
            docs[f"d{i}"] = [aliases[k] for k in key]
            i += 1
    return CountScorer(TinyLinker(aliases), TinyIndex(docs))


def test_count_scorer_semantics():
    counter = tiny_counter()
    # single entity: document frequency; pair: co-occurrence; unlinked value: unknown.
    assert counter.fact_counts([["shellfish"], ["shrimp", "shellfish"], ["udon"], ["udon", "gluten"]]) == [
        50 + 30 + 12 + 3, 30, None, None]
    assert counter.unlinked == {"udon"}
    # One batched query for all pairs and one for all single entities.
    assert counter.index.queries == [("count_cooccurrence", 1), ("doc_freqs", 1)]


def test_count_reranker_picks_frequent_head_and_rare_tail():
    model = ScriptedModel(noisy=False)
    counter = tiny_counter()
    result = Searcher(model, counter=counter, config=config(reranker="count")).search(rule2())
    assert result.status == "ok"
    a = [n.values["A"] for n in result.beams["head"]]
    # Step A counts: shellfish 95 > peanuts 30 > milk 19 > gluten 5: head shellfish and
    # peanuts, tail gluten and milk. Step Z: head shrimp 30, lobster 12 (crab fails the critic);
    # tail barley 1, wheat flour 2. Step B: a statement counts its rarest fact; udon links to
    # nothing, so its count is unknown and ranks in the middle (not in the tail).
    assert set(a) == {"shellfish"}
    assert values(result.beams["head"]) == [("shellfish", "lobster", "lobster bisque"),
                                            ("shellfish", "shrimp", "shrimp scampi")]
    assert [n.count for n in result.beams["head"]] == [9, 7]
    assert values(result.beams["tail"]) == [("gluten", "barley", "barley soup"),
                                            ("gluten", "wheat flour", "bread")]
    assert [n.count for n in result.beams["tail"]] == [1, 2]
    assert counter.unlinked == {"udon"}
    assert min(n.count for n in result.beams["head"]) >= max(n.count for n in result.beams["tail"])


def test_combined_reranker_weights():
    def run(weight):
        return Searcher(ScriptedModel(noisy=False), counter=tiny_counter(),
                        config=config(reranker="combined", count_weight=weight)).search(rule2())
    likelihood = Searcher(ScriptedModel(noisy=False), config=config(reranker="likelihood")).search(rule2())
    count = Searcher(ScriptedModel(noisy=False), counter=tiny_counter(), config=config(reranker="count")).search(rule2())
    assert values(run(0.0).beams["head"]) == values(likelihood.beams["head"])
    assert values(run(0.0).beams["tail"]) == values(likelihood.beams["tail"])
    assert values(run(1.0).beams["head"]) == values(count.beams["head"])
    assert values(run(1.0).beams["tail"]) == values(count.beams["tail"])
    # Without an index the count rerankers are refused with a hint.
    with pytest.raises(InputError, match="--index INDEX_DIR and --kb KB"):
        Searcher(ScriptedModel(), config=config(reranker="count"))
    with pytest.raises(InputError, match="--beam-size must be at least 1"):
        Searcher(ScriptedModel(), config=config(beam_size=0))


def test_generate_statements_writes_outputs_and_resumes(tmp_path):
    model = ScriptedModel(noisy=False)
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rule2": RULE2}))
    out = tmp_path / "gen"
    summary = generate_statements(rules, out, model=model, counter=tiny_counter(), config=config())
    rows = [json.loads(line) for line in (out / "statements.jsonl").read_text().splitlines()]
    assert [r["beam"] for r in rows] == ["head", "head", "tail", "tail"]
    first = rows[0]
    assert set(first) >= {"id", "rule", "beam", "values", "statement", "statement_full", "loglik", "count",
                          "critic", "thresholds"}
    assert first["rule"] == "rule2" and first["statement"].startswith("If PersonX is allergic to ")
    assert first["statement_full"].startswith("If PersonX is allergic to ")
    entry = summary["rules"]["rule2"]
    assert summary["reranker"] == "likelihood"  # LINK's default, also with an index (issue 16)
    head_mean = sum(r["loglik"] for r in rows[:2]) / 2
    tail_mean = sum(r["loglik"] for r in rows[2:]) / 2
    assert entry["loglik"]["gap"] == pytest.approx(head_mean - tail_mean)
    lo, hi = entry["loglik"]["gap_ci"]  # bootstrap over each beam's statements
    assert lo <= entry["loglik"]["gap"] <= hi
    # one model plays every role here: the summary and the report's warnings say so
    assert summary["critic_is_knowledge_model"] is True
    assert any("critic is the knowledge model" in w for w in summary["warnings"])
    known = {beam: [r["count"] for r in rows if r["beam"] == beam and r["count_status"] == "ok"]
             for beam in ("head", "tail")}
    unlinked = [r for r in rows if r["count_status"] == "unlinked"]
    assert all(r["count"] is None and "udon" in r["values"].values() for r in unlinked)
    assert entry["count"]["tail"]["unlinked"] == len([r for r in unlinked if r["beam"] == "tail"])
    assert entry["count"]["head"]["mean"] == pytest.approx(sum(known["head"]) / len(known["head"]))
    assert entry["count"]["gap_log10"] == pytest.approx(
        sum(math.log10(c + 1) for c in known["head"]) / len(known["head"])
        - sum(math.log10(c + 1) for c in known["tail"]) / len(known["tail"]))
    # Probing: 4 statements x 3 templates x (original, negated).
    probes = [json.loads(line) for line in (out / "probing.jsonl").read_text().splitlines()]
    assert len(probes) == 4 * 3 * 2
    assert {p["template"] for p in probes} == {"yes_no", "true_false", "entailment"}
    for beam in ("head", "tail"):
        mine = [p for p in probes if p["beam"] == beam]
        assert entry["probing"][beam]["accuracy"] == pytest.approx(sum(p["correct"] for p in mine) / len(mine))
    assert entry["probing"]["gap"] == pytest.approx(entry["probing"]["head"]["accuracy"]
                                                    - entry["probing"]["tail"]["accuracy"])
    saved = json.loads((out / "generation_summary.json").read_text())
    assert saved["rules"]["rule2"]["loglik"]["gap"] == pytest.approx(entry["loglik"]["gap"])
    # A finished stage is not run again.
    calls = len(model.calls)
    again = generate_statements(rules, out, model=model, config=config())
    assert len(model.calls) == calls and again["n_statements"] == 4


def test_probing_negation_flips_expected_answer():
    from probe.link import probe_statements
    from probe.link._probing import summarize_probing

    rule = rule2()
    rows = [{"id": "r:head:0", "rule": "rule2", "beam": "head",
             "values": {"P": "PersonX", "A": "milk", "Z": "cheese", "B": "pizza"}},
            {"id": "r:tail:0", "rule": "rule2", "beam": "tail",
             "values": {"P": "PersonX", "A": "gluten", "Z": "barley", "B": "barley soup"}}]
    model = ScriptedModel()
    probes = probe_statements(model, rows, {"rule2": rule})
    assert model.calls == [("next_token_logprobs", 12)]  # one batched call
    negated = [p for p in probes if p["negated"]]
    assert all(p["expected"] == "negative" for p in negated)
    assert any("PersonX is able to eat pizza" in p["prompt"] for p in negated)
    entail = next(p for p in probes if p["template"] == "entailment" and not p["negated"])
    assert "Premise: PersonX is allergic to milk, cheese is a ingredient in pizza and cheese is one type of milk." \
        in entail["prompt"]
    assert "Hypothesis: PersonX is not able to eat pizza." in entail["prompt"]
    summary = summarize_probing(probes)
    # The scripted model knows the popular (head) statement: right on all 6 of its items; on the
    # rare one it answers "no" throughout: right only on the 3 negations.
    assert summary["head"]["accuracy"] == 1.0 and summary["tail"]["accuracy"] == 0.5
    assert summary["gap"] == 0.5
    assert summary["by_polarity"]["negated"]["tail"]["accuracy"] == 1.0


class Fixed:
    """Offers the same values for every variable; every check passes; shorter texts score higher."""

    name = "fixed"

    def __init__(self):
        self.prompts = []

    def sample(self, prompts, n, max_tokens, temperature, stop=None, seed=None):
        self.prompts.extend(prompts)
        return [["alpha", "beta", "gamma"][:n] for _ in prompts]

    def next_token_logprobs(self, prompts, candidates):
        return [{" yes": math.log(0.9), " no": math.log(0.1)} for _ in prompts]

    def mean_logprob(self, texts):
        return [-len(t) / 100 for t in texts]


def test_conclusion_first_order_and_template_override(tmp_path):
    from probe.link._search import load_templates

    (tmp_path / "knowledge.yaml").write_text(
        'prompt: "Give a {datatype} for [{variable}]: {statements} {exclude}\\n[{variable}] ="\n'
        'exclude: "Not: {values}."\n')
    model = Fixed()
    searcher = Searcher(model, config=config(order="conclusion"), templates=load_templates(tmp_path))
    result = searcher.search(rule2())
    assert [s.variable for s in result.steps] == ["B", "Z", "A"]
    assert model.prompts[0] == "Give a Name of a dish or food for [B]: PersonX is not able to eat [B]. \n[B] ="
    assert any(p.startswith("Give a Name of a dish or food for [B]: PersonX is not able to eat [B]. Not: ")
               for p in model.prompts)
    # A value is never reused for a second variable of the same statement.
    for node in result.beams["head"] + result.beams["tail"]:
        assert len({node.values[v] for v in "ABZ"}) == 3


@pytest.mark.slow
def test_real_critic_tells_apart_answers_that_share_a_first_token(tmp_path, tiny_model):
    """The tiny model's tokenizer splits " Yes" and " No" into pieces with the same first token;
    the critic scores whole answers, so its checks are not stuck at 0.5."""
    import yaml

    from probe.generation import get_generator
    from probe.link._search import load_templates

    for name in ("critic_fact", "critic_type"):
        template = load_templates()[name]
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**template, "answers": {"yes": " Yes", "no": " No"}}))
    critic = get_generator("transformers", str(tiny_model))
    try:
        first = [critic.tokenizer(a, add_special_tokens=False)["input_ids"][0] for a in (" Yes", " No")]
        assert first[0] == first[1]
        searcher = Searcher(Fixed(), critic=critic, config=config(threshold=0.0, min_threshold=0.0),
                            templates=load_templates(tmp_path))
        result = searcher.search(rule2())
        checks = [p for node in result.beams["head"] + result.beams["tail"] for p in node.checks.values()]
        assert checks and all(0.0 < p < 1.0 for p in checks)
        assert not any(p == 0.5 for p in checks)
        # The same probability as the softmax of the two answers' whole-continuation scores.
        node = result.beams["head"][0]
        prompt = searcher.templates["critic_type"]["prompt"].format(value=node.values["B"],
                                                                     datatype=rule2().variables["B"].datatype)
        scores = critic.next_token_logprobs([prompt], [" Yes", " No"])[0]
        assert node.checks["type:B"] == pytest.approx(1 / (1 + math.exp(scores[" No"] - scores[" Yes"])))
    finally:
        critic.close()
