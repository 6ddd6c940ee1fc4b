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

Subtests (pytest's `subtests` fixture, unittest's `self.subTest`) arrive as extra
"call" reports before the test's own call report. They are counted in
`details["subtests"]` (see `SubtestTally.document`), and a test with a failing
subtest is `failed` even though pytest reports its own call as passed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the models load pydantic, which an xdist worker never needs
    from evalstore.models import TestStatus

# The attribute the plugin sets on teardown reports (it survives xdist's serialisation).
REPORT_ATTR = "evalstore"
# The attribute the plugin sets on subtest reports: their msg and params as the worker saw
# them (xdist rebuilds a subtest's context with its params repr()'d a second time).
SUBTEST_ATTR = "evalstore_subtest"
# How many failing subtests of one test `details["subtests"]["failures"]` keeps.
SUBTEST_FAILURES_KEPT = 50
_XPASS_STRICT = "[XPASS(strict)]"


class _Unread(Enum):
    UNREAD = "unread"


UNREAD = _Unread.UNREAD
"""`TestOutcome.add`'s default: the report's subtest context is read there."""
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


def subtest_context(report: pytest.TestReport) -> dict[str, Any] | None:
    """`{"msg": str | None, "params": {name: repr}}` for a subtest's report, None otherwise.

    Works for pytest 9's built-in subtests and the pytest-subtests plugin, whose
    reports both carry a `context` with `msg` and `kwargs`.
    """
    # Called for every report: the usual answer (no subtest) costs two getattr()s.
    data = getattr(report, SUBTEST_ATTR, None)
    if data is not None and isinstance(data, Mapping):
        return {"msg": data.get("msg"), "params": dict(data.get("params") or {})}
    context = getattr(report, "context", None)
    if context is None:
        return None
    kwargs = getattr(context, "kwargs", None)
    if not isinstance(kwargs, Mapping):
        return None
    msg = getattr(context, "msg", None)
    return {
        "msg": None if msg is None else str(msg),
        # pytest 9 already gives repr()s; the pytest-subtests plugin gives the values.
        "params": {_param_key(k): v if isinstance(v, str) else repr(v) for k, v in kwargs.items()},
    }


def _param_key(name: object) -> str:
    # Keyword names are identifiers unless passed as **{...}: keep them storable.
    return str(name).replace("$", "_").replace(".", "_") or "_"


def subtest_label(context: Mapping[str, Any]) -> str:
    """How pytest names a subtest: `[msg] (i=1, lang='es')`, or `(<subtest>)`."""
    parts = []
    if context.get("msg") is not None:
        parts.append(f"[{context['msg']}]")
    params = context.get("params") or {}
    if params:
        parts.append("(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")")
    return " ".join(parts) or "(<subtest>)"


@dataclass
class SubtestTally:
    """The subtests of one test: counts, and the first failures with their one-line messages."""

    total: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, report: pytest.TestReport, context: Mapping[str, Any]) -> None:
        """Count one subtest report (an xfail inside a subtest counts as skipped)."""
        self.total += 1
        if report.failed:
            self.failed += 1
            if len(self.failures) < SUBTEST_FAILURES_KEPT:
                self.failures.append(
                    {
                        "msg": context.get("msg"),
                        "params": dict(context.get("params") or {}),
                        "message": report_message(report),
                    }
                )
        elif report.skipped:
            self.skipped += 1
        else:
            self.passed += 1

    def message(self) -> str:
        """`2 of 3 subtests failed; first (i=1): AssertionError: 1 not less than 1`."""
        text = f"{self.failed} of {self.total} subtests failed"
        if not self.failures:
            return text
        first = self.failures[0]
        return one_line(f"{text}; first {subtest_label(first)}: {first['message'] or '-'}") or text

    def document(self) -> dict[str, Any]:
        """What goes into `details["subtests"]`: counts and the first 50 failures."""
        return {
            "total": self.total,
            "passed": self.passed,
            "failed": self.failed,
            "skipped": self.skipped,
            "failures": [dict(failure) for failure in self.failures],
        }


def _is_subtest_summary(message: str | None) -> bool:
    """pytest's own call failure for a test whose only fault is failed subtests."""
    return bool(
        message
        and message.startswith("contains ")
        and message.rstrip("s").endswith("failed subtest")
    )


@dataclass(slots=True)
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
    subtests: SubtestTally | None = None

    def add(
        self, report: pytest.TestReport, context: Mapping[str, Any] | _Unread | None = UNREAD
    ) -> bool:
        """Fold in one report; return True when the test is complete (its teardown was seen).

        Args:
            report: a setup, call or teardown report of this test, or one of its subtests'.
            context: `subtest_context(report)` when the caller has read it (None: the
                report is no subtest's); by default it is read here.
        """
        if context is UNREAD:
            context = subtest_context(report)
        if context is not None:  # inside the call: its time is the call's time
            if self.subtests is None:
                self.subtests = SubtestTally()
            self.subtests.add(report, context)
            return False
        # Called three times per test: each attribute is read once, and `outcome` stands
        # for the report's passed/failed/skipped properties, which compare it.
        when: str = report.when
        outcome: str = report.outcome
        duration, start, stop = report.duration, report.start, report.stop
        if duration:
            self.duration_s += duration
        if start and (self.started is None or start < self.started):
            self.started = start
        if stop:
            self.finished = max(self.finished or 0.0, stop)
        data = getattr(report, REPORT_ATTR, None)
        if data is not None and isinstance(data, Mapping):
            self.data = data
        wasxfail: str | None = getattr(report, "wasxfail", None)
        if when == "setup":
            if outcome == "failed":
                self._set("error", report_message(report), phase="setup")
            elif outcome == "skipped":
                self._skip(report, wasxfail)
            return False
        if when == "call":
            if outcome == "passed":
                self.status, self.message = "passed", None
                if wasxfail is not None:
                    self._xfail("xpassed", wasxfail)
            elif outcome == "skipped":
                self._skip(report, wasxfail)
            else:
                message = report_message(report)
                self._set("failed", message)
                if message and message.startswith(_XPASS_STRICT):
                    self.details["xfail"] = "xpassed"
            if self.subtests is not None:
                self._fail_on_subtests()
            return False
        if when == "teardown":
            if outcome == "failed":
                message = report_message(report)
                if self.status in (None, "passed", "skipped"):
                    self.details.pop("xfail", None)
                    self.details.pop("xfail_reason", None)
                    self._set("error", message, phase="teardown")
                else:
                    self.details["teardown_error"] = message
            return True
        # pytest-xdist reports a crashed worker's test with when="???": it is over.
        self._set("failed" if outcome == "failed" else "passed", report_message(report))
        return True

    def _fail_on_subtests(self) -> None:
        """A failed subtest fails its test, which pytest may still report as passed."""
        tally = self.subtests
        if tally is None or not tally.failed:
            return
        # pytest's own verdict on such a test, for the `subtests` fixture, is only
        # "contains N failed subtests"; a real failure of the body keeps its message.
        if self.status in ("passed", "skipped") or _is_subtest_summary(self.message):
            self.details.pop("xfail", None)
            self.details.pop("xfail_reason", None)
            self._set("failed", tally.message())

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
        if self.subtests is not None:
            details: dict[str, Any] | None = {**self.details, "subtests": self.subtests.document()}
        else:
            details = dict(self.details) if self.details else None
        result = {
            "test_id": self.nodeid,
            "test_name": data.get("name") or self.nodeid.rsplit("::", 1)[-1],
            "status": self.status or "passed",
            "message": self.message,
            "details": details,
            "tags": tuple(data.get("tags") or ()),
            "metrics": dict(data.get("metrics") or {}),
            "duration_ms": duration_ms,
            "started_at": started,
            "finished_at": finished,
        }
        if data.get("usage"):
            result["usage"] = list(data["usage"])
        for name, value in (data.get("agent") or {}).items():
            if value is not None:
                result[name] = value
        return result


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
