"""Trends: a run metric per day or week, the score of each run, one test over time."""

from __future__ import annotations

from typing import Any, Literal, overload

from typing_extensions import Unpack

from evalstore.analysis import queries
from evalstore.analysis.base import History
from evalstore.analysis.filters import FilterKwargs, RunFilters
from evalstore.analysis.pipelines import TEST_VALUE_FIELDS, Period, TestValue
from evalstore.analysis.types import (
    DurationPoint,
    HistoryPoint,
    RecordedMetrics,
    ScorePoint,
    TrendPoint,
)
from evalstore.errors import InvalidDataError
from evalstore.models import check_key


def metric_field(metric: str) -> str:
    """The run field a metric name stands for: `score`, or `metrics.<name>`.

    Raises:
        InvalidDataError: the name is empty or holds `$` or `.`.
    """
    if metric == "score":
        return "score"
    try:
        return f"metrics.{check_key(metric, 'metric')}"
    except ValueError as exc:
        raise InvalidDataError(str(exc)) from None


async def get_metric_trend(
    history: History, metric: str, by: Period = "day", **filters: Unpack[FilterKwargs]
) -> list[TrendPoint]:
    """Mean of one run metric per day or ISO week: `[{period, mean, runs}]`, oldest first.

    Args:
        metric: `score` follows the run score; any other name follows
            `metrics.<name>`. Runs that did not measure it are left out.
        by: `day` (`YYYY-MM-DD`) or `week` (ISO week, `YYYY-Www`), in UTC.
        **filters: `since`, `until`, `environment`, `branch`, `tags`,
            `tags_match`, `window_days` (default 30).
    """
    if by not in ("day", "week"):
        raise InvalidDataError(f"by must be 'day' or 'week', got {by!r}")
    run_filters = RunFilters.of(**filters)
    field = metric_field(metric)
    rows = await history.run_rows(
        run_filters,
        lambda match: queries.metric_trend(field, match, by),
        "compute a metric trend",
    )
    return [{"period": r["_id"], "mean": r["mean"], "runs": r["runs"]} for r in rows]


async def get_score_trend(history: History, **filters: Unpack[FilterKwargs]) -> list[ScorePoint]:
    """Score, tests passed and tests run of each finished evaluation run, oldest first.

    Runs still `running` are left out (their aggregates are not computed yet).

    Args:
        **filters: `since`, `until`, `environment`, `branch`, `tags`,
            `tags_match`, `window_days` (default 30).

    Returns:
        `[{evaluation_run_id, started_at, status, score, num_passed, num_tests}]`.
    """
    run_filters = RunFilters.of(**filters)
    rows = await history.run_rows(run_filters, queries.score_trend, "compute the score trend")
    return [
        {
            "evaluation_run_id": r["evaluation_run_id"],
            "started_at": r["started_at"],
            "status": r["status"],
            "score": r.get("score"),
            "num_passed": r.get("num_passed", 0),
            "num_tests": r.get("num_tests", 0),
        }
        for r in rows
    ]


@overload
async def get_test_trend(
    history: History,
    test_id: str,
    *,
    value: Literal["score"] = ...,
    **filters: Unpack[FilterKwargs],
) -> list[HistoryPoint]: ...


@overload
async def get_test_trend(
    history: History,
    test_id: str,
    *,
    value: Literal["duration"],
    **filters: Unpack[FilterKwargs],
) -> list[DurationPoint]: ...


async def get_test_trend(
    history: History,
    test_id: str,
    *,
    value: TestValue = "score",
    **filters: Unpack[FilterKwargs],
) -> list[HistoryPoint] | list[DurationPoint]:
    """One test's score (or duration) and outcome in each run that finished in the window.

    Oldest first.

    Args:
        test_id: the test's stable id.
        value: `score`, or `duration` for its `duration_ms` (None where a run
            has no numeric duration).
        **filters: `since`, `until` (on the test runs' `finished_at`),
            `environment`, `branch`, `tags`, `tags_match` (of their
            evaluation runs), `window_days` (default 30).

    Returns:
        `[{test_run_id, finished_at, score, passed, status}]`, with
        `duration_ms` instead of `score` for `value="duration"`.
    """
    if value not in TEST_VALUE_FIELDS:
        raise InvalidDataError(f"value must be 'score' or 'duration', got {value!r}")
    run_filters = RunFilters.of(**filters, test_id=test_id)
    rows = await history.test_rows(
        run_filters,
        lambda match: queries.single_test_trend(match, value),
        "compute a test's trend",
    )
    if value == "duration":
        durations: list[DurationPoint] = [
            {
                "test_run_id": r["test_run_id"],
                "finished_at": r["finished_at"],
                "duration_ms": _number(r.get("duration_ms")),
                "passed": r["passed"],
                "status": r["status"],
            }
            for r in rows
        ]
        return durations
    scores: list[HistoryPoint] = [
        {
            "test_run_id": r["test_run_id"],
            "finished_at": r["finished_at"],
            "score": r.get("score"),
            "passed": r["passed"],
            "status": r["status"],
        }
        for r in rows
    ]
    return scores


def _number(value: Any) -> float | None:
    """`value` if it is a number (an int or a float, not a bool), else None."""
    return value if type(value) in (int, float) else None


async def get_recorded_metrics(
    history: History, **filters: Unpack[FilterKwargs]
) -> RecordedMetrics:
    """How many finished runs the filters select, and which run metrics they recorded.

    What an empty trend is explained with: no run in the window, or runs that
    measured other metrics.

    Returns:
        `{runs, metrics}`: the number of finished runs and their metric names, sorted.
    """
    run_filters = RunFilters.of(**filters)
    rows = await history.run_rows(
        run_filters, queries.recorded_metrics, "list the recorded metrics"
    )
    [row] = rows or [{"runs": [], "metrics": []}]
    return {
        "runs": row["runs"][0]["n"] if row["runs"] else 0,
        "metrics": [m["_id"] for m in row["metrics"] if isinstance(m["_id"], str)],
    }
