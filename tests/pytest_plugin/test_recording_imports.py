"""A session recording plain results into the local store never imports pydantic.

Importing pydantic and building evalstore's models cost a recording session
about 60 ms, a fifth of the plugin's whole overhead on 2,000 trivial tests. The
settings, the run document and plain test results are built without it; a
result the plain path cannot vouch for (a metric, a non-plain value) still goes
through the models, which then load.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

RECORD_MODULES = """
import json
import sys


def pytest_unconfigure(config):
    with open("modules.json", "w", encoding="utf-8") as handle:
        json.dump(sorted(sys.modules), handle)
"""
PLAIN_TESTS = """
import pytest


@pytest.mark.parametrize("case", range(3))
def test_case(case):
    assert case < 2


def test_skipped():
    pytest.skip("not today")
"""
DATABASE = "plugin_imports"
WITH_A_METRIC = """
def test_scored(evalstore_metrics):
    evalstore_metrics.record("wer", score=87.5, threshold=80, passed=True, unit="%")
"""


def pydantic_modules(directory: Path) -> list[str]:
    modules = json.loads((directory / "modules.json").read_text(encoding="utf-8"))
    return [name for name in modules if name.split(".")[0] in ("pydantic", "pydantic_core")]


def stored_statuses(store: Path) -> dict[str, str]:
    with sqlite3.connect(store / DATABASE / "evalstore.sqlite3") as connection:
        rows = connection.execute("SELECT doc FROM test_runs").fetchall()
    documents = [json.loads(doc) for (doc,) in rows]
    return {document["test_id"]: document["status"] for document in documents}


@pytest.fixture
def store(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A local store the inner sessions record into, and a conftest noting their modules."""
    store = tmp_path / "store"
    monkeypatch.setenv("MONGODB_ENABLED", "true")
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", f"file://{store}")
    monkeypatch.setenv("MONGODB_DATABASE", DATABASE)
    monkeypatch.setenv("EVALSTORE_SPOOL_DIR", str(tmp_path / "spool"))
    inner.makeconftest(RECORD_MODULES)
    return store


def test_plain_results_are_recorded_without_pydantic(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    monkeypatch.setenv("EXPERIMENT_TAGS", "nightly,beam-5")
    inner.makepyfile(test_plain=PLAIN_TESTS)

    result = inner.runpytest_subprocess("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["evalstore: run * tests 4  passed 2  score *"])
    assert pydantic_modules(inner.path) == []
    assert stored_statuses(store) == {
        "test_plain.py::test_case[0]": "passed",
        "test_plain.py::test_case[1]": "passed",
        "test_plain.py::test_case[2]": "failed",
        "test_plain.py::test_skipped": "skipped",
    }


def test_a_metric_loads_the_models_and_is_recorded(inner: pytest.Pytester, store: Path) -> None:
    inner.makepyfile(test_metric=WITH_A_METRIC)

    result = inner.runpytest_subprocess("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["evalstore: run * tests 1  passed 1  score 87.5 *"])
    assert "pydantic" in pydantic_modules(inner.path)
    with sqlite3.connect(store / DATABASE / "evalstore.sqlite3") as connection:
        [(doc,)] = connection.execute("SELECT doc FROM test_runs").fetchall()
    assert json.loads(doc)["metrics"] == {
        "wer": {"score": 87.5, "passed": True, "threshold": 80.0, "unit": "%", "details": None}
    }
