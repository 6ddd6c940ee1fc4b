"""Subtests: a test with a failing subtest is stored as failed, with its subtests in `details`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from plugin_helpers import EMBEDDED, read_database, summary_lines

SUITE = """
import unittest

import pytest


class T(unittest.TestCase):
    def test_basic(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertLess(i, 1)

    def test_all_pass(self):
        for i in range(2):
            with self.subTest(i=i):
                self.assertLess(i, 5)


def test_fixture(subtests):
    for lang in ["es", "de", "fr"]:
        with subtests.test("translate [bold]", lang=lang):
            assert lang != "de", f"no {lang} model"


def test_fixture_all_pass(subtests):
    with subtests.test(i=0):
        pass
    with subtests.test(i=1):
        pytest.skip("not today")


def test_plain():
    pass
"""

PREFIX = "test_inner_subtests.py::"


def _subtests(total: int, passed: int, failed: int, skipped: int, failures: list[Any]) -> Any:
    return {
        "subtests": {
            "total": total,
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
            "failures": failures,
        }
    }


# test -> (status, message, details)
EXPECTED: dict[str, tuple[str, str | None, Any]] = {
    "T::test_all_pass": ("passed", None, _subtests(2, 2, 0, 0, [])),
    "T::test_basic": (
        "failed",
        "2 of 3 subtests failed; first (i=1): AssertionError: 1 not less than 1",
        _subtests(
            3,
            1,
            2,
            0,
            [
                {
                    "msg": None,
                    "params": {"i": "1"},
                    "message": "AssertionError: 1 not less than 1",
                },
                {
                    "msg": None,
                    "params": {"i": "2"},
                    "message": "AssertionError: 2 not less than 1",
                },
            ],
        ),
    ),
    "test_fixture": (
        "failed",
        "1 of 3 subtests failed; first [translate [bold]] (lang='de'): AssertionError: no de model",
        _subtests(
            3,
            2,
            1,
            0,
            [
                {
                    "msg": "translate [bold]",
                    "params": {"lang": "'de'"},
                    "message": "AssertionError: no de model",
                }
            ],
        ),
    ),
    "test_fixture_all_pass": ("passed", None, _subtests(2, 1, 0, 1, [])),
    "test_plain": ("passed", None, None),
}


def _stored(tests: list[dict[str, Any]]) -> dict[str, tuple[str, str | None, Any]]:
    return {
        t["test_id"].removeprefix(PREFIX): (t["status"], t["message"], t["details"]) for t in tests
    }


def _run(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    database = f"plugin_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_DATABASE", database)
    result = inner.runpytest("-p", "no:cacheprovider", *EMBEDDED, *args)
    [run], tests = read_database(database)
    return result, run, tests


@pytest.mark.parametrize("xdist", [(), ("-p", "xdist", "-n", "2")], ids=["serial", "xdist"])
def test_failing_subtests_fail_their_test_and_are_counted(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, xdist: tuple[str, ...]
) -> None:
    inner.makepyfile(test_inner_subtests=SUITE)

    result, run, tests = _run(inner, monkeypatch, *xdist)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # xdist shows the params repr()'d twice (i='1'); evalstore stores them as without it.
    result.stdout.fnmatch_lines(["*SUBFAILED(i=*1*) test_inner_subtests.py::T::test_basic*"])
    assert _stored(tests) == EXPECTED
    # pytest's own summary still calls T::test_basic passed; the stored run does not.
    keys = ("status", "num_tests", "num_passed", "num_failed", "score")
    assert [run[k] for k in keys] == ["failed", 5, 3, 2, 60.0]
    assert summary_lines(result) == [
        f"evalstore: run {run['evaluation_run_id']}  tests 5  passed 3  "
        "subtests 10 (3 failed)  score 60.0 (first run on nogit/dev)"
    ]


def test_a_session_whose_subtests_all_pass_stays_completed(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner.makepyfile(
        test_inner_subtests="""
        def test_languages(subtests):
            for lang in ["es", "de"]:
                with subtests.test(lang=lang):
                    assert lang
        """
    )

    result, run, [test] = _run(inner, monkeypatch)

    assert result.ret == pytest.ExitCode.OK
    assert (test["status"], test["message"], test["score"]) == ("passed", None, 100.0)
    assert test["details"] == _subtests(2, 2, 0, 0, [])
    assert run["status"] == "completed"
    assert summary_lines(result) == [
        f"evalstore: run {run['evaluation_run_id']}  tests 1  passed 1  "
        "subtests 2 (0 failed)  score 100.0 (first run on nogit/dev)"
    ]


def test_a_body_failure_after_failed_subtests_keeps_its_own_message(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner.makepyfile(
        test_inner_subtests="""
        def test_both(subtests):
            with subtests.test(i=0):
                assert False, "sub"
            assert False, "body"
        """
    )

    _result, _run_doc, [test] = _run(inner, monkeypatch)

    assert (test["status"], test["message"]) == ("failed", "AssertionError: body")
    assert test["details"]["subtests"]["failed"] == 1


def test_only_the_first_50_failures_are_kept_but_all_are_counted(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner.makepyfile(
        test_inner_subtests="""
        def test_many(subtests):
            for i in range(60):
                with subtests.test(i=i):
                    assert i < 0
        """
    )

    result, _run_doc, [test] = _run(inner, monkeypatch)

    subtests = test["details"]["subtests"]
    assert (subtests["total"], subtests["failed"], len(subtests["failures"])) == (60, 60, 50)
    assert subtests["failures"][-1]["params"] == {"i": "49"}
    assert test["message"] == "60 of 60 subtests failed; first (i=0): assert 0 < 0"
    assert "subtests 60 (60 failed)" in summary_lines(result)[0]
