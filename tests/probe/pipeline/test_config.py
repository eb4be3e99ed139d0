"""The job config's schema (issue 17): every shipped config loads, and a config with an unknown
key, a wrong type or an unknown value fails when it loads, in one line naming the key path."""

from __future__ import annotations

import pytest

from entity_linking import InputError
from probe.pipeline import JobConfig, check_config, load_config
from probe.pipeline._config import DEFAULTS, PACKAGED_CONFIGS
from probe.world import TrainConfig, WorldConfig
from tests.paths import REPO


@pytest.mark.parametrize("name", PACKAGED_CONFIGS)
def test_every_packaged_config_loads(name):
    config = load_config(name)
    assert isinstance(check_config(config), JobConfig)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_loads(path):
    load_config(path)


def test_defaults_come_from_the_schema_and_load_as_dicts():
    assert list(DEFAULTS) == ["world", "data", "model", "linking", "index", "eval", "rag", "analysis", "learning"]
    assert DEFAULTS["eval"]["settings"] == ["closed_book", "rag", "oracle"] and DEFAULTS["model"]["options"] == {}
    config = load_config("smoke", ["eval.shots=1", "world.people=60"])
    assert config["eval"]["shots"] == 1 and config["world"] == {"seed": 0, "people": 60, "reading_docs": 300}
    job = check_config(config)
    assert isinstance(job.world, WorldConfig) and job.world.people == 60
    assert isinstance(job.model.train, TrainConfig) and job.model.train.steps == 30
    assert job.eval.settings == ["closed_book", "rag", "oracle"]


def _job(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, sets, message", [
    # unknown keys, with the nearest known one
    ("", ["eval.shotz=2"], "--set 'eval.shotz=2': unknown setting 'eval.shotz' (did you mean 'eval.shots'?)"),
    ("evl: {shots: 2}\n", [], "JOB: unknown setting 'evl' (did you mean 'eval'?)"),
    ("eval: {k: 3}\n", [], "JOB: unknown setting 'eval.k' (did you mean 'rag.k'?)"),
    ("world: {peeple: 10}\n", [], "JOB: unknown setting 'world.peeple' (did you mean 'world.people'?)"),
    ("model: {train: {stepz: 3}}\n", [], "JOB: unknown setting 'model.train.stepz' (did you mean 'model.train.steps'?)"),
    ("bogus: 1\n", [], "JOB: unknown setting 'bogus' (known here: analysis, data, eval, index, learning, linking, "
                       "model, rag, world)"),
    # wrong types
    ("", ["eval.shots=many"], "--set 'eval.shots=many': setting 'eval.shots' must be int, got 'many'"),
    ("eval: 3\n", [], "JOB: setting 'eval' must be a mapping, got 3"),
    ("eval: {chat: 1}\n", [], "JOB: setting 'eval.chat' must be bool, got 1"),
    ("world: {people: true}\n", [], "JOB: setting 'world.people' must be int, got True"),
    ("model: {path: [a, 3]}\n", [], "JOB: setting 'model.path[1]' must be str, got 3"),
    ("model: {path: 3}\n", [], "JOB: setting 'model.path' must be str or list of str or null, got 3"),
    ("data: {mapping: {question: 3}}\n", [], "JOB: setting 'data.mapping.question' must be str, got 3"),
    ("model: {train: {lr: 1e-3}}\n", [], "JOB: setting 'model.train.lr' must be float, got '1e-3' (YAML reads a "
                                         "number like 1e-3 as text: write 1.0e-3)"),
    ("model: {train: {betas: [0.9]}}\n", [], "JOB: setting 'model.train.betas' must be [float, float], got [0.9]"),
    # unknown values
    ("", ["eval.settings=[closed_book, ragg]"],
     "--set 'eval.settings=[closed_book, ragg]': eval.settings[1]: unknown setting 'ragg' (did you mean 'rag'?); "
     "choose closed_book, rag, oracle"),
    ("model: {backend: vlm}\n", [], "JOB: model.backend: unknown backend 'vlm' (did you mean 'vllm'?); "
                                    "choose vllm, openai, transformers"),
    ("index: {backend: lucene}\n", [], "JOB: index.backend: unknown backend 'lucene'; "
                                       "choose embedded, elasticsearch, infini-gram"),
    ("eval: {scoring: exact}\n", [], "JOB: eval.scoring: unknown scoring 'exact'; choose em, contains"),
    ("data: {preset: triviaqa}\n", [], "JOB: data.preset: unknown preset 'triviaqa' (did you mean 'trivia_qa'?); "
                                       "choose trivia_qa, nq_open, popqa"),
    ("index: {stoplist_sides: questions}\n", [], "JOB: index.stoplist_sides: unknown side 'questions' "
                                                 "(did you mean 'question'?); choose question, both"),
    ("rag: {prompt_format: rags}\n", [], "JOB: rag.prompt_format: unknown prompt format 'rags' (did you mean "
                                        "'rag'?); choose qa, rag or a JSON format file"),
    ("rag: {prompt_format: cloze}\n", [], "JOB: rag.prompt_format: prompt format 'cloze' has no passages; choose qa, "
                                         "rag or a JSON format file with a passage"),
    ("eval: {prompt_format: clozes}\n", [], "JOB: eval.prompt_format: unknown prompt format 'clozes' (did you mean "
                                           "'cloze'?); choose cloze, qa, rag or a JSON format file"),
    # values out of range
    ("rag: {k: 0}\n", [], "JOB: setting 'rag.k' must be at least 1, got 0"),
    ("", ["eval.shard=4/4"], "--set 'eval.shard=4/4': setting 'eval.shard' must be I/N with 0 <= I < N (e.g. 0/4), "
                             "got '4/4'"),
])
def test_a_bad_config_fails_when_it_loads_naming_the_key(tmp_path, text, sets, message):
    path = _job(tmp_path, text or "{}\n")
    with pytest.raises(InputError) as caught:
        load_config(path, sets)
    assert str(caught.value).replace(str(path), "JOB") == message


def test_overrides_are_checked_after_they_apply(tmp_path):
    path = _job(tmp_path, "eval: {settings: [closed_book, bogus]}\n")
    with pytest.raises(InputError, match="unknown setting 'bogus'"):
        load_config(path)
    assert load_config(path, ["eval.settings=[closed_book]"])["eval"]["settings"] == ["closed_book"]
    assert load_config(path, ["eval.settings=[rag]", "eval.shard=1/4", "rag.shots=null"])["eval"]["shard"] == "1/4"
    assert load_config(_job(tmp_path, "world: null\n"), ["world.people=60"])["world"] == {"people": 60}


def test_settings_that_take_any_value_still_do(tmp_path):
    config = load_config(_job(tmp_path, "model: {options: {dtype: auto, max_model_len: 512, extra: [1, {a: b}]}}\n"
                                        "linking: {options: {threshold: 0.3}}\nanalysis: {target_accuracy: 1}\n"))
    assert config["model"]["options"]["extra"] == [1, {"a": "b"}] and config["analysis"]["target_accuracy"] == 1
