"""The LINK rule format: loading (JSON and YAML), validation messages, fill order, statements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from entity_linking.io import InputError
from probe.link import load_rules, parse_rule, partial_statement
from probe.link._probing import negate
from probe.link._search import statements
from tests.paths import SHARED_DATA as SHARED

EXAMPLE = SHARED / "link_rule_example.json"

RULE2 = {
    "premise_map": {
        "is_allergic_to(P, A)": "[P] is allergic to [A]",
        "is_ingredient_in(Z, B)": "[Z] is a ingredient in [B]",
        "is_one_type_of(Z, A)": "[Z] is one type of [A]",
    },
    "conclusion_map": {"is_not_able_to_eat(P, B)": "[P] is not able to eat [B]"},
    "variables": {
        "P": ["P", "Person", True, None],
        "A": ["A", "Food Allergen", False, None],
        "B": ["B", "Name of a dish or food", False, None],
        "Z": ["Z", "Ingredient", False, None],
    },
    "domain": "food and physical conditions",
}

YAML_RULE2 = """\
# The same rule as LINK's rule2, in YAML; variables in both accepted spellings.
rule2:
  domain: food and physical conditions
  premise_map:
    is_allergic_to(P, A): "[P] is allergic to [A]"
    is_ingredient_in(Z, B): "[Z] is a ingredient in [B]"
    is_one_type_of(Z, A): "[Z] is one type of [A]"
  conclusion_map:
    is_not_able_to_eat(P, B): "[P] is not able to eat [B]"
  variables:
    P: [P, Person, true, null]
    A: {datatype: Food Allergen}
    B: {datatype: Name of a dish or food, generic: false}
    Z: [Z, Ingredient, false, null]
"""


def example_path() -> Path:
    if not EXAMPLE.exists():
        pytest.skip("shared data (../shared/data/link_rule_example.json) is not present")
    return EXAMPLE


def test_loads_link_example_from_shared_data():
    rules = load_rules(example_path())
    assert [r.id for r in rules] == ["rule2"]
    rule = rules[0]
    assert rule.source.endswith("link_rule_example.json:2")
    assert [p.key for p in rule.premises] == list(RULE2["premise_map"])
    assert rule.conclusion.args == ("P", "B") and rule.conclusion.is_conclusion
    assert [v.name for v in rule.generic] == ["P"]
    assert rule.variables["A"].datatype == "Food Allergen"
    assert rule.domain == "food and physical conditions"
    assert rule.placeholders() == {"P": "PersonX"}
    # The loader keeps LINK's format: writing it back gives the file's content.
    assert rule.to_dict() == json.loads(EXAMPLE.read_text())["rule2"]


def test_yaml_equivalent_gives_the_same_rule(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(YAML_RULE2)
    (rule,) = load_rules(path)
    assert rule.to_dict() == RULE2
    assert rule.source == f"{path}:2"


def test_fill_orders_follow_link():
    rule = parse_rule("rule2", RULE2)
    # LINK's premise-first order for this rule visits is_allergic_to, is_one_type_of, the
    # conclusion, is_ingredient_in; conclusion-first starts from the conclusion.
    assert [p.key for p in rule.traversal("premise")] == [
        "is_allergic_to(P, A)", "is_one_type_of(Z, A)", "is_not_able_to_eat(P, B)", "is_ingredient_in(Z, B)"]
    assert [p.key for p in rule.traversal("conclusion")] == [
        "is_not_able_to_eat(P, B)", "is_ingredient_in(Z, B)", "is_allergic_to(P, A)", "is_one_type_of(Z, A)"]
    premise = rule.fill_order("premise")
    assert [(s.variable.name, [p.key for p in s.predicates]) for s in premise] == [
        ("A", ["is_allergic_to(P, A)"]),
        ("Z", ["is_one_type_of(Z, A)"]),
        ("B", ["is_not_able_to_eat(P, B)", "is_ingredient_in(Z, B)"]),
    ]
    conclusion = rule.fill_order("conclusion")
    assert [s.variable.name for s in conclusion] == ["B", "Z", "A"]
    assert [p.key for p in conclusion[-1].predicates] == ["is_allergic_to(P, A)", "is_one_type_of(Z, A)"]
    assert rule.resolve_order("auto") == "premise"


def test_factual_variable_makes_auto_conclusion_first():
    record = json.loads(json.dumps(RULE2))
    record["variables"]["B"][3] = "factual"
    rule = parse_rule("r", record)
    assert rule.resolve_order("auto") == "conclusion"
    assert [s.variable.name for s in rule.fill_order()] == ["B", "Z", "A"]
    assert [s.variable.name for s in rule.fill_order("premise")] == ["A", "Z", "B"]


def _broken(change) -> dict:
    record = json.loads(json.dumps(RULE2))
    change(record)
    return record


@pytest.mark.parametrize("change, message", [
    (lambda r: r["premise_map"].__setitem__("is_allergic_to(P, A)", "[P] is allergic to [Q]"),
     "uses unknown variable [Q] (not declared)"),
    (lambda r: r["premise_map"].__setitem__("is_allergic_to(P, A)", "[P] is allergic to [B]"),
     "uses unknown variable [B] (not an argument of is_allergic_to(P, A))"),
    (lambda r: r["premise_map"].__setitem__("likes(P, Q)", "[P] likes [Q]"),
     "predicate 'likes(P, Q)' uses variable 'Q', which is not declared"),
    (lambda r: r["variables"]["P"].__setitem__(2, False), "no generic variable"),
    (lambda r: r["premise_map"].__setitem__("bad predicate", "[P] x"), "is not a predicate like name(A, B)"),
    (lambda r: r["premise_map"].__setitem__("is_allergic_to(P, A)", "[P] is allergic"),
     "never mentions [A]"),
    (lambda r: r["variables"].__setitem__("Q", ["Q", "Thing", False, None]),
     "variable 'Q' is declared but no predicate uses it"),
    (lambda r: r["variables"]["A"].__setitem__(3, "abstract"), "nodetype must be null or \"factual\""),
    (lambda r: r["variables"].__setitem__("A", ["A", "Food"]), "must be [name, datatype, is_generic, nodetype]"),
    (lambda r: r.pop("conclusion_map"), "missing 'conclusion_map'"),
    (lambda r: r["conclusion_map"].__setitem__("eats(P, A)", "[P] eats [A]"), "exactly one predicate"),
])
def test_validation_messages(tmp_path, change, message):
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"ok": RULE2, "broken": _broken(change)}, indent=2))
    with pytest.raises(InputError) as err:
        load_rules(path)
    text = str(err.value)
    assert message in text
    # FILE:LINE of the broken rule, then the rule id.
    line = path.read_text().splitlines().index('  "broken": {') + 1
    assert text.startswith(f"{path}:{line}: rule 'broken': ")
    assert "\n" not in text


def test_unreachable_variable_is_an_error():
    record = _broken(lambda r: (r["premise_map"].__setitem__("is_near(X, Y)", "[X] is near [Y]"),
                                r["variables"].update({"X": ["X", "Place", False, None],
                                                       "Y": ["Y", "Place", False, None]})))
    with pytest.raises(InputError, match="variable 'X' is not connected to a generic variable"):
        parse_rule("r", record)


def test_file_errors(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "r": {\n    "premise_map": {,\n  }\n}\n')
    with pytest.raises(InputError, match=r"broken\.json:3: broken JSON"):
        load_rules(broken)
    yaml_path = tmp_path / "rules.yaml"
    yaml_path.write_text("r:\n  premise_map: [unclosed\n  x: y\n")
    with pytest.raises(InputError, match=r"rules\.yaml:\d+: broken YAML"):
        load_rules(yaml_path)
    with pytest.raises(InputError, match="no such file"):
        load_rules(tmp_path / "missing.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"rule2": RULE2}))
    with pytest.raises(InputError, match="no rule 'rule9'; the file has rule2"):
        load_rules(good, ["rule9"])
    assert [r.id for r in load_rules(good, ["rule2"])] == ["rule2"]


def test_statements_and_negation():
    rule = parse_rule("rule2", RULE2)
    values = {"P": "PersonX", "A": "shellfish", "Z": "shrimp", "B": "prawn fried rice"}
    forms = statements(rule, values)
    assert forms["succinct"] == "If PersonX is allergic to shellfish, PersonX is not able to eat prawn fried rice."
    assert forms["full"] == ("If PersonX is allergic to shellfish, shrimp is a ingredient in prawn fried rice "
                             "and shrimp is one type of shellfish, then PersonX is not able to eat prawn fried rice.")
    assert partial_statement(rule, {"P": "PersonX", "A": "shellfish", "Z": "shrimp"}) == (
        "PersonX is allergic to shellfish. Shrimp is one type of shellfish.")
    assert negate("PersonX is not able to eat prawn fried rice") == "PersonX is able to eat prawn fried rice"
    assert negate("PersonX cannot drive a car") == "PersonX can drive a car"
    assert negate("PersonX can't swim") == "PersonX can swim"
    assert negate("PersonX is able to eat bread") == "PersonX is not able to eat bread"
    assert negate("PersonX likes tea") == "it is not the case that PersonX likes tea"


def test_explicit_negated_conclusion(tmp_path):
    record = dict(RULE2, negated_conclusion_map={"is_not_able_to_eat(P, B)": "[P] can safely eat [B]"})
    rule = parse_rule("r", record)
    assert rule.conclusion.render_negated({"P": "PersonX", "B": "rice"}) == "PersonX can safely eat rice"
    with pytest.raises(InputError, match="negated_conclusion_map names"):
        parse_rule("r", dict(RULE2, negated_conclusion_map={"x(P, B)": "[P] x [B]"}))
