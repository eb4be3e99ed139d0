"""The main job, `ltprobe run`: world -> model -> linking -> index -> counts -> evaluation ->
retrieval augmentation -> summary -> report.

Each stage calls the same public function as its stage command and writes its outputs
atomically, so an existing output means a finished stage: a re-run skips it, and a job
killed anywhere resumes at the stage (and, for evaluation, the completion) where it stopped.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, read_records, write_json, write_jsonl


def run(config: dict[str, Any], out_dir: str | Path, *, quiet: bool = False) -> dict[str, Any]:
    """Run the whole job described by `config` (see `probe._config.DEFAULTS`) into `out_dir`.

    Returns the summary (also written to `summary.json`).
    """
    from entity_linking._faults import fault_point
    from probe._lock import RunLock, describe

    out = Path(out_dir)
    log = _Log(quiet)
    with RunLock(out) as lock:  # one job per folder; a second stops here, naming the first
        if lock.previous:
            log(f"[lock] took over the lock of a job that is gone ({describe(lock.previous)})")
        fault_point("run:locked")
        return _run_locked(config, out, log, quiet)


def _run_locked(config: dict[str, Any], out: Path, log: _Log, quiet: bool) -> dict[str, Any]:
    _write_manifest(out, config)
    inputs = _inputs(config, out, log)
    if len(inputs["models"]) > 1 and not config["eval"]["shard"]:
        model_parameters_of(config, inputs["models"])  # a missing parameter count fails before the stages

    qa_path = out / "qa.jsonl"
    log.stage("qa", [qa_path], lambda: _write_qa(config, inputs, qa_path))

    qa_entities = out / "qa_entities.jsonl"
    linked = out / "linked"
    index_dir = out / "index"
    counts_path = out / "counts.jsonl"

    from entity_linking import link_corpus, link_qa
    from indexes import build_index, open_index, write_counts

    log.stage("link-qa", [qa_entities],
              lambda: link_qa(qa_path, inputs["kb"], qa_entities))
    # linked/manifest.json is written when linking starts: the stage is done when it says complete.
    log.stage("link-corpus", [linked / "manifest.json"],
              lambda: link_corpus(inputs["corpus"], inputs["kb"], linked,
                                  workers=config["linking"]["workers"]),
              done=lambda: _json_field(linked / "manifest.json", "complete") is True and all(
                  (linked / name).exists() and (linked / name).with_suffix(".json").exists()
                  for name in _json_field(linked / "manifest.json", "shards") or []))
    index_cfg = config["index"]
    log.stage("index", [index_dir / "index.json"],
              lambda: build_index(inputs["corpus"], linked, index_dir,
                                  backend=index_cfg["backend"], passages=inputs["passages"],
                                  es_url=index_cfg["es_url"], es_index=index_cfg["es_index"]))

    def count() -> None:
        index = open_index(index_dir)  # index.json says which backend, and where
        try:
            write_counts(index, qa_entities, counts_path, stoplist=index_cfg["stoplist"])
        finally:
            index.close()

    log.stage("count", [counts_path], count)

    predictions_path = out / "predictions.jsonl"
    models = inputs["models"]

    def evaluate_all() -> None:
        qa = [r for _, r in read_records(qa_path)]
        predictions = []
        for model in models:  # one model loaded at a time; the completion cache is keyed by model
            if len(models) > 1:
                log(f"[eval] model {model}")
            predictions += evaluate_model(config, model, qa, index_dir=index_dir, qa_entities=qa_entities,
                                          cache_dir=out / "cache", retrieval_out=out / "retrieval.json")
        write_jsonl(predictions_path, predictions)

    log.stage("eval", [predictions_path], evaluate_all)
    if config["eval"]["shard"]:
        log(f"[summary] shard {config['eval']['shard']} done; `ltprobe merge` the shards' folders "
            "for the summary and report")
        return {}

    summary_path = out / "summary.json"
    log.stage("summary", [summary_path], lambda: write_summary(config, inputs["model"], out, inputs["world"]))

    from probe._report import write_report

    log.stage("report", [out / "report.html"], lambda: write_report(out))
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if not quiet:
        _print_headline(summary, out)
    return summary


class _Log:
    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"ltprobe: {message}", file=sys.stderr, flush=True)

    def stage(self, name: str, outputs: list[Path], work: Callable[[], Any],
              done: Callable[[], bool] | None = None) -> None:
        """Run `work` unless every output exists (and `done()`, when given, says complete)."""
        if all(p.exists() for p in outputs) and (done is None or done()):
            self(f"[{name}] done already ({outputs[0]}), skipped")
            return
        self(f"[{name}] running")
        started = time.time()
        work()
        self(f"[{name}] finished in {time.time() - started:.1f} s")


def _json_field(path: Path, key: str) -> Any:
    """`key` of the JSON object in `path`; None when the file is missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value.get(key) if isinstance(value, dict) else None


def _inputs(config: dict[str, Any], out: Path, log: _Log) -> dict[str, Any]:
    """Where the QA set, corpus, KB, retrieval collection and model come from."""
    data, model = config["data"], config["model"]
    inputs: dict[str, Any] = {"world": None}
    if config["world"] is not None:
        from probe._world import WorldConfig, generate_world

        world = out / "world"
        log.stage("world", [world / "truth.jsonl"],
                  lambda: generate_world(world, WorldConfig(**config["world"])))
        inputs.update(world=world, qa=world / "qa.jsonl", corpus=world / "corpus.jsonl",
                      kb=world / "kb.jsonl", passages=world / "encyclopedia.jsonl",
                      train_files=[world / "corpus.jsonl", world / "reading.jsonl"])
    else:
        missing = [key for key in ("qa", "corpus", "kb") if not data[key]]
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
        from probe._train import TrainConfig, train_model

        model_dir = out / "model"
        # train_model caches itself: it returns at once when the folder matches config and inputs.
        log("[train] model (cached when already trained)")
        train_model(model_dir, inputs["train_files"], TrainConfig(**model["train"]))
        models.append(str(model_dir))
    models += paths
    if not models:
        raise InputError(f"{config['_source']}: set model.path (a model folder or hub id) or model.train")
    if len(set(models)) < len(models):
        raise InputError(f"{config['_source']}: model.path names a model twice")
    inputs["models"] = models
    inputs["model"] = models[0]  # the primary model
    return inputs


def model_parameters_of(config: dict[str, Any], models: list[str]) -> dict[str, float]:
    """Parameter counts of the run's models: `model.params`, else read from their weights."""
    from probe._params import model_parameters

    given = config["model"]["params"]
    if given is not None and not isinstance(given, dict):
        raise InputError(f"{config.get('_source', 'config')}: model.params must map each model to its "
                         "parameter count, e.g. {my/model: 1.3e9}")
    return model_parameters(models, given, how_to_give="model.params: {MODEL: N} in the config")


def _write_qa(config: dict[str, Any], inputs: dict[str, Any], qa_path: Path) -> None:
    from probe._data import load_qa

    data = config["data"]
    records = load_qa(inputs["qa"], preset=data["preset"], mapping=data["mapping"], split=data["split"])
    if data["limit"] is not None:
        records = records[: data["limit"]]
    write_jsonl(qa_path, records)


def evaluate_model(config: dict[str, Any], model: str, qa: list[dict[str, Any]], *, index_dir: Path,
                   qa_entities: Path, cache_dir: Path, settings: list[str] | None = None,
                   retrieval_out: Path | None = None) -> list[dict[str, Any]]:
    """Predictions of `model` on `qa` in each setting of `config["eval"]["settings"]` (or
    `settings`): the evaluation of a run, also used by the counterfactual experiment so that
    both models see exactly the same prompts. With retrieval, `retrieval_out` receives the
    retrieval quality (recall@k by count bucket, precision of the passages given)."""
    from indexes import open_index
    from probe._evaluate import evaluate
    from probe._generation import get_generator
    from probe._rag import RECALL_KS, oracle_passages, retrieval_quality, retrieve_passages

    eval_cfg, rag_cfg, model_cfg = config["eval"], config["rag"], config["model"]
    settings = settings if settings is not None else eval_cfg["settings"]
    unknown = set(settings) - {"closed_book", "rag", "oracle"}
    if unknown:
        raise InputError(f"eval.settings: unknown setting(s) {sorted(unknown)}; use closed_book, rag, oracle")
    common = dict(max_tokens=eval_cfg["max_tokens"], scoring=eval_cfg["scoring"], seed=eval_cfg["seed"],
                  pool_size=eval_cfg["pool_size"], chat=eval_cfg["chat"], cache_dir=cache_dir,
                  shard=eval_cfg["shard"])
    generator = get_generator(model_cfg["backend"], model, **model_cfg["options"])
    predictions: list[dict[str, Any]] = []
    try:
        if "closed_book" in settings:
            predictions += evaluate(qa, generator, setting="closed_book", shots=eval_cfg["shots"], **common)
        if "rag" in settings or "oracle" in settings:
            index = open_index(index_dir)
            try:
                if "rag" in settings:
                    # Deep enough for recall@20; the prompts take the top rag.k.
                    passages = retrieve_passages(index, qa, max(rag_cfg["k"], max(RECALL_KS)))
                    if retrieval_out is not None:
                        write_json(retrieval_out, retrieval_quality(
                            passages, qa, rag_cfg["k"], counts=counts_of(retrieval_out.parent),
                            qa_entities=qa_entities))
                    predictions += evaluate(qa, generator, setting="rag", shots=rag_cfg["shots"],
                                            passages=passages, k=rag_cfg["k"], **common)
                if "oracle" in settings:
                    passages = oracle_passages(index, qa, qa_entities, k=rag_cfg["k"])
                    predictions += evaluate(qa, generator, setting="oracle", shots=rag_cfg["shots"],
                                            passages=passages, k=rag_cfg["k"], **common)
            finally:
                index.close()
    finally:
        generator.close()
    return predictions


def write_summary(config: dict[str, Any], model: str, out: Path, world: Path | None) -> dict[str, Any]:
    """Summarize `out/predictions.jsonl` against `out/counts.jsonl` into `out/summary.json`.

    `model` is the primary model: the contract's keys are its results. Predictions of several
    models add `models` and `scaling` (`probe._analysis.summarize_models`)."""
    from probe._analysis import summarize_models
    from probe._rag import adaptive_retrieval

    predictions = [r for _, r in read_records(out / "predictions.jsonl")]
    models = list(dict.fromkeys(str(p["model"]) for p in predictions))
    if model in models:  # the primary model's predictions first
        models.remove(model)
        models.insert(0, model)
        predictions.sort(key=lambda p: models.index(str(p["model"])))
    primary = [p for p in predictions if str(p["model"]) == models[0]] if predictions else []
    counts = counts_of(out)
    analysis = config["analysis"]
    summary: dict[str, Any] = {
        "model": model,
        "index": config["index"]["backend"],
        "n_questions": len({p["id"] for p in primary}),
    }
    summary.update(summarize_models(predictions, counts,
                                    parameters=model_parameters_of(config, models) if len(models) > 1 else None,
                                    min_bucket=analysis["min_bucket"], n_boot=analysis["n_boot"],
                                    seed=analysis["seed"], max_count=analysis["scaling_max_count"],
                                    target_accuracy=analysis["target_accuracy"]))
    if (out / "retrieval.json").exists():
        summary["retrieval"] = json.loads((out / "retrieval.json").read_text(encoding="utf-8"))
    by_setting = {s: [p for p in primary if p["setting"] == s] for s in ("closed_book", "rag")}
    if all(by_setting.values()):
        summary["adaptive_retrieval"] = adaptive_retrieval(by_setting["closed_book"], by_setting["rag"],
                                                           counts, seed=analysis["seed"])
    if world is not None:
        summary["truth_agreement"] = truth_agreement(counts, world / "truth.jsonl")
    write_json(out / "summary.json", summary)
    return summary


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
        if {**m, "eval": {**m["eval"], "shard": None}, "_source": None} != \
                {**first, "eval": {**first["eval"], "shard": None}, "_source": None}:
            raise InputError(f"{d}: its config differs from {dirs[0]} (beyond eval.shard)")
        if (d / "counts.jsonl").read_bytes() != (dirs[0] / "counts.jsonl").read_bytes():
            raise InputError(f"{d}: its counts.jsonl differs from {dirs[0]}'s")

    from probe._lock import RunLock

    out = Path(out_dir)
    with RunLock(out):
        return _merge_into(dirs, manifests, first, out)


def _merge_into(dirs: list[Path], manifests: list[dict[str, Any]], first: dict[str, Any],
                out: Path) -> dict[str, Any]:
    import shutil

    from probe._report import write_report

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
    settings = {"closed_book": 0, "rag": 1, "oracle": 2}
    model_order = {m: i for i, m in enumerate(dict.fromkeys(p["model"] for p in predictions))}
    predictions.sort(key=lambda p: (model_order[p["model"]], settings.get(p["setting"], 3),
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


def counts_of(run_dir: Path) -> list[dict[str, Any]]:
    """The records of a run folder's counts.jsonl."""
    return [r for _, r in read_records(run_dir / "counts.jsonl")]


def truth_agreement(counts: list[dict[str, Any]], truth_path: Path, examples: int = 20) -> dict[str, Any]:
    """Share of QA pairs whose count equals the world's true count, and the first disagreements."""
    truth = {r["id"]: r["count"] for _, r in read_records(truth_path)}
    differ = [{"id": c["id"], "count": c["count"], "true": truth.get(c["id"]), "status": c["status"]}
              for c in counts if c["count"] != truth.get(c["id"])]
    n = len(counts)
    return {"n": n, "equal": n - len(differ), "share": (n - len(differ)) / n if n else 0.0,
            "differences": differ[:examples]}


def _write_manifest(out: Path, config: dict[str, Any]) -> None:
    """Config, versions, commit and seeds of the run (rewritten on each start; history kept)."""
    from probe._provenance import environment

    manifest_path = out / "manifest.json"
    starts = []
    if manifest_path.exists():
        starts = json.loads(manifest_path.read_text(encoding="utf-8")).get("starts", [])
    starts.append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_json(manifest_path, {
        "config": config, **environment(), "starts": starts,
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
