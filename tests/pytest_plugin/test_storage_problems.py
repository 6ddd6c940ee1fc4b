"""Storage problems never fail a test or the session: one warning line, same exit code."""

from __future__ import annotations

import time

import pytest
from plugin_helpers import summary_lines

from evalstore.errors import StorageUnavailableError

ONE_FAILING = """
import pytest

@pytest.mark.parametrize("i", range(50))
def test_many(i):
    pass

def test_failing():
    assert False
"""
TWO_PASSING = """
def test_a():
    pass

def test_b():
    pass
"""


def _warnings(result: pytest.RunResult) -> list[str]:
    lines = summary_lines(result)
    assert all(line.startswith("evalstore: WARNING: ") for line in lines), lines
    return lines


def test_unreachable_server_keeps_the_exit_code_and_warns_once(inner, db_name, monkeypatch):
    inner.makepyfile(test_unreachable=ONE_FAILING)
    without = inner.runpytest("-p", "no:cacheprovider")
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "300")

    started = time.monotonic()
    result = inner.runpytest(
        "-p",
        "no:cacheprovider",
        "--evalstore",
        "--evalstore-url",
        "mongodb://user:secret@127.0.0.1:1",
    )
    elapsed = time.monotonic() - started

    assert without.ret == result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=50, failed=1)
    [warning] = _warnings(result)
    assert "mongodb://user:***@127.0.0.1:1" in warning
    assert "secret" not in result.stdout.str() + result.stderr.str()
    # A dead server costs a few timeouts for the session, not one per test (51 x 0.3 s).
    assert elapsed < 10


def test_unreachable_server_with_a_passing_suite_exits_zero(inner, db_name, monkeypatch):
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "300")
    inner.makepyfile(test_unreachable_ok=TWO_PASSING)

    result = inner.runpytest(
        "-p", "no:cacheprovider", "--evalstore", "--evalstore-url", "mongodb://127.0.0.1:1"
    )

    assert result.ret == pytest.ExitCode.OK
    assert len(_warnings(result)) == 1


def test_a_bad_url_is_one_warning(inner, db_name):
    inner.makepyfile(test_bad_url=TWO_PASSING)

    result = inner.runpytest("-p", "no:cacheprovider", "--evalstore", "--evalstore-url", "http://x")

    assert result.ret == pytest.ExitCode.OK
    [warning] = _warnings(result)
    assert warning.startswith(
        "evalstore: WARNING: results not stored: invalid connection string 'http://x': "
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("MONGODB_TIMEOUT_MS", "abc"), ("ENVIRONMENT", "production"), ("MONGODB_ENABLED", "maybe")],
)
def test_an_invalid_setting_is_one_warning_naming_it(inner, db_name, monkeypatch, name, value):
    monkeypatch.setenv("MONGODB_ENABLED", "true")
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    monkeypatch.setenv(name, value)
    inner.makepyfile(test_bad_setting=TWO_PASSING)

    result = inner.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    [warning] = _warnings(result)
    assert warning.startswith(f"evalstore: WARNING: results not stored: invalid {name}='{value}'")


def test_a_failing_finalisation_is_one_warning(inner, run_recorded, stored, monkeypatch):
    async def finish(self, status="completed"):
        raise StorageUnavailableError("cannot reach MongoDB at mongodb://u:***@db:27017")

    monkeypatch.setattr("evalstore.recording.run.RunRecorder.finish", finish)
    inner.makepyfile(test_finish_fails=ONE_FAILING)

    result = run_recorded()

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _warnings(result) == [
        "evalstore: WARNING: results not stored: cannot reach MongoDB at mongodb://u:***@db:27017"
    ]


def test_a_bug_while_recording_never_reaches_pytest(inner, run_recorded, stored, monkeypatch):
    def add(self, report, context=None):
        raise RuntimeError("bug")

    monkeypatch.setattr("evalstore.pytest_plugin.outcome.TestOutcome.add", add)
    inner.makepyfile(test_plugin_bug=TWO_PASSING)

    result = run_recorded()

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    [run], tests = stored()
    assert (run["status"], run["num_tests"], tests) == ("completed", 0, [])
    assert summary_lines(result) == [
        f"evalstore: run {run['evaluation_run_id']}  tests 0  passed 0  score - "
        "(first run on nogit/dev)",
        "evalstore: WARNING: could not record test_plugin_bug.py::test_a: RuntimeError: bug",
    ]
