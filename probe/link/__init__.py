"""Rule-guided long-tail generation (LINK): typed rules, the beam search with a knowledge model and a critic,
the count reranker, and probing a model with the generated statements."""

from entity_linking.lazy import lazy_exports

# name -> "module:attribute", imported on first use (one line each; sorted by module).
_LAZY = {
    "probe_statements": "probe.link._probing:probe_statements",
    "load_rules": "probe.link._rules:load_rules",
    "parse_rule": "probe.link._rules:parse_rule",
    "Rule": "probe.link._rules:Rule",
    "CountScorer": "probe.link._search:CountScorer",
    "generate_statements": "probe.link._search:generate_statements",
    "p_yes": "probe.link._search:p_yes",
    "partial_statement": "probe.link._search:partial_statement",
    "SearchConfig": "probe.link._search:SearchConfig",
    "load_templates": "probe.link._templates:load_templates",
    "sentence": "probe.link._templates:sentence",
}

__getattr__ = lazy_exports(__name__, _LAZY)
__all__ = [*_LAZY]
