"""The run summary (`summary.json`): its record, and the one function that builds it from
predictions and counts for `ltprobe run`, `ltprobe merge`, `ltprobe eval` and `ltprobe rag`.

The contract (docs/contract.md) fixes the file: its keys, their order and their numbers.
`Summary.to_json` writes exactly what the stages wrote before the record existed: the keys in the
order below, optional keys only where a run has them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from entity_linking.io import read_records, write_json

_OPTIONAL = ("count_dependence_reduction_oracle", "count_dependence_reduction_oracle_ci", "count_dependence_oracle",
             "models", "scaling", "retrieval", "adaptive_retrieval", "adaptive_retrieval_by_relation",
             "truth_agreement", "learning", "error_attribution", "diagnostics")
"""Keys written only where the run has them (the others are always written, null or not)."""


@dataclass
class Summary:
    """What `summary.json` holds: the primary model's results by setting, the count dependence
    and its reduction by retrieval, and what a run adds (several models, retrieval quality,
    adaptive retrieval, agreement with a world's true counts, learning views, warnings).

    Fields are in the file's key order. Optional keys are left out of the file when None, but
    for `scaling` (written whenever `models` is: null where checkpoints of one model leave no
    sizes to scale across) and the oracle's reduction (written with `count_dependence_oracle`).
    """

    model: str
    """The primary model (the first `--model`, or the run's `model.path` / trained model)."""
    index: str | None = None
    """The index backend of a run (`embedded`, `elasticsearch`, `infini-gram`); `ltprobe rag`:
    the index folder; `ltprobe eval`: null."""
    n_questions: int = 0
    """Questions the primary model was scored on (the shot pool is not scored)."""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per evaluation setting (`closed_book`, `rag`, `oracle`, in that order): `accuracy`,
    `buckets`, `slope_per_decade`, `slope_ci`, `spearman` and the extras of
    `probe.analysis.summarize`."""
    count_dependence_reduction: float | None = None
    """`1 - slope_rag / slope_closed_book` (null without both settings)."""
    count_dependence_reduction_ci: list[float] | None = None
    """Its paired-bootstrap 95% interval."""
    count_dependence: dict[str, Any] = field(default_factory=dict)
    """Closed book against rag (issue 16): `slope_difference`, `slope_difference_ci`,
    `reduction`, `reduction_ci`, `note`, ..."""
    count_dependence_reduction_oracle: float | None = None
    """`1 - slope_oracle / slope_closed_book`, with the oracle setting."""
    count_dependence_reduction_oracle_ci: list[float] | None = None
    """Its paired-bootstrap 95% interval."""
    count_dependence_oracle: dict[str, Any] | None = None
    """Closed book against oracle, as `count_dependence`."""
    n_unlinked: int = 0
    """QA pairs whose count status is not `ok` (left out of buckets and slopes)."""
    models: list[dict[str, Any]] | None = None
    """With several models: per model `model`, `parameters`, `n_questions` and its own results."""
    scaling: dict[str, Any] | None = None
    """With several models: accuracy on low-count questions against log10(parameters)."""
    retrieval: dict[str, Any] | None = None
    """With retrieval: recall@k overall and by count bucket, precision of the passages given."""
    adaptive_retrieval: dict[str, Any] | None = None
    """With closed-book and rag: retrieving only below a count threshold."""
    adaptive_retrieval_by_relation: dict[str, Any] | None = None
    """The same by relation, where the QA pairs carry one."""
    truth_agreement: dict[str, Any] | None = None
    """On a generated world: share of counts equal to the true counts, first differences."""
    learning: dict[str, Any] | None = None
    """With checkpoints and a training order: accuracy by documents seen (issue 19)."""
    error_attribution: dict[str, Any] | None = None
    """With `errors.jsonl`: wrong answers attributed to more frequent entities (issue 19)."""
    diagnostics: list[dict[str, str]] | None = None
    """`ltprobe run`: warnings `{"code", "message"}` about what the numbers can show."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys of a file this record does not know, kept and written last."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `summary.json`, keys in the file's order."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value is None and not self._written_when_null(f.name):
                continue
            out[f.name] = value
        out.update(self.extra)
        return out

    def _written_when_null(self, name: str) -> bool:
        if name == "scaling":
            return self.models is not None
        if name.startswith("count_dependence_reduction_oracle"):
            return self.count_dependence_oracle is not None
        return False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """The record of a `summary.json` object (unknown keys go to `extra`)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    def to_json(self) -> str:
        """The text of `summary.json` (what `write` writes)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Summary:
        """The record of `summary.json`'s text."""
        return cls.from_dict(json.loads(text))

    def write(self, path: str | os.PathLike) -> None:
        """Write `summary.json` atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def read(cls, path: str | os.PathLike) -> Summary:
        """Read a `summary.json`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def build_summary(predictions: Sequence[Mapping[str, Any]], counts: Sequence[Mapping[str, Any]], *, model: str,
                  index: str | None = None,
                  parameters: Mapping[str, float] | Callable[[list[str]], Mapping[str, float]] | None = None,
                  retrieval: dict[str, Any] | None = None, qa: Sequence[Mapping[str, Any]] | None = None,
                  truth: str | os.PathLike | None = None, counts_by_step: str | os.PathLike | None = None,
                  errors: str | os.PathLike | None = None, diagnostics: bool = False, trained_world: bool = False,
                  min_bucket: int = 20, n_boot: int = 1000, seed: int = 0, max_count: int = 100,
                  target_accuracy: float | None = None) -> Summary:
    """The summary of `predictions` (of one or several models) against `counts`.

    `model` is the primary model: the contract's keys are its results (its predictions are
    put first). `parameters`: parameter counts by model name for the scaling analysis, or a
    function of the models' names (primary first) that returns them, called only when there
    are several models. With `retrieval` (the retrieval quality) it is added as is; with the
    primary model's closed-book and rag predictions, adaptive retrieval (by relation too, given
    the QA pairs `qa`); `truth`: a world's truth.jsonl, for `truth_agreement`;
    `counts_by_step` / `errors`: files for the learning views (ignored where missing);
    `diagnostics`: add the warnings (`trained_world`: the model was trained on the world here).
    """
    from probe.analysis._analysis import diagnose, summarize_models
    from probe.analysis._learning import add_learning_views
    from probe.evaluation import adaptive_retrieval, adaptive_retrieval_by_relation

    predictions = list(predictions)
    models = list(dict.fromkeys(str(p["model"]) for p in predictions))
    if model in models:  # the primary model's predictions first
        models.remove(model)
        models.insert(0, model)
        predictions.sort(key=lambda p: models.index(str(p["model"])))
    primary = [p for p in predictions if str(p["model"]) == models[0]] if predictions else []
    if callable(parameters):
        parameters = parameters(models) if len(models) > 1 else None
    summary: dict[str, Any] = {"model": model, "index": index, "n_questions": len({p["id"] for p in primary})}
    summary.update(summarize_models(predictions, counts, parameters=parameters, min_bucket=min_bucket,
                                    n_boot=n_boot, seed=seed, max_count=max_count,
                                    target_accuracy=target_accuracy))
    if retrieval is not None:
        summary["retrieval"] = retrieval
    by_setting = {s: [p for p in primary if p["setting"] == s] for s in ("closed_book", "rag")}
    if all(by_setting.values()):
        summary["adaptive_retrieval"] = adaptive_retrieval(by_setting["closed_book"], by_setting["rag"], counts,
                                                           seed=seed)
        if qa is not None:
            per_relation = adaptive_retrieval_by_relation(by_setting["closed_book"], by_setting["rag"], counts,
                                                          list(qa), seed=seed)
            if per_relation is not None:
                summary["adaptive_retrieval_by_relation"] = per_relation
    if truth is not None:
        summary["truth_agreement"] = truth_agreement(counts, truth)
    # issue 19: learning, error_attribution, per setting gold_logprob_slope
    add_learning_views(summary, predictions, counts, primary=models[0] if models else model,
                       counts_by_step=counts_by_step, errors=errors, min_bucket=min_bucket, n_boot=n_boot,
                       seed=seed)
    if diagnostics:
        summary["diagnostics"] = diagnose(summary, trained_world=trained_world, min_bucket=min_bucket)
    return Summary.from_dict(summary)


def truth_agreement(counts: Sequence[Mapping[str, Any]], truth_path: str | os.PathLike,
                    examples: int = 20) -> dict[str, Any]:
    """Share of QA pairs whose count equals the world's true count, and the first disagreements."""
    truth = {r["id"]: r["count"] for _, r in read_records(truth_path)}
    differ = [{"id": c["id"], "count": c["count"], "true": truth.get(c["id"]), "status": c["status"]}
              for c in counts if c["count"] != truth.get(c["id"])]
    n = len(counts)
    return {"n": n, "equal": n - len(differ), "share": (n - len(differ)) / n if n else 0.0,
            "differences": differ[:examples]}
