"""The pytest-xdist worker's side of the plugin: it annotates reports, and never opens storage.

With xdist the controller records everything, from the reports its workers send.
A worker whose `workerinput` carries `WORKER_FLAG` registers a `ReportAnnotator`,
which attaches to each test's teardown report the test's name, marker tags and
metrics, and to each subtest report the subtest's msg and params as they are
here (xdist's copy of a report repr()s the params a second time). Both are
attached in `pytest_runtest_logreport`, before xdist's own implementation sends
the report to the controller.
"""

from __future__ import annotations

import contextlib

import pytest

from evalstore.pytest_plugin.metrics import item_data
from evalstore.pytest_plugin.outcome import REPORT_ATTR, SUBTEST_ATTR, subtest_context

WORKER_FLAG = "evalstore_annotate"
"""Set in an xdist worker's `workerinput` by the recording controller."""


class ReportAnnotator:
    """Attaches what the controller records to the reports a worker sends it."""

    def __init__(self) -> None:
        self._item: pytest.Item | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """Note the test being run: its teardown report gets its name, tags and metrics."""
        self._item = item

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Runs before xdist's worker sends the report to the controller."""
        with contextlib.suppress(Exception):  # never let bookkeeping break a test
            if report.when == "teardown":
                item = self._item
                if item is not None and item.nodeid == report.nodeid:
                    setattr(report, REPORT_ATTR, item_data(item))
            elif getattr(report, SUBTEST_ATTR, None) is None:
                context = subtest_context(report)
                if context is not None:
                    setattr(report, SUBTEST_ATTR, context)
