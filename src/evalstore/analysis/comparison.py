"""Run comparison: what changed between a base run and a head run, and did it regress.

A test **regressed** when it is present in both runs and either

* it is **newly failing**: `passed` in the base, `failed` or `error` in the head; or
* its score **dropped by more than `tolerance`** points (head minus base < -tolerance).

Added tests (only in the head) and removed tests (only in the base) are
reported but are not regressions, nor are changes to or from `skipped`. The
comparison `regressed` when any test did. Run-level aggregates (score and
metrics) are reported as deltas but do not decide: they are means of the
test scores, whose drops already count.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from bson import ObjectId

from evalstore.analysis import queries
from evalstore.analysis.base import SELECTORS, History
from evalstore.analysis.pipelines import FUTURE_SLACK
from evalstore.analysis.types import MetricDelta, PerTestComparison, RunComparison, RunRef
from evalstore.errors import InvalidDataError, RunNotFoundError
from evalstore.models import Document, check_text, is_finite, utcnow

RunSelector = Literal["latest", "previous"]
FAILING = ("failed", "error")
DELTA_DIGITS = 6
"""Deltas are rounded to this many decimals: 80.0 - 80.3 gives -0.3, not -0.30000000000000426."""


def delta(base: float | None, head: float | None) -> float | None:
    """Head minus base, rounded to `DELTA_DIGITS` decimals; None when either is missing."""
    if base is None or head is None:
        return None
    return round(head - base, DELTA_DIGITS)


def check_tolerance(tolerance: float) -> float:
    """A finite, non-negative number of score points."""
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not is_finite(tolerance)
        or tolerance < 0
    ):
        raise InvalidDataError(f"tolerance must be a non-negative number, got {tolerance!r}")
    return float(tolerance)


def compare_tests(
    base: dict[str, Document], head: dict[str, Document], tolerance: float
) -> list[PerTestComparison]:
    """Compare the last test run of each test id in two runs, sorted by test id."""
    rows: list[PerTestComparison] = []
    for test_id in sorted(base.keys() | head.keys()):
        old, new = base.get(test_id), head.get(test_id)
        old_score = old.get("score") if old else None
        new_score = new.get("score") if new else None
        change_in_score = delta(old_score, new_score)
        if old is None:
            change = "added"
        elif new is None:
            change = "removed"
        elif old["status"] == "passed" and new["status"] in FAILING:
            change = "newly_failing"
        elif old["status"] in FAILING and new["status"] == "passed":
            change = "newly_passing"
        elif change_in_score is not None and change_in_score < -tolerance:
            change = "score_drop"
        else:
            change = "same"
        dropped = change_in_score is not None and change_in_score < -tolerance
        rows.append(
            {
                "test_id": test_id,
                "base_status": old["status"] if old else None,
                "head_status": new["status"] if new else None,
                "base_score": old_score,
                "head_score": new_score,
                "delta": change_in_score,
                "head_message": new.get("message") if new else None,
                "change": change,
                "regressed": change == "newly_failing" or dropped,
            }
        )
    return rows


def metric_deltas(base: Document, head: Document) -> list[MetricDelta]:
    """The run score, then each run metric (by name), in both runs."""
    base_metrics: dict[str, float] = base.get("metrics") or {}
    head_metrics: dict[str, float] = head.get("metrics") or {}
    rows: list[MetricDelta] = [
        {
            "metric": "score",
            "base": base.get("score"),
            "head": head.get("score"),
            "delta": delta(base.get("score"), head.get("score")),
        }
    ]
    for name in sorted(base_metrics.keys() | head_metrics.keys()):
        old, new = base_metrics.get(name), head_metrics.get(name)
        rows.append({"metric": name, "base": old, "head": new, "delta": delta(old, new)})
    return rows


def last_per_test(test_runs: Iterable[Document]) -> dict[str, Document]:
    """Each test id's last test run (by `finished_at`), for a run that repeated a test."""
    last: dict[str, Document] = {}
    for test_run in sorted(test_runs, key=lambda t: t["finished_at"]):
        last[test_run["test_id"]] = test_run
    return last


def run_ref(run: Document) -> RunRef:
    """The fields that identify a run in a comparison."""
    return {
        "evaluation_run_id": run["evaluation_run_id"],
        "started_at": run["started_at"],
        "git_branch": run.get("git_branch"),
        "git_commit": run.get("git_commit"),
        "status": run["status"],
        "score": run.get("score"),
    }


async def compare_runs(
    history: History,
    base: str | ObjectId,
    head: str | ObjectId,
    *,
    branch: str | None = None,
    environment: str | None = None,
    suite: str | None = None,
    tolerance: float = 0.0,
) -> RunComparison:
    """Compare a head run with a base run, test by test and aggregate by aggregate.

    Args:
        base: a run id, an ObjectId hex, or `latest` / `previous` (the newest /
            second-newest completed run, of `branch` if given).
        head: the same, for the run under judgement.
        branch: where `latest` and `previous` look.
        tolerance: how many score points a test may lose before it counts
            as a regression (default 0: any drop).

    Returns:
        `{base, head, tolerance, tests, newly_failing, newly_passing, added,
        removed, score_drops, regressions, metric_deltas, regressed}`; see
        the module documentation for what regressed means.

    Raises:
        RunNotFoundError: a run does not exist (or too few completed runs for
            `latest`/`previous`).
    """
    tolerance = check_tolerance(tolerance)
    for name, value in (("branch", branch), ("environment", environment), ("suite", suite)):
        if value is not None:
            check_text(value, name)
    newest: list[Document] = []
    if any(isinstance(s, str) and s in SELECTORS for s in (base, head)):
        newest = await history.rows(
            queries.latest_runs(
                branch, environment, suite=suite, not_after=utcnow() + FUTURE_SLACK
            ),
            "find the latest runs",
        )
    where = " and ".join(
        f"{name} {value!r}"
        for name, value in (("suite", suite), ("branch", branch), ("environment", environment))
        if value
    )
    base_run = await _select_run(history, base, where, newest)
    head_run = await _select_run(history, head, where, newest)
    action = "compare runs"
    base_tests = last_per_test(await history.rows(queries.run_tests(base_run["_id"]), action))
    head_tests = last_per_test(await history.rows(queries.run_tests(head_run["_id"]), action))
    tests = compare_tests(base_tests, head_tests, tolerance)

    def ids(predicate: str) -> list[str]:
        return [t["test_id"] for t in tests if t["change"] == predicate]

    regressions = [t["test_id"] for t in tests if t["regressed"]]
    return {
        "base": run_ref(base_run),
        "head": run_ref(head_run),
        "tolerance": tolerance,
        "tests": tests,
        "newly_failing": ids("newly_failing"),
        "newly_passing": ids("newly_passing"),
        "added": ids("added"),
        "removed": ids("removed"),
        "score_drops": [
            t["test_id"] for t in tests if t["delta"] is not None and t["delta"] < -tolerance
        ],
        "regressions": regressions,
        "metric_deltas": metric_deltas(base_run, head_run),
        "regressed": bool(regressions),
    }


async def _select_run(
    history: History, selector: str | ObjectId, where: str, newest: list[Document]
) -> Document:
    """The run `selector` names: an id, or `latest`/`previous` among `newest`."""
    if not (isinstance(selector, str) and selector in SELECTORS):
        return await history.select(selector)
    index = SELECTORS.index(selector)
    if len(newest) <= index:
        raise RunNotFoundError(
            f"no {selector} finished evaluation run{' on ' + where if where else ''}: "
            f"found {len(newest)} finished run(s) with tests"
        )
    return newest[index]
