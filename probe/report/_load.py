"""A finished run folder as pandas DataFrames: the analysis API behind notebooks and reports.

`load_run(DIR)` reads every file a run writes (see `../shared/docs/contract.md` and
docs/design.md) so that notebooks and users never parse JSONL by hand. Files that a run may
lack (predictions before evaluation, statements of a generation run, counterfactual.json, ...)
give empty frames or `None`; a folder with none of a run's files is an error the user can fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from entity_linking.io import InputError, OnError, SkipCounter, read_records
from probe.analysis import bucket_label, bucket_of
from probe.evaluation import setting_order
from probe.report._frames import buckets_frame

_RUN_FILES = ("qa.jsonl", "qa_entities.jsonl", "counts.jsonl", "predictions.jsonl", "summary.json",
              "manifest.json", "statements.jsonl", "generation_summary.json", "counterfactual.json")


@dataclass
class Run:
    """The records and summaries of one run folder."""

    path: Path
    """The run folder."""
    questions: pd.DataFrame
    """`qa.jsonl`: one row per QA pair (`id`, `question`, `answers`, and any extra fields)."""
    entities: pd.DataFrame
    """`qa_entities.jsonl`: `id`, `q_entities`, `a_entities` (lists of entity ids), ..."""
    counts: pd.DataFrame
    """`counts.jsonl`: `id`, `count` (NaN when not linked), `q_count`, `a_count`, `pair`, `status`."""
    predictions: pd.DataFrame
    """`predictions.jsonl`: one row per (question, setting, model) with `correct`."""
    summary: dict[str, Any]
    """`summary.json` (empty when the run has not reached the analysis)."""
    manifest: dict[str, Any]
    """`manifest.json`: config, versions, git commit, seeds (empty when absent)."""
    statements: pd.DataFrame | None = None
    """`statements.jsonl` of a LINK generation run, when present."""
    generation_summary: dict[str, Any] | None = None
    """`generation_summary.json` of a LINK generation run, when present."""
    counterfactual: dict[str, Any] | None = None
    """`counterfactual.json` of the causal check, when present."""
    truth: pd.DataFrame | None = None
    """`world/truth.jsonl` of a generated world (`id`, `true_count`), when the run has one."""
    skipped: SkipCounter = field(default_factory=SkipCounter)
    """Records skipped while loading with `on_error="skip"`."""

    @property
    def name(self) -> str:
        """A short label for the run: its folder name."""
        return self.path.resolve().name

    @property
    def model(self) -> str | None:
        """The run's (primary) model: summary's `model`, else the first model of the predictions."""
        if self.summary.get("model"):
            return str(self.summary["model"])
        if not self.predictions.empty and "model" in self.predictions:
            return str(self.predictions["model"].iloc[0])
        return None

    @property
    def settings(self) -> list[str]:
        """The evaluation settings present (summary or predictions), contract order first."""
        found = list((self.summary.get("settings") or {}).keys())
        if not self.predictions.empty and "setting" in self.predictions:
            found += [s for s in self.predictions["setting"].unique() if s not in found]
        return sorted(set(found), key=setting_order)

    @property
    def models(self) -> list[str]:
        """Every model that has predictions in this run."""
        if self.predictions.empty or "model" not in self.predictions:
            return [self.model] if self.model else []
        return list(dict.fromkeys(self.predictions["model"].astype(str)))

    @property
    def joined(self) -> pd.DataFrame:
        """One row per question: the question, its count and bucket, and correctness per setting.

        Columns: those of `qa.jsonl` (`id`, `question`, `answers`, `relation`, ...), `count`,
        `q_count`, `a_count`, `status`, `true_count` (generated worlds only),
        `bucket` (e.g. `"10-99"`, None when the count is missing), `bucket_lo`, and one boolean
        column per setting (`closed_book`, `rag`, `oracle`; NaN when that question has no
        prediction) for the primary model (`Run.model`). Use `scored` for every model.
        """
        base = self.questions
        if base.empty and not self.counts.empty:
            base = self.counts[["id"]]
        frame = base.copy()
        if not self.counts.empty:
            cols = [c for c in ("id", "count", "q_count", "a_count", "status") if c in self.counts]
            frame = frame.merge(self.counts[cols], on="id", how="left")
        else:
            frame["count"] = math.nan
        if self.truth is not None and not self.truth.empty:
            frame = frame.merge(self.truth[["id", "true_count"]], on="id", how="left")
        _add_buckets(frame)
        preds = self.predictions
        if not preds.empty and {"id", "setting", "correct"} <= set(preds.columns):
            if "model" in preds and self.model is not None and (preds["model"] == self.model).any():
                preds = preds[preds["model"] == self.model]
            wide = (preds.drop_duplicates(["id", "setting"], keep="last")
                    .pivot(index="id", columns="setting", values="correct"))
            wide = wide[[s for s in self.settings if s in wide.columns]]
            wide.columns.name = None
            frame = frame.merge(wide.reset_index(), on="id", how="left")
        return frame

    @property
    def scored(self) -> pd.DataFrame:
        """One row per prediction (every model and setting) with the question's count and bucket."""
        if self.predictions.empty:
            return self.predictions.copy()
        cols = [c for c in ("id", "count", "status") if c in self.counts]
        frame = self.predictions.merge(self.counts[cols], on="id", how="left") if cols else \
            self.predictions.assign(count=math.nan)
        _add_buckets(frame)
        return frame

    def buckets(self, setting: str = "closed_book") -> pd.DataFrame:
        """The summary's accuracy buckets of one setting (`lo`, `hi`, `n`, `accuracy`, `ci_low`,
        `ci_high`, `flagged`, `label`); empty when the summary lacks that setting."""
        rows = ((self.summary.get("settings") or {}).get(setting) or {}).get("buckets") or []
        return buckets_frame(rows, value="accuracy")

    def recall_at_k(self) -> pd.DataFrame:
        """The summary's `retrieval.recall_at_k` as rows `k`, `lo`, `hi`, `label`, `n`, `recall`
        and `overall` (recall@k over all questions); empty when absent.

        Reads both layouts: per bucket (`{"overall": {k: x}, "buckets": [{"lo", "hi", "n",
        "recall": {k: x}}]}`, what `ltprobe rag` writes) and per k (`{k: {"overall": x,
        "buckets": [{"lo", "hi", "n", "recall": x}]}}`).
        """
        recall = ((self.summary.get("retrieval") or {}).get("recall_at_k")) or {}
        rows = []
        if isinstance(recall, dict) and isinstance(recall.get("overall"), dict):
            overall = recall["overall"]
            for b in recall.get("buckets") or []:
                if isinstance(b, dict) and isinstance(b.get("recall"), dict) and b.get("lo") is not None:
                    for k, value in b["recall"].items():
                        rows.append({"k": _as_int(k), "lo": b["lo"], "hi": b["hi"], "n": b.get("n"),
                                     "recall": value, "overall": overall.get(k)})
            if not rows:  # overall figures without buckets
                rows = [{"k": _as_int(k), "lo": None, "hi": None, "n": recall.get("n"), "recall": None,
                         "overall": v} for k, v in overall.items()]
        elif isinstance(recall, dict):
            for k, entry in recall.items():
                if isinstance(entry, dict):
                    for b in entry.get("buckets") or []:
                        if isinstance(b, dict) and b.get("lo") is not None:
                            rows.append({"k": _as_int(k), "lo": b["lo"], "hi": b.get("hi"), "n": b.get("n"),
                                         "recall": b.get("recall"), "overall": entry.get("overall")})
        columns = ["k", "lo", "hi", "label", "n", "recall", "overall"]
        if not rows:
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame(rows)
        frame["label"] = [bucket_label(lo, hi) if lo is not None and hi is not None else None
                          for lo, hi in zip(frame["lo"], frame["hi"])]
        for col in ("recall", "overall"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
        return frame[columns].sort_values(["k", "lo"], ignore_index=True)

    # ---- figures and words, for notebooks (the report draws the same) ----

    def headline(self) -> list[str]:
        """The run's finding in sentences, as at the top of report.html."""
        from probe.report._words import headline

        return headline(self.summary)

    def plot_accuracy(self, settings: Iterable[str] | None = None):
        """Accuracy against count per setting with intervals and the histogram (a Figure)."""
        from probe.report._plots import plot_accuracy_vs_count

        settings = list(settings) if settings is not None else self.settings
        min_bucket = ((self.manifest.get("config") or {}).get("analysis") or {}).get("min_bucket")
        return plot_accuracy_vs_count({s: self.buckets(s) for s in settings}, min_bucket=min_bucket,
                                      title=f"{self.name}: accuracy against relevant-document count")

    def plot_slopes(self):
        """Slope per decade with intervals per setting and the reduction (a Figure)."""
        from probe.report._plots import plot_slopes

        return plot_slopes(self.summary.get("settings") or {}, self.summary.get("count_dependence_reduction"),
                           self.summary.get("count_dependence_reduction_ci"))

    def plot_recall_at_k(self):
        """Recall@k by count bucket (a Figure); None when the summary has no recall@k."""
        from probe.report._plots import plot_recall_at_k

        frame = self.recall_at_k()
        return None if frame.empty else plot_recall_at_k(frame)

    def plot_link(self):
        """Head and tail log-likelihood (and count) per rule of a generation run (a Figure);
        None without statements."""
        from probe.report._plots import plot_link

        st = self.statements
        rule_col = next((c for c in ("rule", "rule_id", "rule_name") if st is not None and c in st), None)
        if st is None or st.empty or rule_col is None or "loglik" not in st or "beam" not in st:
            return None
        return plot_link(st, rule_col)


def load_run(path: str | Path, *, on_error: OnError = "fail") -> Run:
    """Read a run folder written by `ltprobe run` (or `ltprobe generate`) into a `Run`.

    Missing files give empty frames (and `None` for the optional generation and
    counterfactual parts), so a half-finished run can still be looked at. Raises `InputError`
    when the folder does not exist or holds none of a run's files, and `FILE:LINE: reason` for
    a bad record (or skips it, counted in `Run.skipped`, with `on_error="skip"`).
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: no such run folder (give the --out folder of `ltprobe run`)")
    if not any((path / name).exists() for name in _RUN_FILES):
        raise InputError(f"{path}: not a run folder (none of {', '.join(_RUN_FILES[:5])}, ... in it)")
    skips = SkipCounter()

    def frame(name: str, columns: Iterable[str]) -> pd.DataFrame:
        file = path / name
        if not file.exists():
            return pd.DataFrame(columns=list(columns))
        records = [r for _, r in read_records(file, on_error=on_error, skips=skips,
                                               required={"id": (str, int)})]
        if not records:
            return pd.DataFrame(columns=list(columns))
        out = pd.DataFrame.from_records(records)
        out["id"] = out["id"].astype(str)
        return out

    counts = frame("counts.jsonl", ["id", "count", "q_count", "a_count", "pair", "status"])
    if not counts.empty:
        counts["count"] = pd.to_numeric(counts["count"], errors="coerce")
    predictions = frame("predictions.jsonl", ["id", "setting", "model", "prompt", "completion", "correct"])
    if not predictions.empty and "correct" in predictions:
        predictions["correct"] = predictions["correct"].astype("boolean")

    statements = None
    if (path / "statements.jsonl").exists():
        records = [r for _, r in read_records(path / "statements.jsonl", on_error=on_error, skips=skips)]
        statements = pd.DataFrame.from_records(records)

    truth = None
    if (path / "world" / "truth.jsonl").exists():
        truth = frame("world/truth.jsonl", ["id", "count"]).rename(columns={"count": "true_count"})

    return Run(
        path=path,
        questions=frame("qa.jsonl", ["id", "question", "answers"]),
        entities=frame("qa_entities.jsonl", ["id", "q_entities", "a_entities"]),
        counts=counts,
        predictions=predictions,
        summary=_read_json(path / "summary.json") or {},
        manifest=_read_json(path / "manifest.json") or {},
        statements=statements,
        generation_summary=_read_json(path / "generation_summary.json"),
        counterfactual=_read_json(path / "counterfactual.json"),
        truth=truth,
        skipped=skips,
    )


def _add_buckets(frame: pd.DataFrame) -> None:
    bounds = [bucket_of(c) for c in frame["count"]] if "count" in frame else []
    frame["bucket"] = [bucket_label(*b) if b else None for b in bounds]
    frame["bucket_lo"] = pd.array([b[0] if b else None for b in bounds], dtype="Int64")


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: broken JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object")
    return value


def _as_int(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value
