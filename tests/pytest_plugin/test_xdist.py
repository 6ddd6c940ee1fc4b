"""pytest-xdist: one evaluation run for the session, the same documents as without xdist."""

from __future__ import annotations

import uuid

import pytest
from plugin_helpers import EMBEDDED, read_database

SUITE = '''
import pytest


@pytest.mark.slow
@pytest.mark.parametrize("i", range(8))
def test_scored(i, evalstore_metrics):
    """Scored by index."""
    evalstore_metrics.record("wer", score=10.0 * i, threshold=30, passed=i <= 3, unit="%")
    evalstore_metrics.record("when", score=50, details={"at": "2025-01-01"})


def test_fails():
    assert 2 + 2 == 5


@pytest.mark.xfail(reason="known")
def test_xfails():
    raise KeyError("k")


@pytest.fixture
def broken():
    raise OSError("no disk")


def test_setup_error(broken):
    pass


@pytest.mark.skip(reason="later")
def test_skipped():
    pass
'''


_KEYS = ("test_id", "test_name", "status", "passed", "score", "message", "details", "tags")


def _comparable(test: dict[str, object]) -> tuple[object, ...]:
    return (*(test[key] for key in _KEYS), test["metrics"])


def test_xdist_records_one_run_equal_to_a_run_without_it(inner, monkeypatch):
    inner.makepyfile(test_inner_xdist=SUITE)
    serial_db, parallel_db = (f"plugin_{uuid.uuid4().hex[:12]}" for _ in range(2))

    monkeypatch.setenv("MONGODB_DATABASE", serial_db)
    serial = inner.runpytest("-p", "no:cacheprovider", *EMBEDDED)
    monkeypatch.setenv("MONGODB_DATABASE", parallel_db)
    parallel = inner.runpytest("-p", "no:cacheprovider", *EMBEDDED, "-n", "2")

    assert serial.ret == parallel.ret == pytest.ExitCode.TESTS_FAILED
    parallel.assert_outcomes(passed=8, failed=1, xfailed=1, errors=1, skipped=1)
    assert "2 workers [12 items]" in parallel.stdout.str()
    [serial_run], serial_tests = read_database(serial_db)
    [parallel_run], parallel_tests = read_database(parallel_db)

    keys = ("status", "num_tests", "num_passed", "num_failed", "num_skipped", "num_errors")
    assert [parallel_run[k] for k in keys] == ["failed", 12, 8, 2, 2, 1]
    assert [serial_run[k] for k in keys] == [parallel_run[k] for k in keys]
    # Scores by hand: eight tests of (10 i + 50) / 2, then 0 for the failure and the error.
    expected_score = (sum((10.0 * i + 50) / 2 for i in range(8)) + 0 + 0) / 10
    assert parallel_run["score"] == pytest.approx(expected_score)
    assert serial_run["score"] == pytest.approx(expected_score)
    assert parallel_run["metrics"] == serial_run["metrics"] == {"wer": 35.0, "when": 50.0}
    assert parallel_run["system_info_hash"] == serial_run["system_info_hash"]
    assert sorted(map(_comparable, parallel_tests)) == sorted(map(_comparable, serial_tests))
    scored = next(
        t for t in parallel_tests if t["test_id"] == "test_inner_xdist.py::test_scored[5]"
    )
    assert (scored["test_name"], scored["tags"], scored["score"]) == (
        "Scored by index.",
        ["slow"],
        50.0,
    )
    assert scored["metrics"]["when"]["details"] == {"at": "2025-01-01"}
    assert all(t["evaluation_run_id"] == parallel_run["_id"] for t in parallel_tests)
    assert all(t["duration_ms"] > 0 for t in parallel_tests)
