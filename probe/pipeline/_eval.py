"""`ltprobe eval` and `ltprobe rag` as functions: evaluate one or several models on a QA set
(closed-book, or with retrieved and oracle passages) into a folder, with the summary when counts
are given. The commands parse their arguments and call `evaluate_models` / `rag`."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, write_json, write_jsonl

logger = logging.getLogger(__name__)


@dataclass
class EvalOptions:
    """How `evaluate_models` and `rag` generate, score and summarize (the options the two
    commands share)."""

    backend: str = "vllm"
    """Generation backend: vllm (in this process), openai (a server) or transformers."""
    options: dict[str, Any] = field(default_factory=dict)
    """Backend options (`get_generator` keywords; with `serve`, the server's flags)."""
    base_url: str | None = None
    """openai backend: the server's /v1 URL."""
    serve: bool = False
    """openai backend: start a vLLM server for each model on 127.0.0.1 for the job."""
    params: dict[str, float] | None = None
    """Parameter counts by model for the scaling analysis (default: read from the weights)."""
    max_tokens: int = 16
    """Tokens to generate at most."""
    scoring: str = "em"
    """Which score is `correct`: em (SQuAD exact match) or contains (alias containment)."""
    seed: int = 0
    """Seed of the shot pool and shot choice, and of the summary's bootstrap."""
    pool_size: int = 16
    """Questions set aside as the in-context example pool, never scored."""
    chat: bool = False
    """Wrap prompts in the model's chat template."""
    shard: str | None = None
    """`i/n`: evaluate shard i of n (predictions.i-of-n.jsonl, no summary)."""
    chunk_size: int = 1024
    """Prompts handed to the backend at once and cached together."""
    progress: bool = True
    """Progress bars."""
    gold_logprob: bool = False
    """Also score each question's gold answer log-probability."""
    min_bucket: int = 20
    """Summary: flag buckets with fewer questions."""
    n_boot: int = 1000
    """Summary: bootstrap resamples."""
    scaling_max_count: int = 100
    """Summary: scaling analysis over questions with fewer relevant documents than this."""
    target_accuracy: float | None = None
    """Summary: extrapolate the parameters the scaling fit needs for this accuracy."""
    counts_by_step: str | None = None
    """Summary: relevant documents seen by training step (`ltprobe count --order`), for `learning`."""


@dataclass
class EvalResult:
    """What `evaluate_models` and `rag` wrote."""

    predictions: list[dict[str, Any]]
    """Every model's predictions, model by model, setting by setting."""
    path: Path
    """The predictions file (predictions.jsonl, or predictions.i-of-n.jsonl for a shard)."""
    summary: Any = None
    """The `probe.analysis.Summary` written to summary.json (with counts, unsharded), else None."""
    retrieval: dict[str, Any] | None = None
    """`rag`: the retrieval quality written to retrieval.json."""


def evaluate_models(qa: Sequence[Mapping[str, Any]], models: Sequence[str], out: str | Path, *, shots: int = 4,
                    prompt_format: str = "qa", counts: list[dict[str, Any]] | None = None,
                    options: EvalOptions | None = None, invocation: Mapping[str, Any] | None = None,
                    skips: Any = None) -> EvalResult:
    """`ltprobe eval`: each of `models` in turn, closed-book on `qa`, into `out`
    (predictions.jsonl, manifest.json, and with `counts` summary.json; completions cached in
    out/cache). `invocation`: the `command` and `args` the manifest records; `skips`: the
    `SkipCounter` of the QA set's reading, for the manifest."""
    options = options or EvalOptions()
    parameters = _parameters(models, options, counts)
    return _evaluate_job(qa, models, Path(out), ["closed_book"], options, counts=counts, parameters=parameters,
                         shots=shots, prompt_format=prompt_format, invocation=invocation, skips=skips)


def rag(qa: Sequence[Mapping[str, Any]], models: Sequence[str], out: str | Path, *, index: str,
        es_url: str | None = None, es_index: str | None = None, k: int = 3, shots: int = 4,
        prompt_format: str = "qa", filter_shots: bool = False, oracle: bool = False,
        qa_entities: str | None = None, closed_book: bool = False, closed_book_shots: int | None = None,
        counts: list[dict[str, Any]] | None = None, options: EvalOptions | None = None,
        invocation: Mapping[str, Any] | None = None, skips: Any = None) -> EvalResult:
    """`ltprobe rag`: each of `models` in turn on `qa` with the top `k` passages of `index`
    (with `oracle` also oracle passages, from `qa_entities`; with `closed_book` also closed-book,
    `closed_book_shots` shots, default `shots`), into `out`: retrieval.json (recall@k, precision,
    where the oracle passages came from), predictions.jsonl, manifest.json, and with `counts`
    summary.json (with adaptive retrieval when closed-book is evaluated too)."""
    from indexes import open_index
    from probe.evaluation import retrieval_quality, retrieve_settings

    options = options or EvalOptions()
    parameters = _parameters(models, options, counts)  # a missing count fails before the retrieval
    out = Path(out)
    settings = ["closed_book"] * closed_book + ["rag"] + ["oracle"] * oracle
    oracle_stats: dict[str, int] = {}
    with open_index(index, es_url=es_url, es_index=es_index) as opened:
        passages = retrieve_settings(opened, qa, settings, k=k, qa_entities=qa_entities, oracle_stats=oracle_stats,
                                     progress=options.progress)
    retrieval = {**retrieval_quality(passages["rag"], qa, k, counts=counts, qa_entities=qa_entities),
                 "oracle_sources": oracle_stats or None}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "retrieval.json", retrieval)
    return _evaluate_job(qa, models, out, settings, options, counts=counts, parameters=parameters,
                         passages=passages, index=index, retrieval=retrieval,
                         shots=shots if closed_book_shots is None else closed_book_shots, rag_shots=shots,
                         prompt_format=prompt_format, k=k, filter_shots=filter_shots, invocation=invocation,
                         skips=skips)


def _evaluate_job(qa: Sequence[Mapping[str, Any]], models: Sequence[str], out: Path, settings: list[str],
                  options: EvalOptions, *, counts: list[dict[str, Any]] | None,
                  parameters: dict[str, float] | None, index: str | None = None,
                  retrieval: dict[str, Any] | None = None, invocation: Mapping[str, Any] | None, skips: Any,
                  **how: Any) -> EvalResult:
    """Every model in every setting (`probe.evaluation.evaluate_settings`, `how` its prompt
    options), then the predictions, the manifest and the summary."""
    from probe.analysis import build_summary
    from probe.evaluation import evaluate_settings, parse_shard

    models = list(models)
    shard = parse_shard(options.shard)
    predictions: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for model in models:  # one model loaded at a time
        if len(models) > 1:
            logger.info(f"model {model}")
        generator = _generator(model, options, out)
        try:
            model_stats: list[dict[str, Any]] = []
            model_predictions = evaluate_settings(
                qa, generator, settings, stats=model_stats, max_tokens=options.max_tokens,
                scoring=options.scoring, seed=options.seed, pool_size=options.pool_size, chat=options.chat,
                cache_dir=out / "cache", shard=options.shard, chunk_size=options.chunk_size,
                progress=options.progress, gold_logprob=options.gold_logprob, **how)
            names[model] = generator.name
        finally:
            generator.close()
        predictions += model_predictions
        stats += [{"model": generator.name, **s} for s in model_stats]

    path = out / ("predictions.jsonl" if shard is None else f"predictions.{shard[0]}-of-{shard[1]}.jsonl")
    write_jsonl(path, predictions)
    write_json(out / ("manifest.json" if shard is None else f"manifest.{shard[0]}-of-{shard[1]}.json"),
               _manifest(invocation, options, stats, skips))
    summary = None
    if counts is not None and shard is None:
        summary = build_summary(
            predictions, counts, model=models[0], index=index,
            parameters=None if parameters is None else {names.get(m, m): n for m, n in parameters.items()},
            retrieval=retrieval, qa=list(qa), counts_by_step=options.counts_by_step,
            min_bucket=options.min_bucket, n_boot=options.n_boot, seed=options.seed,
            max_count=options.scaling_max_count, target_accuracy=options.target_accuracy)
        summary.write(out / "summary.json")
    return EvalResult(predictions=predictions, path=path, summary=summary, retrieval=retrieval)


def _parameters(models: Sequence[str], options: EvalOptions,
                counts: list[dict[str, Any]] | None) -> dict[str, float] | None:
    """Parameter counts of the models when there will be a scaling analysis (several models and
    counts, unsharded), checked before any model is evaluated (a bad shard fails here too)."""
    from probe.evaluation import parse_shard
    from probe.pipeline._params import model_parameters

    if not models:
        raise InputError("give at least one model")
    if len(models) < 2 or counts is None or parse_shard(options.shard) is not None:
        return None
    return model_parameters(list(models), options.params or {})


def _generator(model: str, options: EvalOptions, out: Path) -> Any:
    """The generator of `model`; with `serve`, of a vLLM server started for it (stopped on close)."""
    from probe.generation import get_generator, start_vllm_server

    backend_options = dict(options.options)
    if options.serve:
        if options.backend != "openai":
            raise InputError("--serve starts a server for the openai backend; add --backend openai")
        flags = []
        for key, value in backend_options.items():
            flag = "--" + key.replace("_", "-")
            flags += [flag] if value is True else [] if value is False else [flag, str(value)]
        logger.info(f"starting a vLLM server for {model} on 127.0.0.1 ...")
        server = start_vllm_server(model, extra_args=flags, log_file=out / "server.log")
        generator = server.generator(tokenizer=model)
        close = generator.close

        def close_both() -> None:
            close()
            server.stop()

        generator.close = close_both
        return generator
    if options.backend == "openai" and options.base_url:
        backend_options["base_url"] = options.base_url
    return get_generator(options.backend, model, **backend_options)


def _manifest(invocation: Mapping[str, Any] | None, options: EvalOptions, stats: list[dict[str, Any]],
              skips: Any) -> dict[str, Any]:
    """Command and arguments, package versions, git commit, seeds and counters of an eval/rag job."""
    from probe.pipeline._provenance import environment

    invocation = invocation or {"command": None, "args": None}
    return {"command": invocation.get("command"), "args": invocation.get("args"), **environment(),
            "seeds": {"eval": options.seed}, "settings": stats,
            "skipped_records": skips.skipped if skips is not None else 0,
            "skipped_examples": skips.examples if skips is not None else [],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
