"""Logical rules for LINK-style long-tail generation: the format, its checks, and the fill order.

A rule has premise predicates and a conclusion predicate over typed variables, each predicate
with a sentence template (`"[P] is allergic to [A]"`). The file format is LINK's JSON
(`premise_map`, `conclusion_map`, `variables` as `[name, datatype, is_generic, nodetype]`,
`domain`; see `../shared/data/link_rule_example.json`) or the same structure in YAML, where a
variable may also be written as a mapping and two optional keys of ours are allowed:

```yaml
rule2:
  domain: food and physical conditions
  premise_map:
    is_allergic_to(P, A): "[P] is allergic to [A]"
  conclusion_map:
    is_not_able_to_eat(P, B): "[P] is not able to eat [B]"
  negated_conclusion_map:               # optional: how probing negates the conclusion
    is_not_able_to_eat(P, B): "[P] is able to eat [B]"
  variables:
    P: [P, Person, true, null]          # or {datatype: Person, generic: true}
    A: {datatype: Food Allergen}
```

The fill order follows LINK: generic variables are placeholders ("PersonX"); the search walks
the predicates breadth-first from a start predicate -- the first premise that mentions a
generic variable (premise-first) or the conclusion (conclusion-first; forced when a variable
has nodetype "factual") -- following shared non-generic variables before generic ones, and
fills each variable at the first predicate that mentions it.
"""

from __future__ import annotations

import json
import os
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from entity_linking.io import InputError

Order = Literal["auto", "premise", "conclusion"]

PLACEHOLDERS = ("PersonX", "PersonY", "PersonZ", "PersonW")
"""Values given to generic variables, in order of declaration."""

_PREDICATE = re.compile(r"^\s*([A-Za-z_][\w]*)\s*\(\s*([^()]*?)\s*\)\s*$")
_SLOT = re.compile(r"\[([^\[\]]+)\]")


@dataclass(frozen=True)
class Variable:
    """A typed variable of a rule."""

    name: str
    """The name used in predicates and templates (`"A"`)."""
    datatype: str
    """What values it takes, in words (`"Food Allergen"`): the knowledge model is asked for it
    and the critic checks it."""
    is_generic: bool = False
    """A generic variable (a person) is not searched: it becomes a placeholder ("PersonX")."""
    nodetype: str | None = None
    """`None` or `"factual"` (a variable about a fact in the world; makes the search start from
    the conclusion)."""


@dataclass(frozen=True)
class Predicate:
    """One premise or the conclusion of a rule."""

    key: str
    """The predicate as written in the rule file (`"is_allergic_to(P, A)"`)."""
    name: str
    """The predicate's name (`"is_allergic_to"`)."""
    args: tuple[str, ...]
    """Its variables in order (`("P", "A")`)."""
    template: str
    """The sentence with `[VAR]` slots (`"[P] is allergic to [A]"`)."""
    is_conclusion: bool = False
    """True for the conclusion, False for a premise."""
    negated_template: str | None = None
    """How to state the negation (optional; probing negates by rule of thumb otherwise)."""

    def render(self, values: dict[str, str], keep_unfilled: bool = True) -> str:
        """The template with filled variables replaced; unfilled ones stay as `[VAR]`."""
        return _fill(self.template, values, keep_unfilled)

    def render_negated(self, values: dict[str, str]) -> str | None:
        return _fill(self.negated_template, values, True) if self.negated_template else None


def _fill(template: str, values: dict[str, str], keep_unfilled: bool) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1).strip()
        if name in values:
            return values[name]
        return match.group(0) if keep_unfilled else name
    return _SLOT.sub(replace, template)


@dataclass(frozen=True)
class FillStep:
    """One variable to search, with the predicates that become fully known once it is filled."""

    variable: Variable
    predicates: tuple[Predicate, ...]
    """Predicates whose variables are all filled once `variable` is: the knowledge model is
    prompted with them and the critic checks them."""


@dataclass
class Rule:
    """A LINK rule: premises, a conclusion, typed variables and a domain."""

    id: str
    """The rule's key in the file (`"rule2"`)."""
    premises: list[Predicate]
    """Premise predicates in file order."""
    conclusion: Predicate
    """The conclusion predicate."""
    variables: dict[str, Variable]
    """Variables by name, in file order."""
    domain: str = ""
    """The rule's domain in words (given to the knowledge model)."""
    source: str = ""
    """Where the rule was read (`FILE:LINE`), for messages."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys of the rule record that this module does not interpret."""

    @property
    def predicates(self) -> list[Predicate]:
        """Premises then the conclusion."""
        return [*self.premises, self.conclusion]

    @property
    def generic(self) -> list[Variable]:
        """The generic variables, in declaration order."""
        return [v for v in self.variables.values() if v.is_generic]

    def placeholders(self) -> dict[str, str]:
        """Generic variable name -> placeholder value ("PersonX", "PersonY", ...)."""
        return {v.name: PLACEHOLDERS[i % len(PLACEHOLDERS)] + ("" if i < len(PLACEHOLDERS) else str(i))
                for i, v in enumerate(self.generic)}

    def resolve_order(self, order: Order = "auto") -> Literal["premise", "conclusion"]:
        """`auto` is premise-first unless a variable is factual (then conclusion-first), as in LINK."""
        if order not in ("auto", "premise", "conclusion"):
            raise ValueError(f"order must be auto, premise or conclusion, not {order!r}")
        if order != "auto":
            return order
        if any(v.nodetype == "factual" for v in self.variables.values()):
            return "conclusion"
        return "premise"

    def traversal(self, order: Order = "auto") -> list[Predicate]:
        """All predicates in search order (breadth-first from the start predicate)."""
        resolved = self.resolve_order(order)
        generic = {v.name for v in self.generic}
        if resolved == "conclusion":
            start = self.conclusion
        else:
            start = next((p for p in self.premises if generic & set(p.args)), self.premises[0])
        ordered = [start]
        seen = {start.key}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            # Neighbours through the specific (non-generic) variables first: the generic
            # variable touches nearly every predicate and says little about what to fill next.
            shared = sorted(current.args, key=lambda name: name in generic)
            for variable in shared:
                for predicate in self.predicates:
                    if predicate.key not in seen and variable in predicate.args:
                        seen.add(predicate.key)
                        ordered.append(predicate)
                        queue.append(predicate)
        # Predicates not connected to the start (checked by validation, kept for safety).
        ordered.extend(p for p in self.predicates if p.key not in seen)
        return ordered

    def fill_order(self, order: Order = "auto") -> list[FillStep]:
        """The non-generic variables in the order the search fills them, each with the
        predicates it completes."""
        filled = {v.name for v in self.generic}
        steps: list[FillStep] = []
        traversal = self.traversal(order)
        for predicate in traversal:
            for name in predicate.args:
                if name in filled:
                    continue
                filled.add(name)
                completed = tuple(p for p in traversal
                                  if name in p.args and set(p.args) <= filled)
                steps.append(FillStep(self.variables[name], completed))
        return steps

    def to_dict(self) -> dict[str, Any]:
        """The rule in LINK's format (plus `negated_conclusion_map` when one is set)."""
        out: dict[str, Any] = {
            "premise_map": {p.key: p.template for p in self.premises},
            "conclusion_map": {self.conclusion.key: self.conclusion.template},
            "variables": {v.name: [v.name, v.datatype, v.is_generic, v.nodetype]
                          for v in self.variables.values()},
            "domain": self.domain,
        }
        if self.conclusion.negated_template:
            out["negated_conclusion_map"] = {self.conclusion.key: self.conclusion.negated_template}
        return out


def load_rules(path: str | os.PathLike, ids: list[str] | None = None) -> list[Rule]:
    """Read and check the rules of a LINK JSON file or its YAML equivalent (`.yaml`/`.yml`).

    `ids` keeps only the named rules (an unknown id is an error). A rule that breaks the
    format raises `InputError("FILE:LINE: rule ID: reason")`.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        data, lines = _read_yaml(path, text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: broken JSON ({exc.msg}, column {exc.colno})") from None
        lines = {key: _json_key_line(text, key) for key in data} if isinstance(data, dict) else {}
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path}:1: expected a mapping of rule id -> rule, got "
                         f"{'an empty mapping' if isinstance(data, dict) else type(data).__name__}")
    if ids:
        unknown = [i for i in ids if i not in data]
        if unknown:
            raise InputError(f"{path}: no rule {unknown[0]!r}; the file has {', '.join(map(str, data))}")
        data = {i: data[i] for i in ids}
    return [parse_rule(str(key), value, source=f"{path}:{lines.get(key, 1)}")
            for key, value in data.items()]


def _read_yaml(path: Path, text: str) -> tuple[Any, dict[str, int]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}:{line}: broken YAML ({reason})") from None
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            lines[key_node.value] = key_node.start_mark.line + 1
    return data, lines


def _json_key_line(text: str, key: str) -> int:
    match = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def parse_rule(rule_id: str, record: Any, source: str = "") -> Rule:
    """Build and check one rule from its LINK-format record (a dict)."""
    where = f"{source}: rule {rule_id!r}" if source else f"rule {rule_id!r}"

    def fail(reason: str) -> InputError:
        return InputError(f"{where}: {reason}")

    if not isinstance(record, dict):
        raise fail(f"expected a mapping with premise_map, conclusion_map, variables, got {type(record).__name__}")
    known = {"premise_map", "conclusion_map", "variables", "domain", "negated_conclusion_map"}
    for required in ("premise_map", "conclusion_map", "variables"):
        if required not in record:
            raise fail(f"missing {required!r}")
    variables = _parse_variables(record["variables"], fail)
    if not any(v.is_generic for v in variables.values()):
        raise fail("no generic variable: mark the placeholder variable (a person) with is_generic true, "
                   "e.g. \"P\": [\"P\", \"Person\", true, null]")
    negations = record.get("negated_conclusion_map") or {}
    if not isinstance(negations, dict):
        raise fail("negated_conclusion_map must be a mapping predicate -> template")
    premises = _parse_predicates(record["premise_map"], "premise_map", variables, fail, False, {})
    conclusions = _parse_predicates(record["conclusion_map"], "conclusion_map", variables, fail, True, negations)
    if not premises:
        raise fail("premise_map is empty: a rule needs at least one premise")
    if len(conclusions) != 1:
        raise fail(f"conclusion_map must hold exactly one predicate, got {len(conclusions)}")
    for key in negations:
        if key != conclusions[0].key:
            raise fail(f"negated_conclusion_map names {key!r}, which is not the conclusion")
    used = {name for p in [*premises, *conclusions] for name in p.args}
    unused = [name for name in variables if name not in used]
    if unused:
        raise fail(f"variable {unused[0]!r} is declared but no predicate uses it")
    domain = record.get("domain", "")
    if not isinstance(domain, str):
        raise fail("domain must be a string")
    rule = Rule(rule_id, premises, conclusions[0], variables, domain, source,
                {k: v for k, v in record.items() if k not in known})
    # Every variable must be reachable from a generic one through predicates, or the search
    # could never prompt for it with a filled neighbour.
    reached = {v.name for v in rule.generic}
    changed = True
    while changed:
        changed = False
        for predicate in rule.predicates:
            if reached & set(predicate.args) and not set(predicate.args) <= reached:
                reached |= set(predicate.args)
                changed = True
    unreachable = [name for name in variables if name not in reached]
    if unreachable:
        raise fail(f"variable {unreachable[0]!r} is not connected to a generic variable through any "
                   f"predicate, so the search cannot reach it")
    return rule


def _parse_variables(raw: Any, fail) -> dict[str, Variable]:
    if not isinstance(raw, dict) or not raw:
        raise fail("variables must be a non-empty mapping name -> [name, datatype, is_generic, nodetype]")
    out: dict[str, Variable] = {}
    for name, spec in raw.items():
        name = str(name)
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise fail(f"variable name {name!r} must be a letter or identifier")
        if isinstance(spec, dict):
            unknown = set(spec) - {"name", "datatype", "generic", "is_generic", "nodetype"}
            if unknown:
                raise fail(f"variable {name!r}: unknown key {sorted(unknown)[0]!r} "
                           f"(use datatype, generic, nodetype)")
            spec_name = spec.get("name", name)
            datatype = spec.get("datatype")
            generic = spec.get("generic", spec.get("is_generic", False))
            nodetype = spec.get("nodetype")
        elif isinstance(spec, (list, tuple)) and len(spec) == 4:
            spec_name, datatype, generic, nodetype = spec
        else:
            raise fail(f"variable {name!r} must be [name, datatype, is_generic, nodetype], got {spec!r}")
        if spec_name != name:
            raise fail(f"variable {name!r} is declared with the name {spec_name!r}")
        if not isinstance(datatype, str) or not datatype.strip():
            raise fail(f"variable {name!r}: datatype must be a non-empty string")
        if not isinstance(generic, bool):
            raise fail(f"variable {name!r}: is_generic must be true or false, got {generic!r}")
        if nodetype not in (None, "factual"):
            raise fail(f"variable {name!r}: nodetype must be null or \"factual\", got {nodetype!r}")
        out[name] = Variable(name, datatype.strip(), generic, nodetype)
    return out


def _parse_predicates(raw: Any, section: str, variables: dict[str, Variable], fail,
                      is_conclusion: bool, negations: dict) -> list[Predicate]:
    if not isinstance(raw, dict):
        raise fail(f"{section} must be a mapping predicate -> template")
    out = []
    for key, template in raw.items():
        match = _PREDICATE.match(str(key))
        if not match:
            raise fail(f"{section}: {key!r} is not a predicate like name(A, B)")
        args = tuple(a.strip() for a in match.group(2).split(",")) if match.group(2).strip() else ()
        if not args:
            raise fail(f"{section}: predicate {key!r} has no variables")
        for name in args:
            if name not in variables:
                raise fail(f"{section}: predicate {key!r} uses variable {name!r}, which is not declared "
                           f"in variables ({', '.join(variables)})")
        if len(set(args)) != len(args):
            raise fail(f"{section}: predicate {key!r} repeats a variable")
        templates = [(template, "template")]
        if key in negations:
            templates.append((negations[key], "negated template"))
        for text, what in templates:
            if not isinstance(text, str) or not text.strip():
                raise fail(f"{section}: the {what} of {key!r} must be a non-empty string")
            slots = [s.strip() for s in _SLOT.findall(text)]
            for slot in slots:
                if slot not in args:
                    where = "not declared" if slot not in variables else f"not an argument of {key}"
                    raise fail(f"{section}: the {what} {text!r} uses unknown variable [{slot}] ({where})")
            missing = [a for a in args if a not in slots]
            if missing:
                raise fail(f"{section}: the {what} {text!r} never mentions [{missing[0]}]")
        out.append(Predicate(str(key), match.group(1), args, template, is_conclusion,
                             negations.get(key)))
    return out
