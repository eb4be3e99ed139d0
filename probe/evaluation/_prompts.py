"""Prompt formats, kept as data in `probe/templates/prompts/*.json`.

- `qa` (Kandpal et al. 2023): `Q: {question}\\nA: {answer}\\n\\n` per shot, then
  `Q: {question}\\nA:`; with passages (retrieval, oracle) each passage is a line before its
  question, in the shots too: one skeleton, so closed-book and retrieval prompts differ only by
  the passages (the original study's setting, and the default of `ltprobe run` and `rag`).
- `rag`: `Passage: {text}\\n` per passage, then `Question: {question}\\nAnswer:`; shots in the
  same format (the demo's retrieval format: its model was trained to read passages so).
- `cloze`: the statement the answer completes (`{cloze} {answer}.` per shot, then `{cloze}`),
  LAMA-style (Petroni et al. 2019); reads each QA pair's `cloze` field, which generated worlds
  write ("NAME was born in"); greedy until a newline or the end of the sentence. The demo's
  closed-book probe: it asks what the model recalls, not whether it learned the Q/A skill.
- `popqa_relations.json`: PopQA's question template per relation.

A format file is a JSON object with `shot`, `query`, `stop`, optionally `field` (the QA pair's
field whose text is asked, `question` by default; `{question}`, or `{cloze}` etc., in
`shot`/`query`) and, for retrieval formats, `passage`; `{passages}` in `shot`/`query` is where
the passages go. A user's own format is a
path to such a file. Prompts longer than the model's context lose shots from the left, then
their lowest-ranked passages (`fit_prompts`); a prompt that still does not fit is marked, not
sent, so a batch never fails halfway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from entity_linking.io import InputError

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "prompts"


@dataclass(frozen=True)
class PromptFormat:
    """A prompt format read from a template file."""

    name: str
    """File stem (`qa`, `rag`) or the path of a user's file."""
    shot: str
    """One in-context example: `{question}`, `{answer}` and, with passages, `{passages}`."""
    query: str
    """The question to answer: `{question}` and, with passages, `{passages}`."""
    stop: tuple[str, ...] = ("\n",)
    """Generation stops before the first of these."""
    passage: str | None = None
    """One passage (`{text}`); None for closed-book formats."""
    field: str = "question"
    """The QA pair's field whose text is asked; `shot` and `query` name it as the placeholder
    (`{question}`, `{cloze}`)."""


@dataclass
class Shot:
    """An in-context example."""

    question: str
    """The text asked (the format's `field` of the QA pair)."""
    answer: str
    passages: list[str] = field(default_factory=list)
    """Passage texts shown before the example (retrieval formats); they contain `answer`."""


def prompt_formats() -> list[str]:
    """The names of the prompt formats shipped with the package (`qa`, `rag`, ...); a name
    without a suffix is one of them, anything else a JSON file."""
    return sorted(p.stem for p in TEMPLATES.glob("*.json") if p.stem != "popqa_relations")


def load_format(name: str | Path) -> PromptFormat:
    """The format `qa` or `rag` shipped with the package, or a user's JSON file."""
    path = Path(name)
    if not path.suffix:
        path = TEMPLATES / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        shipped = ", ".join(prompt_formats())
        raise InputError(f"{path}: no such prompt format (shipped: {shipped}, or give a JSON file)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: broken JSON in prompt format ({exc.msg})") from None
    for key in ("shot", "query"):
        if not isinstance(data.get(key), str):
            raise InputError(f"{path}: a prompt format needs a string field {key!r}")
    field = data.get("field", "question")
    if not isinstance(field, str) or not field.isidentifier() or f"{{{field}}}" not in data["query"]:
        raise InputError(f"{path}: `field` {field!r} must be a name that `query` uses as {{{field}}}")
    return PromptFormat(name=str(name), shot=data["shot"], query=data["query"],
                        stop=tuple(data.get("stop", ["\n"])), passage=data.get("passage"), field=field)


@cache
def popqa_templates() -> dict[str, str]:
    """PopQA's question template per relation (`{}` is the subject)."""
    data = json.loads((TEMPLATES / "popqa_relations.json").read_text(encoding="utf-8"))
    return dict(data["templates"])


def relation_question(relation: str, subject: str) -> str:
    """The PopQA question for `relation` about `subject`."""
    templates = popqa_templates()
    if relation not in templates:
        raise InputError(f"no PopQA template for relation {relation!r} (known: {', '.join(templates)})")
    return templates[relation].format(subject)


def _passages(fmt: PromptFormat, texts: Sequence[str]) -> str:
    if fmt.passage is None:
        return ""
    # One passage a line keeps the format the model was trained on.
    return "".join(fmt.passage.format(text=" ".join(t.split())) for t in texts)


def build_prompt(fmt: PromptFormat, question: str, shots: Sequence[Shot] = (),
                 passages: Sequence[str] = ()) -> str:
    """The prompt for one question (`question`: the text of the format's `field`)."""
    parts = [fmt.shot.format(**{fmt.field: s.question.strip()}, answer=s.answer.strip(),
                             passages=_passages(fmt, s.passages)) for s in shots]
    parts.append(fmt.query.format(**{fmt.field: question.strip()}, passages=_passages(fmt, passages)))
    return "".join(parts)


@dataclass
class FittedPrompt:
    """A prompt after fitting it into the context."""

    prompt: str
    n_shots: int
    """Shots kept (shots are dropped from the left when the prompt is too long)."""
    n_passages: int
    """Passages kept (the lowest-ranked go after all shots)."""
    dropped: int
    """Shots plus passages dropped to fit."""
    too_long: bool
    """Even without shots and passages the prompt does not fit: it must not be sent."""


def fit_prompts(fmt: PromptFormat, items: Sequence[tuple[str, Sequence[Shot], Sequence[str]]],
                count_tokens: Callable[[list[str]], list[int] | None] | None, limit: int | None,
                wrap: Callable[[str], str] | None = None) -> list[FittedPrompt]:
    """Build `(question, shots, passages)` prompts whose token count is at most `limit`.

    `count_tokens` counts a batch of texts (None or returning None: no fitting); `wrap` turns a
    prompt into what is sent (a chat template) and is applied before counting.
    """
    wrap = wrap or (lambda p: p)
    state = [[len(shots), len(passages)] for _, shots, passages in items]

    def render(i: int) -> str:
        question, shots, passages = items[i]
        n_shots, n_passages = state[i]
        return wrap(build_prompt(fmt, question, shots[len(shots) - n_shots:], passages[:n_passages]))

    prompts = [render(i) for i in range(len(items))]
    too_long = [False] * len(items)
    pending = list(range(len(items)))
    while pending and limit is not None and count_tokens is not None:
        lengths = count_tokens([prompts[i] for i in pending])
        if lengths is None:
            break
        retry = []
        for i, n in zip(pending, lengths):
            if n <= limit:
                continue
            if state[i][0] > 0:
                state[i][0] -= 1
            elif state[i][1] > 0:
                state[i][1] -= 1
            else:
                too_long[i] = True
                continue
            prompts[i] = render(i)
            retry.append(i)
        pending = retry
    return [FittedPrompt(prompts[i], state[i][0], state[i][1],
                         len(items[i][1]) - state[i][0] + len(items[i][2]) - state[i][1], too_long[i])
            for i in range(len(items))]


def chat_wrapper(tokenizer: Any) -> Callable[[str], str]:
    """Wrap a prompt as one user turn of the model's chat template, ready for the answer."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError("the model's tokenizer has no chat template; leave the chat option off")

    def wrap(prompt: str) -> str:
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)

    return wrap
