"""Run folders for the report tests.

`synthetic_run` is written in the contract's shapes from a small synthetic question set (fast,
every number controlled, every optional part present). `pipeline_run` is the lead's
`small_run` (the real pipeline on a reduced config) when the suite provides it, else the
synthetic run, so the notebook and report tests also pass over real pipeline output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.probe.report.synthetic_run import make_run


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> Path:
    """A run folder with every optional part: summary extras, generation/, counterfactual.json."""
    path = tmp_path_factory.mktemp("report_runs") / "full"
    make_run(path)
    return path


@pytest.fixture(scope="session")
def minimal_run(tmp_path_factory) -> Path:
    """A run folder with the contract's files only: no summary extras, manifest-less parts absent."""
    path = tmp_path_factory.mktemp("report_runs") / "minimal"
    make_run(path, seed=3, extras=False, generation=False, counterfactual=False, model="minimal-model")
    (path / "manifest.json").unlink()
    return path


@pytest.fixture
def pipeline_run(request, synthetic_run) -> Path:
    """The lead's `small_run` (real pipeline output) when defined, else `synthetic_run`."""
    try:
        return Path(request.getfixturevalue("small_run"))
    except pytest.FixtureLookupError:
        return synthetic_run
