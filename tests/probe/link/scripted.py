"""A scripted knowledge/critic/oracle model for the LINK search tests.

It implements the generation-backend methods LINK uses (`sample`, `next_token_logprobs`,
`mean_logprob`) with answers fixed in tables, so the search, the thresholds and the beams can
be checked exactly. It reads the prompts the search writes (templates/link/*.yaml) and keeps a
log of every call, to check that scoring is batched (one call per step).
"""

from __future__ import annotations

import math
import re

# Values the knowledge model offers, keyed by (variable, value of the variable it hangs on).
VALUES = {
    ("A", None): ["shellfish", "peanuts", "gluten", "rocks", "milk"],
    ("Z", "shellfish"): ["shrimp", "crab", "lobster"],
    ("Z", "peanuts"): ["peanut oil", "peanut butter"],
    ("Z", "gluten"): ["wheat flour", "barley"],
    ("Z", "milk"): ["butter", "cheese"],
    ("B", "shrimp"): ["shrimp scampi", "prawn fried rice"],
    ("B", "crab"): ["crab cakes"],
    ("B", "lobster"): ["lobster bisque", "lobster roll"],
    ("B", "peanut oil"): ["pad thai"],
    ("B", "peanut butter"): ["peanut butter cookies", "satay"],
    ("B", "wheat flour"): ["bread", "udon"],
    ("B", "barley"): ["barley soup"],
    ("B", "butter"): ["croissant"],
    ("B", "cheese"): ["pizza", "fondue"],
}

# Critic: probability of "yes" for type checks (by value) and fact checks (by sentence).
TYPE_P = {"rocks": 0.05, "lobster": 0.9, "fondue": 0.7}
FACT_P = {"Lobster is one type of shellfish.": 0.7, "Crab is one type of shellfish.": 0.6,
          "Cheese is one type of milk.": 0.8}
DEFAULT_P = 0.95

# Oracle: how common each value is; a text scores the mean over the values it mentions.
POPULARITY = {
    "shellfish": -1.0, "peanuts": -0.5, "gluten": -2.0, "milk": -0.2, "rocks": -3.0,
    "shrimp": -1.0, "crab": -1.5, "lobster": -2.5, "peanut oil": -2.0, "peanut butter": -0.5,
    "wheat flour": -1.0, "barley": -2.5, "butter": -0.3, "cheese": -0.4,
    "shrimp scampi": -2.0, "prawn fried rice": -1.0, "crab cakes": -1.5, "lobster bisque": -3.0,
    "lobster roll": -2.0, "pad thai": -1.0, "peanut butter cookies": -0.8, "satay": -2.2,
    "bread": -0.1, "udon": -2.4, "barley soup": -3.5, "croissant": -0.6, "pizza": -0.2,
    "fondue": -2.9,
}


class ScriptedModel:
    """Knowledge, critic and oracle in one object with known answers."""

    name = "scripted"

    def __init__(self, values=None, type_p=None, fact_p=None, popularity=None, noisy=True):
        self.values = VALUES if values is None else values
        self.type_p = TYPE_P if type_p is None else type_p
        self.fact_p = FACT_P if fact_p is None else fact_p
        self.popularity = POPULARITY if popularity is None else popularity
        self.noisy = noisy
        self.calls: list[tuple[str, int]] = []
        self.prompts: list[str] = []

    def _key(self, prompt: str) -> tuple[str, str | None]:
        variable = re.search(r"\[(\w+)\] =\s*$", prompt).group(1)
        # The value the variable hangs on: the filled value in its linking statement.
        if variable == "A":
            return ("A", None)
        if variable == "Z":
            match = re.search(r"\[Z\] is one type of (.+)\.", prompt)
            return ("Z", match.group(1).lower())
        match = re.search(r"\n(.+) is a ingredient in \[B\]\.", prompt)
        return ("B", match.group(1).lower())

    def sample(self, prompts, n, max_tokens, temperature, stop=None, seed=None):
        self.calls.append(("sample", len(prompts)))
        self.prompts.extend(prompts)
        out = []
        for prompt in prompts:
            pool = self.values.get(self._key(prompt), [])
            match = re.search(r"Do not generate these: (.+)\.", prompt)
            exclude = {x.lower() for x in match.group(1).split(", ")} if match else set()
            fresh = [v for v in pool if v.lower() not in exclude][:n]
            if self.noisy:
                # Decorations the cleaner must strip, and repeats the de-duplication must drop.
                fresh = [f" {v.capitalize()}." if i % 2 else f" {v}\nmore text" for i, v in enumerate(fresh)]
                fresh += [" " + v.upper() for v in pool[:1]] + [" [A]", ""]
            out.append(fresh[:n] if not self.noisy else fresh)
        return out

    def next_token_logprobs(self, prompts, candidates):
        self.calls.append(("next_token_logprobs", len(prompts)))
        out = []
        for prompt in prompts:
            lp = {c: -20.0 for c in candidates}
            if "If " in prompt or "Premise:" in prompt:
                # Probing: this model knows popular statements (it answers them right, negated
                # or not) and answers "no" to everything rarer: right only on their negations.
                positive = self._score(prompt) > -1.0 and "is able to eat" not in prompt
                for yes, no in ((" yes", " no"), (" true", " false"), (" entails", " contradicts")):
                    lp[yes], lp[no] = (-0.1, -3.0) if positive else (-3.0, -0.1)
                out.append(lp)
                continue
            match = re.search(r'Is "(.+)" a ', prompt)
            if match:
                p = self.type_p.get(match.group(1).lower(), DEFAULT_P)
            else:
                statement = prompt.split("\n")[1].strip()
                p = self.fact_p.get(statement, DEFAULT_P)
            lp[" yes"] = math.log(p)
            lp[" no"] = math.log(1 - p)
            out.append(lp)
        return out

    def mean_logprob(self, texts):
        self.calls.append(("mean_logprob", len(texts)))
        return [self._score(text) for text in texts]

    def _score(self, text):
        """Mean popularity of the values a text mentions (longest match wins: "peanut butter"
        is not also "butter")."""
        low = text.lower()
        found = [v for v in self.popularity if re.search(r"\b" + re.escape(v) + r"\b", low)]
        found = [v for v in found if not any(v != w and v in w for w in found)]
        scores = [self.popularity[v] for v in found]
        return sum(scores) / len(scores) if scores else -5.0
