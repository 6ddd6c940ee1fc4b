"""The session as a whole: when the plugin records, the run's status, tags, summary line."""

from __future__ import annotations

import re
import subprocess

import pytest
from plugin_helpers import EMBEDDED, summary_lines

TWO_PASSING = """
def test_a():
    pass

def test_b():
    pass
"""


def test_inactive_without_the_flag_or_mongodb_enabled(inner, db_name, stored, monkeypatch):
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    monkeypatch.setenv("MONGODB_ENABLED", "false")
    inner.makepyfile(test_quiet=TWO_PASSING)

    result = inner.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    assert summary_lines(result) == []
    assert stored() == ([], [])


def test_inactive_plugin_ignores_unrelated_invalid_settings(inner, db_name, stored, monkeypatch):
    # ENVIRONMENT is a common name: evalstore must not complain unless it is switched on.
    monkeypatch.setenv("ENVIRONMENT", "production")
    inner.makepyfile(test_quiet=TWO_PASSING)

    result = inner.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
    assert summary_lines(result) == []


def test_mongodb_enabled_switches_it_on_without_the_flag(inner, db_name, stored, monkeypatch):
    monkeypatch.setenv("MONGODB_ENABLED", "true")
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    monkeypatch.setenv("ENVIRONMENT", "stage")
    monkeypatch.setenv("EXPERIMENT_TAGS", "baseline,a")
    inner.makepyfile(test_env=TWO_PASSING)

    result = inner.runpytest(
        "-p", "no:cacheprovider", "--evalstore-tag", "x", "--evalstore-tag=y,a"
    )

    assert result.ret == pytest.ExitCode.OK
    [run], tests = stored()
    assert (run["environment"], run["experiment_tags"]) == ("stage", ["baseline", "a", "x", "y"])
    assert len(tests) == 2
    assert summary_lines(result) == [
        f"evalstore: run {run['evaluation_run_id']}  tests 2  passed 2  score 100.0 "
        "(first run on nogit/stage)"
    ]


def test_collect_only_records_nothing(inner, run_recorded, stored):
    inner.makepyfile(test_listed=TWO_PASSING)

    result = run_recorded("--collect-only")

    assert result.ret == pytest.ExitCode.OK
    assert summary_lines(result) == []
    assert stored() == ([], [])


def test_a_session_stopped_by_x_is_failed_with_the_tests_that_ran(inner, run_recorded, stored):
    inner.makepyfile(
        test_stop="""
        def test_1():
            pass

        def test_2():
            assert False

        def test_3():
            pass
        """
    )

    result = run_recorded("-x")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    [run], tests = stored()
    assert [(t["test_id"], t["status"]) for t in tests] == [
        ("test_stop.py::test_1", "passed"),
        ("test_stop.py::test_2", "failed"),
    ]
    assert run["status"] == "failed"
    assert (run["num_tests"], run["num_passed"], run["num_failed"], run["score"]) == (2, 1, 1, 50.0)


def test_a_collection_error_is_an_error_test_and_interrupts_the_run(inner, run_recorded, stored):
    inner.makepyfile(test_good=TWO_PASSING, test_broken="import no_such_module_here\n")

    result = run_recorded()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    [run], [test] = stored()
    assert (test["test_id"], test["status"], test["details"]) == (
        "test_broken.py",
        "error",
        {"phase": "collect"},
    )
    assert test["message"] == "ModuleNotFoundError: No module named 'no_such_module_here'"
    # pytest stops at a collection error (exit 2): the run is not whole, so never `latest`.
    assert (run["status"], run["num_tests"], run["num_errors"], run["score"]) == (
        "interrupted",
        1,
        1,
        0.0,
    )


def _run_id(line: str) -> str:
    match = re.match(r"evalstore: run (\S+) ", line)
    assert match, line
    return match.group(1)


def test_summary_compares_with_the_previous_finished_run(inner, run_recorded, stored):
    def session(score: float, fail: bool = False) -> str:
        inner.makepyfile(
            test_scored=f"""
            def test_scored(evalstore_metrics):
                evalstore_metrics.record("quality", score={score})
                assert not {fail}
            """
        )
        [line] = summary_lines(run_recorded())
        return line

    first = session(80.0)
    failed = session(10.0, fail=True)  # a run whose tests failed is the one to compare with
    third = session(92.5)

    first_id, failed_id, third_id = _run_id(first), _run_id(failed), _run_id(third)
    assert (
        first
        == f"evalstore: run {first_id}  tests 1  passed 1  score 80.0 (first run on nogit/dev)"
    )
    assert (
        failed == f"evalstore: run {failed_id}  tests 1  passed 0  score 10.0 (-70.0 vs {first_id})"
    )
    assert (
        third == f"evalstore: run {third_id}  tests 1  passed 1  score 92.5 (+82.5 vs {failed_id})"
    )
    runs, _tests = stored()
    assert [r["status"] for r in runs] == ["completed", "failed", "completed"]


def test_git_provenance_and_the_comparison_per_branch(inner, db_name, stored, monkeypatch):
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=inner.path, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "ci@example.com")
    git("config", "user.name", "CI")
    inner.makepyfile(test_branch=TWO_PASSING)
    git("add", "-A")
    git("commit", "-q", "-m", "tests")

    first = summary_lines(inner.runpytest("-p", "no:cacheprovider", *EMBEDDED))
    git("checkout", "-q", "-b", "feature")
    second = summary_lines(inner.runpytest("-p", "no:cacheprovider", *EMBEDDED))

    runs, _tests = stored()
    assert [(r["git_branch"], len(r["git_commit"])) for r in runs] == [
        ("main", 40),
        ("feature", 40),
    ]
    assert first[0].endswith("(first run on main/dev)")
    assert second[0].endswith("(first run on feature/dev)")


def test_conftest_hook_adds_the_system_configuration(inner, run_recorded, stored):
    inner.makeconftest(
        """
        def pytest_evalstore_system_config(config):
            return {"model": "whisper-small", "beam": 5}
        """
    )
    inner.makepyfile(test_configured=TWO_PASSING)

    run_recorded()

    [run], _tests = stored()
    assert run["system_information"]["config"] == {"model": "whisper-small", "beam": 5}


def test_evalstore_warnings_logged_by_the_tests_themselves_are_not_storage_problems(
    inner, run_recorded, stored
):
    inner.makepyfile(
        test_logs="""
        import logging

        def test_logs_a_warning():
            logging.getLogger("evalstore").warning("evalstore: a test's own warning")
        """
    )

    result = run_recorded()

    [run], _tests = stored()
    assert summary_lines(result) == [
        f"evalstore: run {run['evaluation_run_id']}  tests 1  passed 1  score 100.0 "
        "(first run on nogit/dev)"
    ]
