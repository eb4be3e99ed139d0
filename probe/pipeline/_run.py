"""The main job, `ltprobe run`: world -> model -> linking -> index -> counts -> evaluation ->
retrieval augmentation -> summary -> report.

Each stage calls the same public function as its stage command and writes its outputs
atomically. Each stage is fingerprinted (`probe.pipeline._stages`): a re-run skips the stages whose
settings, inputs and earlier stages are unchanged, recomputes the others and those after
them, and a job killed anywhere resumes at the stage (and, for evaluation, the completion)
where it stopped. `manifest.json` records, stage by stage, what the files were computed from.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, read_records, write_json, write_jsonl
from entity_linking.logs import log_file, quiet_progress
from probe.pipeline._stages import Stages, corpus_identity, identity

logger = logging.getLogger(__name__)


def run(config: dict[str, Any], out_dir: str | Path, *, quiet: bool = False,
        force: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Run the whole job described by `config` (see `probe.pipeline._config.DEFAULTS`) into `out_dir`.

    Each stage is fingerprinted (`probe.pipeline._stages`): a re-run recomputes the stages whose
    settings, input files or earlier stages changed, and those after them; `force` names
    stages to recompute anyway. Returns the summary (also written to `summary.json`).

    The stages' messages go to `logging` and are appended to `run.log` in `out_dir` (with time
    and level; DEBUG too where the toolkit's loggers are set to it). `quiet`: no headline on
    stdout and no progress bars.
    """
    from entity_linking.faults import fault_point
    from probe.pipeline._lock import RunLock, describe

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out) as lock, quiet_progress(quiet), \
            log_file(out / "run.log", header=f"ltprobe run into {out}"):  # one job per folder
        config = _with_available_backend(config)
        stages = Stages(out, force=force, quiet=quiet)
        if lock.previous:
            stages(f"[lock] took over the lock of a job that is gone ({describe(lock.previous)})")
        fault_point("run:locked")
        return _run_locked(config, out, stages, quiet)


def _run_locked(config: dict[str, Any], out: Path, stages: Stages, quiet: bool) -> dict[str, Any]:
    from probe.evaluation import RETRIEVAL_SETTINGS

    log = stages
    _write_manifest(out, config)
    inputs = _inputs(config, out, stages)
    if len(inputs["models"]) > 1 and not config["eval"]["shard"]:
        model_parameters_of(config, inputs["models"])  # a missing parameter count fails before the stages

    paths = _data_stages(config, inputs, out, stages)
    qa_path, qa_entities, index_dir = paths["qa"], paths["qa_entities"], paths["index"]

    predictions_path = out / "predictions.jsonl"
    models = inputs["models"]

    def evaluate_all() -> None:
        qa = [r for _, r in read_records(qa_path)]
        passages = retrieve(config, qa, index_dir=index_dir, qa_entities=qa_entities,
                            retrieval_out=out / "retrieval.json")
        predictions = []
        for model in models:  # one model loaded at a time; the completion cache is keyed by model
            if len(models) > 1:
                log(f"[eval] model {model}")
            checkpoint = model in inputs.get("checkpoints", ())
            predictions += evaluate_model(config, model, qa, passages=passages, cache_dir=out / "cache",
                                          settings=["closed_book"] if checkpoint else None)
        write_jsonl(predictions_path, predictions)

    eval_cfg = config["eval"]
    reads_index = bool(set(RETRIEVAL_SETTINGS) & set(eval_cfg["settings"]))
    stages.run("eval", [predictions_path], evaluate_all,
               settings={"model.backend": config["model"]["backend"], "model.options": config["model"]["options"],
                         "eval": eval_cfg, "rag": config["rag"] if reads_index else None},
               inputs={"models": [identity(m) for m in models],
                       **({"rag.index": identity(_retrieval_index_info(config))}
                          if reads_index and config["rag"].get("index") else {})},
               after=["qa", "link-qa", "index", "count"] if reads_index else ["qa"],
               clear=[predictions_path, out / "retrieval.json"])
    _learning_stages(config, inputs, out, stages, index_dir)
    if config["eval"]["shard"]:
        log(f"[summary] shard {config['eval']['shard']} done; `ltprobe merge` the shards' folders "
            "for the summary and report")
        return {}

    summary_path = out / "summary.json"
    stages.run("summary", [summary_path], lambda: write_summary(config, inputs["model"], out, inputs["world"]),
               settings={"analysis": config["analysis"], "model.params": config["model"]["params"],
                         "model.train": config["model"]["train"] is not None,
                         "index.backend": config["index"]["backend"]},
               inputs={"truth": identity(inputs["world"] / "truth.jsonl") if inputs["world"] else None},
               after=["eval", "count"] + [s for s in ("count-by-step", "errors") if s in stages.results])

    from probe.report import write_report

    stages.run("report", [out / "report.html"], lambda: write_report(out), settings={}, after=["summary"])
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if not quiet:
        _print_headline(summary, out)
    return summary


def _with_available_backend(config: dict[str, Any]) -> dict[str, Any]:
    """The config with the generation backend and options that will really run (vLLM falls
    back to transformers where it is not installed; vLLM's option names translated for
    transformers), decided before any stage so the notice comes first and the manifest records it."""
    from probe.generation import resolve_backend

    model = config["model"]
    backend, options = resolve_backend(model["backend"], model["options"])
    if backend == model["backend"] and options == model["options"]:
        return config
    return {**config, "model": {**model, "backend": backend, "options": options}}


def _data_stages(config: dict[str, Any], inputs: dict[str, Any], out: Path, stages: Stages) -> dict[str, Path]:
    """The stages before evaluation: QA set, QA linking, corpus linking, index, counts.

    Outputs of another job named in the config stand in for the stages that would compute
    them: `data.qa_entities` and `data.counts` are copied into this run folder (small files the
    report and `ltprobe merge` read), `data.linked` and `index.path` are used where they are (no
    `linked/` or `index/` is written here)."""
    from entity_linking import link_corpus, link_qa
    from indexes import build_index, open_index, write_counts
    from probe.evaluation import RETRIEVAL_SETTINGS, check_prompt_formats

    data, index_cfg = config["data"], config["index"]
    qa_path = out / "qa.jsonl"
    stages.run("qa", [qa_path], lambda: _write_qa(config, inputs, qa_path),
               settings={f"data.{key}": data[key] for key in ("preset", "split", "mapping", "limit")},
               inputs={"qa": identity(inputs["qa"])})
    # before linking and indexing, not after: prompt formats that cannot serve these QA pairs
    check_prompt_formats([r for _, r in read_records(qa_path)], config["eval"]["settings"],
                         config["eval"]["prompt_format"], config["rag"]["prompt_format"])

    qa_entities = out / "qa_entities.jsonl"
    linker_options = config["linking"]["options"]
    if data["qa_entities"]:
        _copy_given(stages, "link-qa", "data.qa_entities", data["qa_entities"], qa_entities)
    else:
        stages.run("link-qa", [qa_entities],
                   lambda: link_qa(qa_path, inputs["kb"], qa_entities, linker_options=linker_options),
                   settings={"linking.options": linker_options}, inputs={"kb": identity(inputs["kb"])},
                   after=["qa"])

    fields = {"text_field": data["text_field"], "id_field": data["id_field"], "split": data["corpus_split"]}
    field_settings = {"data.text_field": data["text_field"], "data.id_field": data["id_field"],
                      "data.corpus_split": data["corpus_split"]}
    infini_gram = index_cfg["backend"] == "infini-gram"
    if infini_gram:
        if not index_cfg["path"]:
            raise InputError(f"{config['_source']}: index.backend infini-gram needs index.path, the folder of an "
                             "infini-gram index (prebuilt, or `python -m infini_gram.indexing`)")
        if set(RETRIEVAL_SETTINGS) & set(config["eval"]["settings"]):
            raise InputError(f"{config['_source']}: an infini-gram index holds no passages to retrieve: set "
                             "eval.settings: [closed_book], or use an embedded or Elasticsearch index for retrieval")
    if index_cfg["path"]:
        index_dir = Path(_existing(index_cfg["path"], "index.path"))
        stages.skip("link-corpus", "index.path names an existing index")
        stages.given("index", "index.path", index_dir / "index.json"
                     if index_dir.is_dir() and not infini_gram else index_dir)
    else:
        linked = out / "linked"
        if data["linked"]:
            linked = Path(_existing(data["linked"], "data.linked"))
            stages.given("link-corpus", "data.linked", linked / "manifest.json" if linked.is_dir() else linked)
        else:
            stages.run("link-corpus", [linked / "manifest.json"],
                       lambda: link_corpus(inputs["corpus"], inputs["kb"], linked,
                                           workers=config["linking"]["workers"], linker_options=linker_options,
                                           **fields),
                       settings={"linking.options": linker_options, **field_settings},
                       inputs={"corpus": corpus_identity(inputs["corpus"]), "kb": identity(inputs["kb"])},
                       clear=[linked])
        index_dir = out / "index"
        stages.run("index", [index_dir / "index.json"],
                   lambda: build_index(inputs["corpus"], linked, index_dir, backend=index_cfg["backend"],
                                       passages=inputs["passages"], es_url=index_cfg["es_url"],
                                       es_index=index_cfg["es_index"], counts_only=index_cfg["counts_only"],
                                       **fields),
                   settings={"index.backend": index_cfg["backend"], "index.es_url": index_cfg["es_url"],
                             "index.es_index": index_cfg["es_index"], **field_settings,
                             **({"index.counts_only": True} if index_cfg["counts_only"] else {})},
                   inputs={"corpus": corpus_identity(inputs["corpus"]),
                           "passages": corpus_identity(inputs["passages"]) if inputs["passages"] else None},
                   after=["link-corpus"], clear=[index_dir])

    counts_path = out / "counts.jsonl"
    if data["counts"]:
        _copy_given(stages, "count", "data.counts", data["counts"], counts_path)
    else:
        def count() -> None:
            if infini_gram:  # alias phrases of the KB's entities, counted per document (indexes/_phrases.py)
                from indexes import load_aliases, open_phrase_index

                index = open_phrase_index(load_aliases(str(inputs["kb"])), infini_gram=str(index_dir),
                                          tokenizer=index_cfg["tokenizer"])
            else:
                index = open_index(index_dir)  # index.json says which backend, and where
            try:
                write_counts(index, qa_entities, counts_path, stoplist=index_cfg["stoplist"],
                             stoplist_sides=index_cfg["stoplist_sides"])
            finally:
                index.close()

        stages.run("count", [counts_path], count, settings={"index.stoplist_sides": index_cfg["stoplist_sides"],
                                                            "index.backend": index_cfg["backend"],
                                                            "index.tokenizer": index_cfg["tokenizer"]},
                   inputs={"stoplist": identity(index_cfg["stoplist"])}, after=["index", "link-qa"])
    return {"qa": qa_path, "qa_entities": qa_entities, "index": index_dir, "counts": counts_path}


def _copy_given(stages: Stages, name: str, setting: str, given: str, target: Path) -> None:
    """Stage `name` copies another job's output named by `setting` into this run folder."""
    import shutil

    given = _existing(given, setting)
    stages.run(name, [target], lambda: shutil.copyfile(given, target),
               settings={setting: str(Path(given).resolve())}, inputs={setting.split(".")[-1]: identity(given)})


def _existing(path: str, setting: str) -> str:
    if not Path(path).exists():
        raise InputError(f"{setting}: {path}: no such file or folder")
    return path


def index_dir_of(run_dir: str | Path, config: dict[str, Any]) -> Path:
    """The index a run used: `index.path` when its config names one, else RUN/index."""
    given = ((config or {}).get("index") or {}).get("path")
    return Path(given) if given else Path(run_dir) / "index"


def _inputs(config: dict[str, Any], out: Path, stages: Stages) -> dict[str, Any]:
    """Where the QA set, corpus, KB, retrieval collection and model come from."""
    data, model = config["data"], config["model"]
    inputs: dict[str, Any] = {"world": None}
    if config["world"] is not None:
        from probe.world import WorldConfig, generate_world, world_training_files

        world = out / "world"
        stages.run("world", [world / "truth.jsonl"],
                   lambda: generate_world(world, WorldConfig(**config["world"])),
                   settings={"world": config["world"]}, clear=[world])
        inputs.update(world=world, qa=world / "qa.jsonl", corpus=world / "corpus.jsonl",
                      kb=world / "kb.jsonl", passages=world / "encyclopedia.jsonl",
                      train_files=world_training_files(world))
    else:
        # another job's index (index.path) needs no corpus; its QA entities and linked corpus no KB
        index_given = bool(config["index"]["path"])
        needed = {"qa": True, "corpus": not index_given,
                  "kb": not (data["qa_entities"] and (index_given or data["linked"]))}
        missing = [key for key in ("qa", "corpus", "kb") if needed[key] and not data[key]]
        if missing:
            raise InputError(f"{config['_source']}: without `world`, data.{missing[0]} must be given")
        inputs.update(qa=data["qa"], corpus=data["corpus"], kb=data["kb"],
                      passages=data["passages"], train_files=[data["corpus"]])
    for key in ("corpus", "kb", "passages"):
        if data[key]:  # explicit data settings win over the world's files
            inputs[key] = data[key]

    paths = model["path"] if isinstance(model["path"], list) else [model["path"]] if model["path"] else []
    if not all(isinstance(p, str) and p for p in paths):
        raise InputError(f"{config['_source']}: model.path must be a model folder or hub id, or a list of them")
    models = []
    if model["train"] is not None:
        from probe.world import TrainConfig, train_model

        model_dir, train_config = out / "model", TrainConfig(**model["train"])
        if config["learning"]["checkpoints"]:  # checked before hours of training, not after
            steps, saved = train_config.steps, train_config.save_steps or []
            if not [s for s in saved if 0 < s < steps]:
                raise InputError(f"{config['_source']}: learning.checkpoints needs model.train.save_steps "
                                 f"below model.train.steps ({steps}), the steps to save checkpoints at; "
                                 f"got {saved or 'none'}")
        # train_model caches itself: it returns at once when the folder matches config and inputs.
        stages("[train] model (cached when already trained)")
        train_model(model_dir, inputs["train_files"], train_config)
        models.append(str(model_dir))
        if config["learning"]["checkpoints"]:  # issue 19: its checkpoints, evaluated closed-book
            from probe.analysis import checkpoint_folders

            inputs["checkpoints"] = [str(p) for p in checkpoint_folders(model_dir)]
            if not inputs["checkpoints"]:
                raise InputError(f"{config['_source']}: learning.checkpoints needs model.train.save_steps "
                                 "(the steps to save checkpoints at)")
            models += inputs["checkpoints"]
    models += paths
    if not models:
        raise InputError(f"{config['_source']}: set model.path (a model folder or hub id) or model.train")
    if len(set(models)) < len(models):
        raise InputError(f"{config['_source']}: model.path names a model twice")
    inputs["models"] = models
    inputs["model"] = models[0]  # the primary model
    return inputs


def _learning_stages(config: dict[str, Any], inputs: dict[str, Any], out: Path, stages: Stages,
                     index_dir: Path) -> None:
    """Issue 19's stages after evaluation: relevant documents seen by each model's training
    step (`counts_by_step.jsonl`, when there is a training order and a model with a known step)
    and the attribution of wrong answers (`errors.jsonl`, with `analysis.error_attribution`)."""
    from probe.analysis import model_step

    learning = config["learning"]
    order = learning["order"] or (out / "model" / "train_order.npz" if config["model"]["train"] is not None
                                  and learning["checkpoints"] else None)
    steps = sorted({s for s in (model_step(m) for m in inputs["models"]) if s is not None})
    if order is not None and steps:
        from indexes import load_order, open_index, write_counts_by_step

        def count_by_step() -> None:
            with open_index(index_dir) as index:
                write_counts_by_step(index, out / "qa_entities.jsonl",
                                     load_order(order, docs_per_step=learning["docs_per_step"]), steps,
                                     out / "counts_by_step.jsonl", stoplist=config["index"]["stoplist"])

        stages.run("count-by-step", [out / "counts_by_step.jsonl"], count_by_step,
                   settings={"learning": learning, "steps": steps}, inputs={"order": identity(order)},
                   after=["count", "index"])
    if config["analysis"]["error_attribution"]:
        from probe.analysis import write_errors

        stages.run("errors", [out / "errors.jsonl"],
                   lambda: write_errors(out / "predictions.jsonl", out / "qa.jsonl", out / "qa_entities.jsonl",
                                        out / "counts.jsonl", index_dir, inputs["kb"], out / "errors.jsonl",
                                        model=inputs["model"]),
                   settings={"analysis.error_attribution": True}, inputs={"kb": identity(inputs["kb"])},
                   after=["eval", "count", "index"])


def model_parameters_of(config: dict[str, Any], models: list[str]) -> dict[str, float]:
    """Parameter counts of the run's models: `model.params`, else read from their weights."""
    from probe.pipeline._params import model_parameters

    given = config["model"]["params"]
    if given is not None and not isinstance(given, dict):
        raise InputError(f"{config.get('_source', 'config')}: model.params must map each model to its "
                         "parameter count, e.g. {my/model: 1.3e9}")
    return model_parameters(models, given, how_to_give="model.params: {MODEL: N} in the config")


def _write_qa(config: dict[str, Any], inputs: dict[str, Any], qa_path: Path) -> None:
    from probe.data import load_qa

    data = config["data"]
    records = load_qa(inputs["qa"], preset=data["preset"], mapping=data["mapping"], split=data["split"])
    if data["limit"] is not None:
        records = records[: data["limit"]]
    write_jsonl(qa_path, records)


def retrieve(config: dict[str, Any], qa: list[dict[str, Any]], *, index_dir: Path, qa_entities: Path,
             retrieval_out: Path | None = None) -> dict[str, dict[str, list[Any]]]:
    """The passages of the retrieval settings among `config["eval"]["settings"]`
    (`probe.evaluation.retrieve_settings` on the run's index), retrieved once for every model.
    With `rag`, `retrieval_out` receives the retrieval quality (recall@k by count bucket,
    precision of the passages given)."""
    from indexes import open_index
    from probe.evaluation import RETRIEVAL_SETTINGS, retrieval_quality, retrieve_settings

    rag_cfg = config["rag"]
    settings = [s for s in config["eval"]["settings"] if s in RETRIEVAL_SETTINGS]
    if not settings:
        return {}
    # rag.index: a separate retrieval collection (the original's Wikipedia), else the run's index
    search = open_index(_existing(rag_cfg["index"], "rag.index")) if rag_cfg.get("index") else nullcontext()
    with open_index(index_dir) as index, search as search_index:
        passages = retrieve_settings(index, qa, settings, k=rag_cfg["k"], qa_entities=qa_entities,
                                     search_index=search_index)
    if "rag" in passages and retrieval_out is not None:
        write_json(retrieval_out, retrieval_quality(passages["rag"], qa, rag_cfg["k"],
                                                    counts=counts_of(retrieval_out.parent), qa_entities=qa_entities))
    return passages


def _retrieval_index_info(config: dict[str, Any]) -> str | None:
    """`rag.index`'s index.json (what the eval stage's fingerprint records of it), or None."""
    given = config["rag"].get("index")
    if not given:
        return None
    return str(Path(_existing(given, "rag.index")) / "index.json") if Path(given).is_dir() else given


def evaluate_model(config: dict[str, Any], model: str, qa: list[dict[str, Any]], *,
                   passages: dict[str, dict[str, list[Any]]] | None = None, cache_dir: Path,
                   settings: list[str] | None = None) -> list[dict[str, Any]]:
    """Predictions of `model` on `qa` in each setting of `config["eval"]["settings"]` (or
    `settings`; the retrieval settings take their `passages` from `retrieve`): the evaluation of
    a run, also used by the counterfactual experiment so that both models see exactly the same
    prompts (`probe.evaluation.evaluate_settings`)."""
    from probe.data import default_scoring
    from probe.evaluation import SETTINGS, evaluate_settings
    from probe.generation import get_generator

    eval_cfg, rag_cfg, model_cfg = config["eval"], config["rag"], config["model"]
    settings = settings if settings is not None else eval_cfg["settings"]
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise InputError(f"eval.settings: unknown setting(s) {sorted(unknown)}; use {', '.join(SETTINGS)}")
    generator = get_generator(model_cfg["backend"], model, **model_cfg["options"])
    try:
        # one prompt skeleton and the same shots for every setting unless the config says otherwise
        return evaluate_settings(
            qa, generator, settings, passages=passages, shots=eval_cfg["shots"],
            prompt_format=eval_cfg["prompt_format"], rag_shots=rag_cfg["shots"],
            rag_prompt_format=rag_cfg["prompt_format"], k=rag_cfg["k"], filter_shots=rag_cfg["filter_shots"],
            max_tokens=eval_cfg["max_tokens"], scoring=eval_cfg["scoring"] or default_scoring(config["data"]["preset"]),
            seed=eval_cfg["seed"], pool_size=eval_cfg["pool_size"], chat=eval_cfg["chat"], cache_dir=cache_dir,
            shard=eval_cfg["shard"], gold_logprob=eval_cfg.get("gold_logprob", False))
    finally:
        generator.close()


def write_summary(config: dict[str, Any], model: str, out: Path, world: Path | None) -> dict[str, Any]:
    """Summarize `out/predictions.jsonl` against `out/counts.jsonl` into `out/summary.json`
    (`probe.analysis.build_summary` with the run's files and analysis settings).

    `model` is the primary model: the contract's keys are its results. Predictions of several
    models add `models` and `scaling`."""
    from probe.analysis import build_summary

    analysis = config["analysis"]
    retrieval = out / "retrieval.json"
    summary = build_summary(
        [r for _, r in read_records(out / "predictions.jsonl")], counts_of(out), model=model,
        index=config["index"]["backend"], parameters=lambda models: model_parameters_of(config, models),
        retrieval=json.loads(retrieval.read_text(encoding="utf-8")) if retrieval.exists() else None,
        qa=[r for _, r in read_records(out / "qa.jsonl")] if (out / "qa.jsonl").exists() else None,
        truth=world / "truth.jsonl" if world is not None else None,
        counts_by_step=out / "counts_by_step.jsonl", errors=out / "errors.jsonl", diagnostics=True,
        trained_world=world is not None and config["model"]["train"] is not None,
        min_bucket=analysis["min_bucket"], n_boot=analysis["n_boot"], seed=analysis["seed"],
        max_count=analysis["scaling_max_count"], target_accuracy=analysis["target_accuracy"])
    summary.write(out / "summary.json")
    return summary.to_dict()


def merge(shard_dirs: list[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Join the predictions of runs that evaluated shards `i/n` of one job (`eval.shard`) into
    one run folder with the summary and report of the whole job.

    The shards must come from the same config (but for the shard), with identical counts, and
    together cover every shard exactly once.
    """
    dirs = [Path(d) for d in shard_dirs]
    if not dirs:
        raise InputError("merge: give the run folders of the shards")
    manifests = []
    for d in dirs:
        if not (d / "manifest.json").exists() or not (d / "predictions.jsonl").exists():
            raise InputError(f"{d}: not a finished run folder (manifest.json and predictions.jsonl needed)")
        manifests.append(json.loads((d / "manifest.json").read_text(encoding="utf-8"))["config"])
    shards = [m["eval"]["shard"] for m in manifests]
    if None in shards:
        raise InputError(f"{dirs[shards.index(None)]}: this run was not sharded (eval.shard is null)")
    n = {int(str(s).split("/")[1]) for s in shards}
    if len(n) != 1 or sorted(int(str(s).split("/")[0]) for s in shards) != list(range(n.pop())):
        raise InputError(f"merge: the shards {shards} do not cover 0..n-1 of one n exactly once")
    first = manifests[0]
    for d, m in zip(dirs[1:], manifests[1:]):
        if _results_config(m) != _results_config(first):
            raise InputError(f"{d}: its config differs from {dirs[0]} (beyond eval.shard and shared work)")
        if (d / "counts.jsonl").read_bytes() != (dirs[0] / "counts.jsonl").read_bytes():
            raise InputError(f"{d}: its counts.jsonl differs from {dirs[0]}'s")

    from probe.pipeline._lock import RunLock

    out = Path(out_dir)
    with RunLock(out):
        return _merge_into(dirs, manifests, first, out)


def _merge_into(dirs: list[Path], manifests: list[dict[str, Any]], first: dict[str, Any],
                out: Path) -> dict[str, Any]:
    import shutil

    from probe.evaluation import setting_order
    from probe.report import write_report

    predictions, seen = [], set()
    for d in dirs:
        for line, record in read_records(d / "predictions.jsonl"):
            key = (record["model"], record["id"], record["setting"])
            if key in seen:
                raise InputError(f"{d / 'predictions.jsonl'}:{line}: question {record['id']!r} "
                                 f"({record['setting']}, {record['model']}) is in two shards")
            seen.add(key)
            predictions.append(record)
    order = {r["id"]: i for i, (_, r) in enumerate(read_records(dirs[0] / "qa.jsonl"))}
    model_order = {m: i for i, m in enumerate(dict.fromkeys(p["model"] for p in predictions))}
    predictions.sort(key=lambda p: (model_order[p["model"]], setting_order(p["setting"])[0],
                                    order.get(p["id"], len(order))))
    for name in ("qa.jsonl", "qa_entities.jsonl", "counts.jsonl"):
        if (dirs[0] / name).resolve() != (out / name).resolve():
            shutil.copyfile(dirs[0] / name, out / name)
    write_jsonl(out / "predictions.jsonl", predictions)
    config = {**first, "eval": {**first["eval"], "shard": None}}
    _write_manifest(out, config)
    world = dirs[0] / "world" if (dirs[0] / "world" / "truth.jsonl").exists() else None
    model = predictions[0]["model"] if predictions else str(first["model"]["path"])
    summary = write_summary(config, model, out, world)
    write_report(out)
    return summary


def _results_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config less what does not change a shard's results: its shard, its file name, and the
    other job's work it reuses (`data.linked`, `data.qa_entities`, `data.counts`, `index.path`;
    the counts themselves are compared)."""
    data = {k: v for k, v in (config.get("data") or {}).items() if k not in ("linked", "qa_entities", "counts")}
    index = {k: v for k, v in (config.get("index") or {}).items() if k != "path"}
    return {**config, "eval": {**config["eval"], "shard": None}, "_source": None, "data": data, "index": index}


def counts_of(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run folder's counts.jsonl."""
    return [r for _, r in read_records(run_dir / "counts.jsonl")]


def _write_manifest(out: Path, config: dict[str, Any]) -> None:
    """Config, versions, commit and seeds of the run (rewritten on each start; history kept)."""
    from probe.pipeline._provenance import environment

    manifest_path = out / "manifest.json"
    starts, stages = [], None
    if manifest_path.exists():
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        starts, stages = previous.get("starts", []), previous.get("stages")
    starts.append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_json(manifest_path, {
        "config": config, **environment(), "starts": starts,
        **({"stages": stages} if stages is not None else {}),  # what each stage's files came from
        "seeds": {"world": (config["world"] or {}).get("seed"), "eval": config["eval"]["seed"],
                  "analysis": config["analysis"]["seed"],
                  "train": (config["model"]["train"] or {}).get("seed")},
    })


def _print_headline(summary: dict[str, Any], out: Path) -> None:
    settings = summary["settings"]
    print(f"report: {out / 'report.html'}")
    print(f"questions: {summary['n_questions']}")
    for name in ("closed_book", "rag"):
        if name in settings:
            s = settings[name]
            slope = "undefined (all counts equal)" if s["slope_per_decade"] is None else \
                f"{s['slope_per_decade']:+.3f}" + (f" [{s['slope_ci'][0]:+.3f}, {s['slope_ci'][1]:+.3f}]"
                                                   if s["slope_ci"] else "")
            print(f"{name}: accuracy {s['accuracy']:.3f}, slope per decade {slope}")
    if summary.get("count_dependence_reduction") is not None:
        print(f"count dependence reduction (1 - slope_rag / slope_closed_book): "
              f"{summary['count_dependence_reduction']:.2f}")
    from probe.analysis import count_dependence_lines

    for line in count_dependence_lines(summary):
        print(line)
    for name in ("closed_book", "rag"):
        s = settings.get(name) or {}
        if s.get("gold_logprob_slope") is not None:
            ci = s.get("gold_logprob_slope_ci")
            print(f"{name}: gold-answer log-probability slope per decade {s['gold_logprob_slope']:+.2f} nats"
                  + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""))
    learning = summary.get("learning")
    if learning:
        points = ", ".join(f"step {c['step']} {c['accuracy']:.3f}" for c in learning["checkpoints"])
        last = learning["checkpoints"][-1]
        half = "" if last.get("count_at_half") is None else \
            f"; half the facts known at {last['count_at_half']:.0f} documents seen"
        print(f"learning (closed_book accuracy by checkpoint): {points}{half}")
    attribution = ((summary.get("error_attribution") or {}).get("settings") or {}).get("closed_book")
    if attribution and attribution.get("share_more_frequent") is not None:
        ci = attribution.get("ci")
        print(f"error attribution (closed_book): {attribution['share_more_frequent']:.0%} of "
              f"{attribution['n_attributed']} linked wrong answers co-occur with the question entity more "
              f"often than the gold answer" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else ""))
    for warning in summary.get("diagnostics") or []:
        print(f"WARNING: {warning['message']}")
    scaling = summary.get("scaling")
    if scaling:
        for point in scaling["points"]:
            acc = "n/a" if point["accuracy"] is None else f"{point['accuracy']:.3f}"
            print(f"{point['model']} ({point['parameters']:.3g} parameters): accuracy {acc} on "
                  f"{point['n']} questions with count < {scaling['max_count']}")
        if scaling["slope"] is not None:
            r2 = "n/a" if scaling["r2"] is None else f"{scaling['r2']:.2f}"
            print(f"scaling: accuracy {scaling['intercept']:+.3f} {scaling['slope']:+.3f} x log10(parameters), "
                  f"R^2 {r2}" + ("" if scaling["parameters_for_target"] is None else
                                 f"; {scaling['target_accuracy']:.0%} needs about "
                                 f"{scaling['parameters_for_target']:.2g} parameters"))
