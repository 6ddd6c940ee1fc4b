"""What the plugin stores for each kind of pytest outcome, checked document by document."""

from __future__ import annotations

from importlib.metadata import version

import pytest

OUTCOMES = '''
import time

import pytest


def test_ok():
    """Adds numbers.

    The rest of the docstring is not the name.
    """
    assert 1 + 1 == 2


def test_fail():
    assert 1 == 2


@pytest.mark.slow
@pytest.mark.parametrize("x", [1, 2])
def test_param(x, evalstore_metrics):
    evalstore_metrics.record("wer", score=10.0 * x, threshold=15, passed=x < 2, unit="%")


@pytest.mark.skip(reason="not today")
def test_skip():
    pass


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert 0


@pytest.mark.xfail(reason="fixed?")
def test_xpass():
    pass


@pytest.mark.xfail(strict=True, reason="must fail")
def test_xpass_strict():
    pass


@pytest.fixture
def broken():
    raise RuntimeError("boom")


def test_setup_error(broken):
    pass


@pytest.fixture
def bad_teardown():
    yield
    raise ValueError("teardown boom")


def test_teardown_error(bad_teardown):
    pass


def test_slow():
    time.sleep(0.05)
'''


def _wer(score: float, passed: bool) -> dict[str, object]:
    return {"score": score, "passed": passed, "threshold": 15.0, "unit": "%", "details": None}


# test id -> (status, passed, score, message, details, tags, name, metrics)
EXPECTED = {
    "test_inner_outcomes.py::test_ok": ("passed", True, 100.0, None, None, [], "Adds numbers.", {}),
    "test_inner_outcomes.py::test_fail": (
        "failed",
        False,
        0.0,
        "assert 1 == 2",
        None,
        [],
        "test_fail",
        {},
    ),
    "test_inner_outcomes.py::test_param[1]": (
        "passed",
        True,
        10.0,
        None,
        None,
        ["slow"],
        "test_param[1]",
        {"wer": _wer(10.0, True)},
    ),
    "test_inner_outcomes.py::test_param[2]": (
        "passed",
        True,
        20.0,
        None,
        None,
        ["slow"],
        "test_param[2]",
        {"wer": _wer(20.0, False)},
    ),
    "test_inner_outcomes.py::test_skip": (
        "skipped",
        False,
        None,
        "not today",
        None,
        ["skip"],
        "test_skip",
        {},
    ),
    "test_inner_outcomes.py::test_xfail": (
        "skipped",
        False,
        None,
        "assert 0",
        {"xfail": "xfailed", "xfail_reason": "known bug"},
        ["xfail"],
        "test_xfail",
        {},
    ),
    "test_inner_outcomes.py::test_xpass": (
        "passed",
        True,
        100.0,
        None,
        {"xfail": "xpassed", "xfail_reason": "fixed?"},
        ["xfail"],
        "test_xpass",
        {},
    ),
    "test_inner_outcomes.py::test_xpass_strict": (
        "failed",
        False,
        0.0,
        "[XPASS(strict)] must fail",
        {"xfail": "xpassed"},
        ["xfail"],
        "test_xpass_strict",
        {},
    ),
    "test_inner_outcomes.py::test_setup_error": (
        "error",
        False,
        0.0,
        "RuntimeError: boom",
        {"phase": "setup"},
        [],
        "test_setup_error",
        {},
    ),
    "test_inner_outcomes.py::test_teardown_error": (
        "error",
        False,
        0.0,
        "ValueError: teardown boom",
        {"phase": "teardown"},
        [],
        "test_teardown_error",
        {},
    ),
    "test_inner_outcomes.py::test_slow": ("passed", True, 100.0, None, None, [], "test_slow", {}),
}


def test_every_outcome_is_stored_as_documented(inner, run_recorded, stored):
    inner.makepyfile(test_inner_outcomes=OUTCOMES)

    result = run_recorded()

    result.assert_outcomes(passed=5, failed=2, skipped=1, xfailed=1, xpassed=1, errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    runs, tests = stored()
    assert len(runs) == 1
    run = runs[0]
    got = {
        t["test_id"]: (
            t["status"],
            t["passed"],
            t["score"],
            t["message"],
            t["details"],
            t["tags"],
            t["test_name"],
            t["metrics"],
        )
        for t in tests
    }
    assert got == EXPECTED
    for test in tests:
        assert test["evaluation_run_id"] == run["_id"]
        assert test["test_run_id"].startswith(run["evaluation_run_id"] + "/")
        assert test["duration_ms"] > 0
        assert test["started_at"] <= test["finished_at"]
    slow = next(t for t in tests if t["test_id"].endswith("::test_slow"))
    assert 50 <= slow["duration_ms"] < 5000

    # Aggregates, by hand: scores 100, 0, 10, 20, 100, 0, 0, 0, 100 (skipped ones have none).
    assert run["status"] == "failed"  # the session failed
    assert (run["num_tests"], run["num_passed"], run["num_failed"]) == (11, 5, 4)
    assert (run["num_skipped"], run["num_errors"]) == (2, 2)
    assert run["score"] == pytest.approx(330 / 9)
    assert run["metrics"] == {"wer": pytest.approx(15.0)}
    assert run["finished_at"] >= run["started_at"]


def test_a_passing_session_completes_and_keeps_provenance(inner, run_recorded, stored):
    inner.makepyfile(
        test_two="""
        def test_a():
            pass

        def test_b():
            pass
        """
    )

    result = run_recorded()

    assert result.ret == pytest.ExitCode.OK
    [run], tests = stored()
    assert run["status"] == "completed"
    assert (run["num_tests"], run["num_passed"], run["score"]) == (2, 2, 100.0)
    assert (run["environment"], run["experiment_tags"]) == ("dev", [])
    # pytester's directory is no git repository
    assert (run["git_commit"], run["git_branch"], run["git_dirty"]) == (None, None, None)
    packages = run["system_information"]["packages"]
    for name in ("pytest", "evalstore", "pytest-xdist", "pytest-asyncio"):
        assert packages[name] == version(name)
    assert run["system_information"]["config"] == {}
    assert [t["status"] for t in tests] == ["passed", "passed"]


def test_metrics_recorded_by_a_failing_test_are_kept_and_set_its_score(inner, run_recorded, stored):
    inner.makepyfile(
        test_metrics="""
        def test_two_metrics(evalstore_metrics):
            evalstore_metrics.record("wer", score=80, unit="%", details={"words": 15})
            evalstore_metrics.record("latency", score=60, threshold=50, passed=True)
            evalstore_metrics.record("wer", score=70, unit="%")  # replaces the first
            assert evalstore_metrics.metrics["wer"]["score"] == 70.0

        def test_fails_after_recording(evalstore_metrics):
            evalstore_metrics.record("wer", score=40)
            assert False, "too many errors"
        """
    )

    run_recorded()

    [run], tests = stored()
    by_id = {t["test_id"].split("::")[1]: t for t in tests}
    two = by_id["test_two_metrics"]
    assert two["metrics"] == {
        "wer": {"score": 70.0, "passed": None, "threshold": None, "unit": "%", "details": None},
        "latency": {
            "score": 60.0,
            "passed": True,
            "threshold": 50.0,
            "unit": None,
            "details": None,
        },
    }
    assert (two["status"], two["score"]) == ("passed", 65.0)
    failing = by_id["test_fails_after_recording"]
    assert (failing["status"], failing["score"]) == ("failed", 40.0)
    assert failing["message"] == "AssertionError: too many errors"
    assert run["metrics"] == {"latency": 60.0, "wer": 55.0}
    assert run["score"] == pytest.approx((65.0 + 40.0) / 2)


def test_an_invalid_metric_fails_its_test_with_a_clear_message(inner, run_recorded, stored):
    inner.makepyfile(
        test_bad_metric="""
        def test_bad(evalstore_metrics):
            evalstore_metrics.record("wer", score=150)
        """
    )

    result = run_recorded()

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    [_run], [test] = stored()
    assert test["status"] == "failed"
    assert test["message"] == (
        "evalstore.errors.InvalidDataError: metrics.wer.score must be between 0 and 100, got 150"
    )


def test_markers_of_class_and_module_become_sorted_tags(inner, run_recorded, stored):
    inner.makepyfile(
        test_marked="""
        import pytest

        pytestmark = pytest.mark.gpu

        @pytest.mark.slow
        class TestGroup:
            @pytest.mark.usefixtures("tmp_path")
            @pytest.mark.filterwarnings("ignore")
            def test_inside(self):
                '''Inside a class.'''

        def test_module_level_only():
            pass
        """
    )

    run_recorded()

    _runs, tests = stored()
    assert [(t["test_id"], t["test_name"], t["tags"]) for t in tests] == [
        ("test_marked.py::TestGroup::test_inside", "Inside a class.", ["gpu", "slow"]),
        ("test_marked.py::test_module_level_only", "test_module_level_only", ["gpu"]),
    ]


def test_async_tests_run_under_pytest_asyncio_are_recorded(inner, run_recorded, stored):
    inner.makepyfile(
        test_async="""
        import asyncio

        async def test_sleeps(evalstore_metrics):
            await asyncio.sleep(0.01)
            evalstore_metrics.record("latency", score=90)
        """
    )

    result = run_recorded()

    result.assert_outcomes(passed=1)
    [run], [test] = stored()
    assert (test["status"], test["score"], test["tags"]) == ("passed", 90.0, ["asyncio"])
    assert test["duration_ms"] >= 10
    assert run["status"] == "completed"


def test_a_failure_followed_by_a_teardown_error_stays_failed(inner, run_recorded, stored):
    inner.makepyfile(
        test_both="""
        import pytest

        @pytest.fixture
        def leaky():
            yield
            raise OSError("cannot clean up")

        def test_both(leaky):
            assert 1 == 0

        @pytest.mark.xfail(reason="known")
        def test_xfail_then_teardown_error(leaky):
            assert False
        """
    )

    result = run_recorded()

    # pytest counts the xfail test's teardown error as expected too (an xfail, no error).
    result.assert_outcomes(failed=1, xfailed=2, errors=1)
    _runs, tests = stored()
    assert [(t["status"], t["message"], t["details"]) for t in tests] == [
        ("failed", "assert 1 == 0", {"teardown_error": "OSError: cannot clean up"}),
        ("skipped", "assert False", {"xfail": "xfailed", "xfail_reason": "known"}),
    ]
