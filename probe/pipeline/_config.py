"""The job configuration: a YAML file plus `--set key.path=value` overrides.

The schema is `JobConfig`: one dataclass per section, a docstring per setting, the types and
the allowed values of each (`Literal`). `load_config` checks the whole config against it when
it loads, after the overrides: an unknown key (with the nearest known one, "did you mean"), a
wrong type or an unknown value is an `InputError` of one line naming the key path, e.g.
`eval.settings[1]: unknown setting 'ragg' (did you mean 'rag'?); choose closed_book, rag,
oracle`. It returns the config as nested dicts (the defaults filled in, the values as
written), which is what the stages, their fingerprints and manifest.json read.
"""

from __future__ import annotations

import copy
import difflib
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from entity_linking.io import InputError
from probe.evaluation import SETTINGS

if TYPE_CHECKING:
    from probe.world import TrainConfig, WorldConfig


@dataclass
class DataConfig:
    """Where the QA set, corpus and knowledge base come from (`data.*`)."""

    qa: str | None = None
    """QA set: a local file (JSONL/CSV/TSV/Parquet) or a Hugging Face data set."""
    preset: Literal["trivia_qa", "nq_open", "popqa"] | None = None
    """Field mappings of a known data set."""
    split: str | None = None
    """Data set split, for Hugging Face data sets."""
    mapping: dict[str, str] | None = None
    """Field mapping `{question: ..., answers: ..., id: ...}` for local files."""
    limit: int | None = field(default=None, metadata={"min": 1})
    """Evaluate only the first N questions."""
    corpus: str | None = None
    """Pretraining corpus: a file, folder or glob of .jsonl(.gz/.zst) and .parquet,
    hf:NAME[:CONFIG] (Hugging Face, streamed) or an object-store URL (s3://...)."""
    text_field: str = "text"
    """The corpus's text field/column."""
    id_field: str = "id"
    """The corpus's document id field/column (missing: "<file>:<line>")."""
    corpus_split: str = "train"
    """Split of a Hugging Face corpus."""
    kb: str | None = None
    """Knowledge base: kb.jsonl or a folder saved by `ltprobe kb build`."""
    passages: str | None = None
    """Retrieval collection (JSONL id/text); null: the corpus's passages."""
    linked: str | None = None
    """Another job's linked corpus folder (`ltprobe link-corpus`): no linking here."""
    qa_entities: str | None = None
    """Another job's qa_entities.jsonl (`ltprobe link-qa`) for the same QA set: no QA linking."""
    counts: str | None = None
    """Another job's counts.jsonl for the same QA set: no counting."""


@dataclass
class ModelConfig:
    """The model(s) evaluated and how they are run (`model.*`)."""

    path: str | list[str] | None = None
    """Model folder or hub id, or a list of them: several models, each evaluated (the first, or
    the trained model, is the primary one; summary.json adds `models` and the `scaling`
    analysis across their sizes)."""
    train: TrainConfig | None = None
    """Train a model on the world's corpus (probe.TrainConfig fields); it comes first, before
    the models of `path`."""
    params: dict[str, float] | None = None
    """`{model: parameter count}` for the scaling analysis (default: read from the model's
    safetensors weights)."""
    backend: Literal["vllm", "openai", "transformers"] = "vllm"
    """The generation backend."""
    options: dict[str, Any] = field(default_factory=dict)
    """Passed to the backend (vLLM: dtype, max_model_len, tensor_parallel_size, ...)."""


@dataclass
class LinkingConfig:
    """Entity linking (`linking.*`)."""

    workers: int | None = field(default=None, metadata={"min": 1})
    """Processes for corpus linking (null: all cores)."""
    options: dict[str, Any] = field(default_factory=dict)
    """`entity_linking.Linker` options."""


@dataclass
class IndexConfig:
    """The document index and counting (`index.*`)."""

    backend: Literal["embedded", "elasticsearch", "infini-gram"] = "embedded"
    """embedded | elasticsearch | infini-gram (alias-phrase counts on the infini-gram index at
    index.path; closed-book evaluation only)."""
    path: str | None = None
    """An existing index folder (another job's RUN/index): no linking or indexing here."""
    counts_only: bool = False
    """Embedded: index the entity sets alone, no text and no passages (retrieval then needs
    rag.index)."""
    tokenizer: str = "bytes"
    """infini-gram: the index's tokenizer (`bytes`, or a Hugging Face name/folder)."""
    es_url: str | None = None
    """Elasticsearch: the cluster's URL (credentials come from the environment or a config file)."""
    es_index: str | None = None
    """Elasticsearch: the index name."""
    stoplist: str | None = None
    """Entity ids to leave out of counts: a file, or `countries` (the original study's 184
    countries, shipped with ltprobe)."""
    stoplist_sides: Literal["question", "both"] = "question"
    """question (the original study) | both."""


@dataclass
class EvalConfig:
    """Evaluation (`eval.*`)."""

    settings: list[Literal["closed_book", "rag", "oracle"]] = field(
        default_factory=lambda: list(SETTINGS))
    """The settings evaluated."""
    shots: int = field(default=4, metadata={"min": 0})
    """In-context examples (closed-book; retrieval too unless rag.shots is set)."""
    prompt_format: str = "qa"
    """qa (`Q: ...\nA: ...`, passages as lines before each question: one skeleton for every
    setting) | rag | a JSON format file."""
    max_tokens: int = field(default=16, metadata={"min": 1})
    """Most tokens generated per answer."""
    scoring: Literal["em", "contains"] | None = None
    """em (SQuAD-normalized exact match) | contains (alias containment); null: the QA set's own
    (contains for the popqa preset, else em)."""
    pool_size: int = field(default=16, metadata={"min": 0})
    """Questions set aside (never scored) to draw in-context examples from."""
    chat: bool = False
    """Wrap prompts in the model's chat template (instruction-tuned models)."""
    seed: int = 0
    """Seed of the shot pool and the shots drawn."""
    shard: str | None = None
    """"i/n": evaluate only shard i of n (job arrays); `ltprobe merge` joins them."""
    gold_logprob: bool = False
    """Also score the gold answer's log-probability (best alias) per question."""


@dataclass
class RagConfig:
    """Retrieval augmentation (`rag.*`)."""

    k: int = field(default=3, metadata={"min": 1})
    """Retrieved passages per question."""
    index: str | None = None
    """An index folder whose passages BM25 searches (`ltprobe index --corpus PASSAGES --out DIR`,
    e.g. Wikipedia as in the original study); null: the run's own index. Needed where that one
    has no passages (an imported entity map)."""
    shots: int | None = field(default=None, metadata={"min": 0})
    """In-context examples in retrieval and oracle prompts (null: eval.shots)."""
    prompt_format: str | None = None
    """Format of retrieval and oracle prompts (null: eval.prompt_format)."""
    filter_shots: bool = False
    """true: only shots whose passages contain their answer (the default, false, is the original
    study's: every shot with its own passages)."""


@dataclass
class AnalysisConfig:
    """The summary's statistics (`analysis.*`)."""

    min_bucket: int = field(default=20, metadata={"min": 0})
    """Buckets with fewer questions are flagged in the summary and report."""
    n_boot: int = field(default=1000, metadata={"min": 1})
    """Bootstrap resamples of the confidence intervals."""
    seed: int = 0
    """Seed of the bootstrap."""
    scaling_max_count: int = field(default=100, metadata={"min": 0})
    """Several models: scaling over questions with fewer relevant documents."""
    target_accuracy: float | None = None
    """Several models: extrapolate the parameters needed for this accuracy."""
    error_attribution: bool = False
    """Link wrong answers, count them with the question entity (errors.jsonl)."""


@dataclass
class LearningConfig:
    """Learning curves (issue 19): checkpoints of one training evaluated in one job against the
    relevant documents each had seen (counts_by_step.jsonl) (`learning.*`)."""

    checkpoints: bool = False
    """Evaluate the trained model's checkpoints (model.train.save_steps), closed-book."""
    order: str | None = None
    """Training order for counts by step (default: the trained model's train_order.npz)."""
    docs_per_step: int | None = field(default=None, metadata={"min": 1})
    """Documents per step of a .npy order (Pythia/OLMo style)."""


@dataclass
class JobConfig:
    """Every setting of `ltprobe run`, with its default. probe/configs/demo.yaml is the embedded
    default job; a user's config overrides what it names. `load_config` checks a config against
    this schema (unknown keys, wrong types, unknown values) and returns it as nested dicts;
    `check_config` also returns it as a `JobConfig`."""

    world: WorldConfig | None = None
    """A generated controlled world (probe.WorldConfig fields). null: bring your own data."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    linking: LinkingConfig = field(default_factory=LinkingConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rag: RagConfig = field(default_factory=RagConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)


def _defaults(cls: type) -> dict[str, Any]:
    """The defaults of a section as nested dicts (sections recursively; world and train: null)."""
    instance = cls()
    return {f.name: _defaults(type(value)) if is_dataclass(value := getattr(instance, f.name)) else value
            for f in fields(cls)}


DEFAULTS: dict[str, Any] = _defaults(JobConfig)
"""Every setting of `ltprobe run` with its default, as the nested dicts `load_config` returns
(the documentation of each is in the dataclasses above)."""


def load_config(path: str | Path | None, overrides: list[str] = ()) -> dict[str, Any]:
    """Read a YAML config (None: the embedded default; `demo`, `study`, `smoke`: a packaged one),
    apply `key.path=value` overrides (values in YAML), and check the result against `JobConfig`
    (`InputError` of one line naming the key path). Returns nested dicts: the defaults with what
    the config and the overrides name, and `_source`, the config's path."""
    if path is None:
        path = default_config_path()
    elif str(path) in PACKAGED_CONFIGS and not Path(path).exists():
        path = packaged_config_path(str(path))
    path = Path(path)
    try:
        user = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not isinstance(user, dict):
        raise InputError(f"{path}: a config must be a mapping of settings")
    overridden: dict[str, str] = {}  # key path -> the --set that gave it, for the messages
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set {item!r}: expected KEY.PATH=VALUE")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise InputError(f"--set {item!r}: VALUE is not valid YAML ({' '.join(str(exc).split())})") from None
        _set_path(user, key.split("."), parsed)
        overridden[key] = item
    config = _merge(copy.deepcopy(DEFAULTS), user)
    check_config(config, where=str(path), overridden=overridden)
    config["_source"] = str(path)
    return config


def check_config(config: dict[str, Any], *, where: str = "config",
                 overridden: dict[str, str] | None = None) -> JobConfig:
    """Check a config (nested dicts, as `load_config` returns) against `JobConfig` and return it
    as one. Raises `InputError("WHERE: KEY.PATH: reason")` for the first unknown key, wrong
    type or unknown value (WHERE is `--set ...` when an override gave the key)."""
    try:
        return _check(JobConfig, {k: v for k, v in config.items() if k != "_source"}, "")
    except _Invalid as exc:
        given = next((item for key, item in (overridden or {}).items()
                      if exc.path == key or exc.path.startswith((key + ".", key + "["))), None)
        raise InputError(f"--set {given!r}: {exc.message}" if given else f"{where}: {exc.message}") from None


PACKAGED_CONFIGS = ("demo", "study", "smoke")
"""Configs that ship inside the package (probe/configs/NAME.yaml; configs/NAME.yaml in a clone
links to them): `ltprobe run NAME` runs one from any folder."""


def default_config_path() -> Path:
    """The embedded default job, probe/configs/demo.yaml, from the installed package."""
    return packaged_config_path("demo")


def packaged_config_path(name: str) -> Path:
    """probe/configs/NAME.yaml of the installed package (NAME one of PACKAGED_CONFIGS)."""
    from importlib import resources

    path = Path(str(resources.files("probe").joinpath("configs", f"{name}.yaml")))
    if not path.exists():
        raise InputError(f"the packaged config {name!r} is missing from {path.parent}: reinstall ltprobe")
    return path


def _set_path(tree: dict, keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        node = tree.get(key)
        if not isinstance(node, dict):
            node = tree[key] = {}
        tree = node
    tree[keys[-1]] = value


def _merge(base: Any, user: Any) -> Any:
    """`user` over the defaults `base`: sections merged key by key, any other value replaced
    (unknown keys and wrong types are kept for `check_config` to report)."""
    if isinstance(base, dict) and base and isinstance(user, dict):
        for key, value in user.items():
            base[key] = _merge(base[key], value) if key in base else value
        return base
    return user


class _Invalid(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path, self.message = path, message


def _join(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_NOUNS = {"settings": "setting", "stoplist_sides": "side"}
"""What an allowed value of a setting is called in messages (default: the setting's name)."""


def _check(tp: Any, value: Any, path: str) -> Any:
    """`value` checked against the type `tp` (a section dataclass, Literal, union, list, dict or
    scalar); sections come back as dataclass instances. Raises `_Invalid` at the first problem."""
    if tp is Any:
        return value
    if is_dataclass(tp):
        return _check_section(tp, value, path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        if value in args and type(value) is type(args[0]):
            return value
        name = path.rsplit(".", 1)[-1].split("[")[0]
        near = difflib.get_close_matches(value, [str(a) for a in args], n=1) if isinstance(value, str) else []
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise _Invalid(path, f"{path}: unknown {_NOUNS.get(name, name)} {_show(value)}{hint}; "
                             f"choose {', '.join(map(str, args))}")
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        same_kind = [o for o in options if _kind(o) == _kind(value) != "scalar"]
        if len(options) == 1 or len(same_kind) == 1:  # report inside it (a list's bad item)
            return _check((same_kind or options)[0], value, path)
        for option in options:
            try:
                return _check(option, value, path)
            except _Invalid:
                continue
        raise _Invalid(path, f"setting {path!r} must be {_type_name(tp)}, got {_show(value)}")
    if origin is list:
        if type(value) is not list:
            raise _Invalid(path, f"setting {path!r} must be {_type_name(tp)}, got {_show(value)}")
        return [_check(args[0], v, _join(path, i)) for i, v in enumerate(value)]
    if origin is tuple:
        if type(value) not in (list, tuple) or len(value) != len(args):
            raise _Invalid(path, f"setting {path!r} must be {_type_name(tp)}, got {_show(value)}")
        return tuple(_check(a, v, _join(path, i)) for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if type(value) is not dict:
            raise _Invalid(path, f"setting {path!r} must be a mapping, got {_show(value)}")
        for k, v in value.items():
            if type(k) is not str:
                raise _Invalid(path, f"setting {path!r}: key {_show(k)} must be a string")
            _check(args[1], v, _join(path, str(k)))
        return value
    ok = type(value) is tp or (tp is float and type(value) is int)
    if not ok:
        hint = ""
        if tp in (int, float) and isinstance(value, str):
            try:
                float(value)
                hint = " (YAML reads a number like 1e-3 as text: write 1.0e-3)"
            except ValueError:
                pass
        raise _Invalid(path, f"setting {path!r} must be {_type_name(tp)}, got {_show(value)}{hint}")
    return value


def _check_section(cls: type, value: Any, path: str) -> Any:
    if type(value) is not dict:
        raise _Invalid(path, f"setting {path or 'config'!r} must be a mapping, got {_show(value)}")
    hints = _hints(cls)
    known = {f.name: f for f in fields(cls)}
    given = {}
    for key, item in value.items():
        name = _join(path, str(key))
        if key not in known:
            raise _Invalid(name, f"unknown setting {name!r}{_suggest(cls, str(key), path)}")
        checked = _check(hints[key], item, name)
        low = known[key].metadata.get("min")
        if low is not None and checked is not None and checked < low:
            raise _Invalid(name, f"setting {name!r} must be at least {low}, got {_show(item)}")
        if key == "prompt_format" and isinstance(checked, str) and not Path(checked).suffix:
            _check_prompt_format(checked, name)
        given[key] = checked
    if cls is EvalConfig and given.get("shard") is not None:
        from probe.evaluation import parse_shard

        try:
            parse_shard(given["shard"])
        except InputError:
            raise _Invalid(_join(path, "shard"), f"setting {_join(path, 'shard')!r} must be I/N with 0 <= I < N "
                                                 f"(e.g. 0/4), got {_show(given['shard'])}") from None
    try:
        return cls(**given)
    except (TypeError, ValueError) as exc:  # a section's own checks
        raise _Invalid(path, f"setting {path!r}: {exc}") from None


def _check_prompt_format(name: str, path: str) -> None:
    """A format named without a suffix is a shipped one (a JSON file is checked when it is read);
    the retrieval format (`rag.prompt_format`) one with passages."""
    from probe.evaluation import load_format, prompt_formats

    shipped = every = prompt_formats()
    if path.startswith("rag"):
        shipped = [n for n in every if load_format(n).passage is not None]
        if name in every and name not in shipped:
            raise _Invalid(path, f"{path}: prompt format {_show(name)} has no passages; choose {', '.join(shipped)} "
                                 "or a JSON format file with a passage")
    if name not in shipped:
        near = difflib.get_close_matches(name, shipped, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise _Invalid(path, f"{path}: unknown prompt format {_show(name)}{hint}; choose {', '.join(shipped)} "
                             "or a JSON format file")


def _suggest(cls: type, key: str, path: str) -> str:
    """" (did you mean 'X'?)" for a near miss among the section's keys, or a key of another
    section; else the keys known here."""
    names = [f.name for f in fields(cls)]
    near = difflib.get_close_matches(key, names, n=1)
    if near:
        return f" (did you mean {_join(path, near[0])!r}?)"
    if cls is not JobConfig and path.count(".") == 0:
        hints = _hints(JobConfig)
        for section in fields(JobConfig):
            other = hints[section.name]
            if is_dataclass(other) and other is not cls and key in {f.name for f in fields(other)}:
                return f" (did you mean {section.name + '.' + key!r}?)"
    return f" (known here: {', '.join(sorted(names))})"


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a section (the world and training sections are
    `probe.world`'s own dataclasses, imported only when a config is checked)."""
    if cls not in _HINTS:
        from probe.world import TrainConfig, WorldConfig

        _HINTS[cls] = typing.get_type_hints(cls, localns={"WorldConfig": WorldConfig, "TrainConfig": TrainConfig})
    return _HINTS[cls]


def _kind(tp_or_value: Any) -> str:
    """"list", "mapping" or "scalar": of a type, or of a value."""
    tp = tp_or_value if isinstance(tp_or_value, type) or typing.get_origin(tp_or_value) else type(tp_or_value)
    origin = typing.get_origin(tp) or tp
    if origin in (list, tuple):
        return "list"
    if origin is dict or is_dataclass(origin):
        return "mapping"
    return "scalar"


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if len(names) < len(args) else "")
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is tuple:
        return f"[{', '.join(_type_name(a) for a in args)}]"
    if origin is dict or is_dataclass(tp):
        return "a mapping"
    if origin is Literal:
        return " | ".join(map(str, args))
    return getattr(tp, "__name__", str(tp))
