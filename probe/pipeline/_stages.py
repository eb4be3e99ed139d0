"""Fingerprinted stages of a run folder: what each stage's outputs were computed from.

Each stage of `ltprobe run` declares exactly what it depends on: the settings of the config
that reach it, the identity of its input files (path, size, modification time; see
`identity`), and the stages before it whose outputs it reads. The SHA-256 of that is its
*fingerprint*. A stage is skipped when its outputs exist and were computed from the same
fingerprint; otherwise its old outputs are removed and it runs again, and the log says why
(which setting or input changed, which stage before it was recomputed). A stage that runs
gets a *result id* (the hash of its output files' bytes; for a folder, of its fingerprint and
the time it finished), and the stages after it include the result ids of the stages they read
in their fingerprints: a recomputed stage whose result differs recomputes everything
downstream, one that wrote the same bytes again (a deleted summary rewritten) does not, and a
run that changes nothing repeats nothing.

`manifest.json` keeps, under `stages`, one record per stage: its status (`running`, `done`,
or `given` for another job's outputs named in the config), fingerprint, result id, settings,
inputs, the result ids it read, outputs, and times. A stage found `running` with the same
fingerprint was interrupted: it runs again without removing its outputs, so stages that
resume (corpus linking) resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from entity_linking.io import InputError, write_json

logger = logging.getLogger(__name__)

STAGES = ("world", "qa", "link-qa", "link-corpus", "index", "count", "eval", "count-by-step", "errors", "summary",
          "report")
"""The stages of `ltprobe run`, in order (the names `--force` takes)."""


def digest(value: Any) -> str:
    """SHA-256 of a JSON-able value (keys sorted), as 16 hex digits."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def identity(where: Any) -> Any:
    """What a stage's input is, for its fingerprint: a local file's path, size and
    modification time; a folder's files (recursively); a corpus's parts (files, globs, URLs,
    `hf:` data sets; see `entity_linking.corpus._reader`); anything else (a hub name) as given."""
    if where is None:
        return None
    if isinstance(where, (list, tuple)):
        return [identity(w) for w in where]
    from entity_linking.corpus import file_identity

    text = str(where)
    path = Path(text)
    if "://" not in text and not text.startswith("hf:"):
        if path.is_file():
            return file_identity(path)
        if path.is_dir():
            return {"folder": str(path.resolve()),
                    "files": [{**file_identity(p), "path": p.relative_to(path).as_posix()}
                              for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]}
        if not any(c in text for c in "*?["):
            return {"name": text}  # a hub id or a name that is not a local path
    return corpus_identity(where)


def corpus_identity(corpus: Any) -> Any:
    """The identity of a corpus as the common reader sees it (its parts in order)."""
    from entity_linking.corpus import identity as part_identity
    from entity_linking.corpus import resolve

    return [part_identity(p) for p in resolve(corpus)]


class Stages:
    """The stages of one run folder and their records in `manifest.json`."""

    def __init__(self, out: Path, *, force: Iterable[str] = (), quiet: bool = False):
        self.out = out
        self.quiet = quiet
        self.force = set(force)
        unknown = self.force - set(STAGES)
        if unknown:
            raise InputError(f"--force {sorted(unknown)[0]}: no such stage (stages: {', '.join(STAGES)})")
        self.manifest_path = out / "manifest.json"
        manifest = self._manifest()
        self.records: dict[str, dict[str, Any]] = dict(manifest.get("stages") or {})
        self.results: dict[str, str] = {}
        """Result id of each stage in this run (done, recomputed or given)."""
        self.ran: list[str] = []
        """Stages computed in this run."""

    def __call__(self, message: str) -> None:
        """Log a stage message (INFO: the run's `run.log` keeps it; the CLI shows it unless quiet)."""
        logger.info(message)

    def run(self, name: str, outputs: list[Path], work: Callable[[], Any], *, settings: dict[str, Any],
            inputs: dict[str, Any] | None = None, after: Iterable[str] = (),
            clear: Iterable[Path] | None = None) -> None:
        """Run stage `name` unless its `outputs` exist and were computed from the same settings,
        inputs and results of the stages `after` (see the module docstring). Before it runs
        again, `clear` (default: `outputs`; files or folders) is removed."""
        missing = [s for s in after if s not in self.results]
        if missing:
            raise RuntimeError(f"stage {name} reads {missing[0]}, which has not run")
        fingerprint = {"settings": settings, "inputs": self._relative(inputs or {}),
                       "after": {s: self.results[s] for s in after}}
        key = digest(fingerprint)
        logger.debug(f"[{name}] fingerprint {key}")
        record = self.records.get(name) or {}
        complete = bool(outputs) and all(p.exists() for p in outputs)
        same = record.get("fingerprint") == key
        if same and record.get("status") == "done" and complete and name not in self.force:
            self(f"[{name}] done already ({outputs[0]}), skipped")
            self.results[name] = record["result"]
            return
        resume = same and record.get("status") == "running" and name not in self.force
        self(f"[{name}] running: {self._why(name, record, fingerprint, complete, resume)}")
        if not resume:
            for path in (outputs if clear is None else clear):
                _remove(path)
        started = time.time()
        self.records[name] = {"status": "running", "fingerprint": key, **fingerprint,
                              "outputs": [self._show(p) for p in outputs], "started": _now(started)}
        self._save()
        work()
        finished = time.time()
        # A stage whose outputs are files is known by their content, so an identical result
        # (a summary written again) recomputes nothing after it; folders by when they were made.
        folders = any(p.is_dir() for p in (outputs if clear is None else clear))
        result = digest([key, finished]) if folders else _content_id(outputs)
        self.records[name].update(status="done", result=result, finished=_now(finished),
                                  seconds=round(finished - started, 3))
        self._save()
        self.results[name] = result
        self.ran.append(name)
        self(f"[{name}] finished in {finished - started:.1f} s")

    def given(self, name: str, setting: str, path: Any) -> None:
        """Stage `name` is not computed here: `setting` names another job's output `path`,
        whose identity stands in for the stage's result."""
        if path is None or not Path(str(path)).exists():
            raise InputError(f"{setting}: {path}: no such file or folder")
        ident = identity(path)
        result = digest(ident)
        self.records[name] = {"status": "given", "setting": setting, "path": str(Path(str(path)).resolve()),
                              "inputs": {"given": ident}, "result": result}
        self.results[name] = result
        self(f"[{name}] given by {setting}: {path} (not computed in this run)")
        self._save()

    def skip(self, name: str, reason: str) -> None:
        """Stage `name` is not needed in this run (e.g. corpus linking when the index is given)."""
        self.records[name] = {"status": "not needed", "reason": reason}
        self(f"[{name}] not needed: {reason}")
        self._save()

    def _why(self, name: str, record: dict[str, Any], fingerprint: dict[str, Any], complete: bool,
             resume: bool) -> str:
        if name in self.force:
            return f"forced (--force {name})"
        if not record:
            return "outputs from an earlier ltprobe without a fingerprint" if complete else "first run"
        if resume:
            return "resuming an interrupted run"
        if record.get("status") == "given":
            return f"was given by {record.get('setting')}, now computed here"
        reasons = []
        old_settings, new_settings = _flat(record.get("settings") or {}), _flat(fingerprint["settings"])
        for key in sorted(set(old_settings) | set(new_settings)):
            if old_settings.get(key) != new_settings.get(key):
                reasons.append(f"setting {key} changed ({_short(old_settings.get(key))} -> "
                               f"{_short(new_settings.get(key))})")
        old_inputs, new_inputs = record.get("inputs") or {}, fingerprint["inputs"]
        for key in sorted(set(old_inputs) | set(new_inputs)):
            if old_inputs.get(key) != new_inputs.get(key):
                reasons.append(f"input {key} changed")
        old_after, new_after = record.get("after") or {}, fingerprint["after"]
        for key in sorted(set(old_after) | set(new_after)):
            if old_after.get(key) != new_after.get(key):
                reasons.append(f"{key} was recomputed" if key in self.ran else f"the result of {key} changed")
        if not reasons and not complete:
            reasons.append("outputs missing")
        if not reasons:
            reasons.append("interrupted in an earlier run")
        return "; ".join(reasons)

    def _relative(self, value: Any) -> Any:
        """Paths inside the run folder as `RUN/...`, so that a moved or copied run folder keeps
        its fingerprints."""
        root = str(self.out.resolve()) + "/"
        if isinstance(value, str):
            return "RUN/" + value[len(root):] if value.startswith(root) else value
        if isinstance(value, dict):
            return {k: self._relative(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._relative(v) for v in value]
        return value

    def _show(self, path: Path) -> str:
        try:
            return path.relative_to(self.out).as_posix()
        except ValueError:
            return str(path)

    def _manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def _save(self) -> None:
        manifest = self._manifest()
        manifest["stages"] = {name: self.records[name] for name in STAGES if name in self.records}
        write_json(self.manifest_path, manifest)


def _content_id(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _flat(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (`eval.shots`), so a message names the one that changed."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flat(value, name + "."))
        else:
            flat[name] = value
    return flat


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _now(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
