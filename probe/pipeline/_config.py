"""The job configuration: a YAML file plus `--set key.path=value` overrides.

The configuration is a plain nested dictionary checked against `DEFAULTS`: every key a user
writes must exist there (a typo is an error naming the key, not a silently ignored setting),
and every value takes the type of its default. `null` defaults accept any value.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from entity_linking.io import InputError
from probe.evaluation import SETTINGS

# Every setting of `ltprobe run`, with its default and meaning. probe/configs/demo.yaml is the
# embedded default job; a user's config overrides what it names.
DEFAULTS: dict[str, Any] = {
    # A generated controlled world (probe.WorldConfig fields). null: bring your own data.
    "world": None,
    "data": {
        "qa": None,          # QA set: local file (JSONL/CSV/TSV/Parquet) or Hugging Face data set
        "preset": None,      # trivia_qa | nq_open | popqa (field mappings of known data sets)
        "split": None,       # data set split, for Hugging Face data sets
        "mapping": None,     # field mapping {question: ..., answers: ..., id: ...} for local files
        "limit": None,       # evaluate only the first N questions
        "corpus": None,      # pretraining corpus: a file, folder or glob of .jsonl(.gz/.zst) and .parquet,
                             # hf:NAME[:CONFIG] (Hugging Face, streamed) or an object-store URL (s3://...)
        "text_field": "text",  # the corpus's text field/column
        "id_field": "id",    # the corpus's document id field/column (missing: "<file>:<line>")
        "corpus_split": "train",  # split of a Hugging Face corpus
        "kb": None,          # knowledge base: kb.jsonl or a folder saved by `ltprobe kb build`
        "passages": None,    # retrieval collection (JSONL id/text); null: the corpus's passages
        # Another job's outputs, shared instead of computed again (job arrays, one job per model):
        "linked": None,      # a linked corpus folder (`ltprobe link-corpus`): no linking here
        "qa_entities": None,  # a qa_entities.jsonl (`ltprobe link-qa`) for the same QA set: no QA linking
        "counts": None,      # a counts.jsonl for the same QA set: no counting
    },
    "model": {
        "path": None,        # model folder or hub id, or a list of them: several models, each evaluated
                             # (the first, or the trained model, is the primary one; summary.json adds
                             # `models` and the `scaling` analysis across their sizes)
        "train": None,       # train a model on the world's corpus (probe.TrainConfig fields); it comes
                             # first, before the models of `path`
        "params": None,      # {model: parameter count} for the scaling analysis (default: read from
                             # the model's safetensors weights)
        "backend": "vllm",   # vllm | openai | transformers
        "options": {},       # passed to the backend (vLLM: dtype, max_model_len, tensor_parallel_size, ...)
    },
    "linking": {
        "workers": None,     # processes for corpus linking (null: all cores)
        "options": {},       # entity_linking.Linker options
    },
    "index": {
        "backend": "embedded",  # embedded | elasticsearch | infini-gram (alias-phrase counts on the
                                # infini-gram index at index.path; closed-book evaluation only)
        "path": None,        # an existing index folder (another job's RUN/index): no linking or indexing here
        "tokenizer": "bytes",  # infini-gram: the index's tokenizer (`bytes`, or a Hugging Face name/folder)
        "es_url": None,
        "es_index": None,
        "stoplist": None,    # entity ids to leave out of counts: a file, or `countries` (the
                             # original study's 184 countries, shipped with ltprobe)
        "stoplist_sides": "question",  # question (the original study) | both
    },
    "eval": {
        "settings": list(SETTINGS),
        "shots": 4,          # in-context examples (closed-book; retrieval too unless rag.shots is set)
        "prompt_format": "qa",  # qa (`Q: ...\nA: ...`, passages as lines before each question: one
                                # skeleton for every setting) | rag | a JSON format file
        "max_tokens": 16,
        "scoring": None,     # em (SQuAD-normalized exact match) | contains (alias containment);
                             # null: the QA set's own (contains for the popqa preset, else em)
        "pool_size": 16,     # questions set aside (never scored) to draw in-context examples from
        "chat": False,       # wrap prompts in the model's chat template (instruction-tuned models)
        "seed": 0,
        "shard": None,       # "i/n": evaluate only shard i of n (job arrays); `ltprobe merge` joins them
        "gold_logprob": False,  # also score the gold answer's log-probability (best alias) per question
    },
    "rag": {
        "k": 3,              # retrieved passages per question
        "shots": None,       # in-context examples in retrieval and oracle prompts (null: eval.shots)
        "prompt_format": None,  # format of retrieval and oracle prompts (null: eval.prompt_format)
        "filter_shots": False,  # true: only shots whose passages contain their answer (the default,
                                # false, is the original study's: every shot with its own passages)
    },
    "analysis": {
        "min_bucket": 20,    # buckets with fewer questions are flagged in the summary and report
        "n_boot": 1000,
        "seed": 0,
        "scaling_max_count": 100,  # several models: scaling over questions with fewer relevant documents
        "target_accuracy": None,   # several models: extrapolate the parameters needed for this accuracy
        "error_attribution": False,  # link wrong answers, count them with the question entity (errors.jsonl)
    },
    # Learning curves (issue 19): checkpoints of one training evaluated in one job against the
    # relevant documents each had seen (counts_by_step.jsonl).
    "learning": {
        "checkpoints": False,  # evaluate the trained model's checkpoints (model.train.save_steps), closed-book
        "order": None,         # training order for counts by step (default: the trained model's train_order.npz)
        "docs_per_step": None, # documents per step of a .npy order (Pythia/OLMo style)
    },
}


def load_config(path: str | Path | None, overrides: list[str] = ()) -> dict[str, Any]:
    """Read a YAML config (None: the embedded default), apply `key.path=value` overrides, check it."""
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
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set {item!r}: expected KEY.PATH=VALUE")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise InputError(f"--set {item!r}: VALUE is not valid YAML ({' '.join(str(exc).split())})") from None
        _set_path(user, key.split("."), parsed)
    config = _merge(copy.deepcopy(DEFAULTS), user, where=str(path))
    config["_source"] = str(path)
    return config


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


def _merge(base: Any, user: Any, where: str, prefix: str = "") -> Any:
    if isinstance(base, dict) and base:
        if not isinstance(user, dict):
            raise InputError(f"{where}: {prefix or 'config'} must be a mapping")
        for key, value in user.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in base:
                known = ", ".join(sorted(base))
                raise InputError(f"{where}: unknown setting {name!r} (known here: {known})")
            base[key] = _merge(base[key], value, where, name)
        return base
    if base is None or user is None or isinstance(base, dict):
        return user
    if isinstance(base, bool) != isinstance(user, bool) or not isinstance(user, _type_of(base)):
        raise InputError(f"{where}: setting {prefix!r} must be {type(base).__name__}, "
                         f"got {user!r}")
    return user


def _type_of(value: Any) -> type | tuple[type, ...]:
    return (int, float) if isinstance(value, float) else type(value)
