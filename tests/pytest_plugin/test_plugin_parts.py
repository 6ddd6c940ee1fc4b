"""The plugin's parts that need no pytest session: summary line, messages, loop, warnings."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from evalstore.pytest_plugin.outcome import TestOutcome, one_line, report_message, subtest_context
from evalstore.pytest_plugin.writer import BackgroundLoop, RunSummary, WarningCollector


def _summary(**changes: object) -> RunSummary:
    fields: dict[str, object] = {
        "evaluation_run_id": "2026-01-02T03-04-05Z-main-3f9a1c",
        "num_tests": 12,
        "num_passed": 11,
        "score": 86.64,
        "branch": "main",
        "environment": "dev",
    }
    return RunSummary(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "ending"),
    [
        ({}, "score 86.6 (first run on main/dev)"),
        ({"branch": None, "environment": "lab"}, "score 86.6 (first run on nogit/lab)"),
        (
            {"previous_run_id": "2026-01-01T00-00-00Z-main-1a8fbd", "previous_score": 85.3},
            "score 86.6 (+1.3 vs 2026-01-01T00-00-00Z-main-1a8fbd)",
        ),
        (
            {"previous_run_id": "old", "previous_score": 90.0, "score": 80.0},
            "score 80.0 (-10.0 vs old)",
        ),
        (
            {"previous_run_id": "old", "previous_score": 90.0, "score": None},
            "score - (no score to compare with old)",
        ),
    ],
)
def test_summary_line(changes, ending):
    assert _summary(**changes).line() == (
        f"evalstore: run 2026-01-02T03-04-05Z-main-3f9a1c  tests 12  passed 11  {ending}"
    )


def test_one_line_keeps_the_first_non_blank_line_cut_to_500_characters():
    assert one_line("\n  first  \nsecond") == "first"
    assert one_line("x" * 600) == "x" * 500
    assert one_line("  \n ") is None
    assert one_line(None) is None


def test_report_message_of_a_serialised_skip_and_of_a_preformatted_traceback():
    skipped = pytest.TestReport(
        "t.py::t", ("t.py", 1, "t"), {}, "skipped", ["t.py", 1, "Skipped: later"], "setup"
    )
    assert report_message(skipped) == "later"
    broken = pytest.CollectReport(
        "t.py", "failed", "ImportError while importing\nTraceback:\nE   ValueError: bad\n", []
    )
    assert report_message(broken) == "ValueError: bad"


def test_an_outcome_reads_a_reports_subtest_context_once_given_it():
    def report(when, outcome="passed"):
        made = pytest.TestReport("t.py::t", ("t.py", 1, "t"), {}, outcome, None, when)
        made.evalstore_subtest = {"msg": "case", "params": {"i": "1"}}  # as a worker marks it
        return made

    read_here = TestOutcome("t.py::t")
    assert read_here.add(report("call", "failed")) is False  # read here: a subtest's report
    assert read_here.subtests is not None
    assert read_here.subtests.failed == 1
    assert read_here.status is None

    given = TestOutcome("t.py::t")  # what the plugin's hook passes: the context it read
    call = report("call", "failed")
    assert given.add(call, None) is False  # None: not a subtest's, whatever the report holds
    assert given.subtests is None
    assert given.status == "failed"
    assert given.add(report("teardown"), None) is True
    assert given.add(call, subtest_context(call)) is False
    assert given.subtests is not None
    assert given.subtests.total == 1


def test_warning_collector_keeps_one_redacted_line_per_warning():
    collector = WarningCollector()
    logger = logging.getLogger("evalstore.test_collector")
    logger.addHandler(collector)
    try:
        logger.warning("evalstore: cannot reach %s\nsecond line", "mongodb://u:pw@h:1")
        logger.info("not a warning")
    finally:
        logger.removeHandler(collector)
    assert collector.messages == ["cannot reach mongodb://u:***@h:1"]


def test_background_loop_runs_coroutines_on_its_thread_and_closes_cleanly():
    loop = BackgroundLoop(name="evalstore-test-loop")

    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    assert loop.submit(where()).result(5) == "evalstore-test-loop"
    pending = loop.submit(asyncio.sleep(3600))
    loop.close()
    loop.close()  # idempotent
    assert pending.cancelled()
    assert "evalstore-test-loop" not in {t.name for t in threading.enumerate()}


def test_warning_collector_ignores_other_threads_when_given_one():
    collector = WarningCollector(thread_id=-1)
    logger = logging.getLogger("evalstore.test_collector_thread")
    logger.addHandler(collector)
    try:
        logger.warning("from the tests' own thread")
    finally:
        logger.removeHandler(collector)
    assert collector.messages == []
