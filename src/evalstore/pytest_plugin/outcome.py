"""How the pytest plugin turns a test's setup/call/teardown reports into one test result.

Pure functions over pytest reports (live ones, or the ones pytest-xdist
serialises from its workers), so they run the same with and without xdist.

Outcome mapping (pytest's name on the left):

| pytest                     | `status`  | `details`                                 |
|----------------------------|-----------|-------------------------------------------|
| passed                     | passed    |                                           |
| failed (in the test body)  | failed    |                                           |
| error in setup / teardown  | error     | `{"phase": "setup"}` / `{"phase": "teardown"}` |
| failed, then teardown error| failed    | `{"teardown_error": …}`                   |
| skipped                    | skipped   |                                           |
| xfailed                    | skipped   | `{"xfail": "xfailed", "xfail_reason": …}` |
| xpassed (non-strict)       | passed    | `{"xfail": "xpassed", "xfail_reason": …}` |
| xpassed with strict=True   | failed    | `{"xfail": "xpassed"}`                    |
| collection error           | error     | `{"phase": "collect"}`                    |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest

from evalstore.models import TestStatus

# The attribute the plugin sets on teardown reports (it survives xdist's serialisation).
REPORT_ATTR = "evalstore"
_XPASS_STRICT = "[XPASS(strict)]"
_MESSAGE_LIMIT = 500


def one_line(text: str | None, limit: int | None = _MESSAGE_LIMIT) -> str | None:
    """The first non-blank line of `text`, stripped and cut to `limit` characters."""
    if not text:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:limit]
    return None


def report_message(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The one-line message of a failed or skipped report (None for a passed one)."""
    longrepr: Any = report.longrepr
    if longrepr is None:
        return None
    if isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        # A skip: (path, lineno, "Skipped: reason").
        return one_line(str(longrepr[2]).removeprefix("Skipped: "))
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return one_line(str(crash.message))
    text = str(longrepr)
    # A preformatted traceback (an import error while collecting): its last `E` line.
    errors = [line[1:] for line in text.splitlines() if line.startswith("E ")]
    return one_line(errors[-1] if errors else text)


@dataclass
class TestOutcome:
    """The reports of one test seen so far, folded into what evalstore stores."""

    __test__ = False  # not a pytest test class

    nodeid: str
    started: float | None = None
    finished: float | None = None
    duration_s: float = 0.0
    status: TestStatus | None = None
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] | None = None

    def add(self, report: pytest.TestReport) -> bool:
        """Fold in one report; return True when the test is complete (its teardown was seen)."""
        when: str = report.when
        self.duration_s += report.duration or 0.0
        if report.start and (self.started is None or report.start < self.started):
            self.started = report.start
        if report.stop:
            self.finished = max(self.finished or 0.0, report.stop)
        data = getattr(report, REPORT_ATTR, None)
        if isinstance(data, Mapping):
            self.data = data
        wasxfail: str | None = getattr(report, "wasxfail", None)
        if when == "setup":
            if report.failed:
                self._set("error", report_message(report), phase="setup")
            elif report.skipped:
                self._skip(report, wasxfail)
            return False
        if when == "call":
            if report.passed:
                self._set("passed", None)
                if wasxfail is not None:
                    self._xfail("xpassed", wasxfail)
            elif report.skipped:
                self._skip(report, wasxfail)
            else:
                message = report_message(report)
                self._set("failed", message)
                if message and message.startswith(_XPASS_STRICT):
                    self.details["xfail"] = "xpassed"
            return False
        if when == "teardown":
            if report.failed:
                message = report_message(report)
                if self.status in (None, "passed", "skipped"):
                    self.details.pop("xfail", None)
                    self.details.pop("xfail_reason", None)
                    self._set("error", message, phase="teardown")
                else:
                    self.details["teardown_error"] = message
            return True
        # pytest-xdist reports a crashed worker's test with when="???": it is over.
        self._set("failed" if report.failed else "passed", report_message(report))
        return True

    def _set(self, status: TestStatus, message: str | None, *, phase: str | None = None) -> None:
        self.status = status
        self.message = message
        if phase is not None:
            self.details["phase"] = phase

    def _skip(self, report: pytest.TestReport, wasxfail: str | None) -> None:
        self._set("skipped", report_message(report))
        if wasxfail is not None:
            self._xfail("xfailed", wasxfail)

    def _xfail(self, kind: str, reason: str) -> None:
        self.details["xfail"] = kind
        if reason:
            self.details["xfail_reason"] = reason

    def result(self) -> dict[str, Any]:
        """The keyword arguments of `RunRecorder.record_test` for this test."""
        data = self.data or {}
        duration_ms = round(self.duration_s * 1000.0, 3)
        started = _utc(self.started)
        finished = _utc(self.finished)
        if started is not None and finished is not None and finished < started:
            finished = started
        return {
            "test_id": self.nodeid,
            "test_name": data.get("name") or self.nodeid.rsplit("::", 1)[-1],
            "status": self.status or "passed",
            "message": self.message,
            "details": dict(self.details) or None,
            "tags": list(data.get("tags") or ()),
            "metrics": dict(data.get("metrics") or {}),
            "duration_ms": duration_ms,
            "started_at": started,
            "finished_at": finished,
        }


def collect_result(report: pytest.CollectReport) -> dict[str, Any] | None:
    """The test result for a failed (error) or skipped collection report; None otherwise."""
    if report.failed:
        status: TestStatus = "error"
        details: dict[str, Any] | None = {"phase": "collect"}
    elif report.skipped:
        status, details = "skipped", None
    else:
        return None
    test_id = report.nodeid or "<session>"
    return {
        "test_id": test_id,
        "test_name": test_id,
        "status": status,
        "message": report_message(report),
        "details": details,
        "tags": [],
        "metrics": {},
        "duration_ms": 0.0,
        "started_at": None,
        "finished_at": None,
    }


def _utc(timestamp: float | None) -> datetime | None:
    if not timestamp:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc)
