"""Durations as a metric: one test's duration per day or week, and the slowest tests.

What pytest-monitor users look for: how long a test takes over time, and which
tests are slow or got slower. Only executed runs count: a skipped run's
duration is the time it took to skip. Durations are `duration_ms`, in milliseconds.
"""

from __future__ import annotations

from typing_extensions import Unpack

from evalstore.analysis import queries, trends
from evalstore.analysis.base import History
from evalstore.analysis.filters import FilterKwargs, RunFilters
from evalstore.analysis.pipelines import PERIOD_FORMATS, Period
from evalstore.analysis.types import SlowTest, TrendPoint
from evalstore.errors import InvalidDataError
from evalstore.models import Document, check_positive_int

DEFAULT_SLOWEST = 10
"""How many tests `get_slowest_tests` returns unless told."""


async def get_test_duration_trend(
    history: History, test_id: str, by: Period = "day", **filters: Unpack[FilterKwargs]
) -> list[TrendPoint]:
    """Mean duration of one test's executed runs per day or ISO week: `[{period, mean, runs}]`.

    Oldest first; periods without an executed run with a duration are left out.
    The runs are those of `get_test_trend(test_id, value="duration")`, grouped
    here on their `finished_at` (UTC), so both engines group alike.

    Args:
        test_id: the test's stable id.
        by: `day` (`YYYY-MM-DD`) or `week` (ISO week, `YYYY-Www`), in UTC.
        **filters: as for `get_test_trend`.
    """
    if by not in PERIOD_FORMATS:
        raise InvalidDataError(f"by must be 'day' or 'week', got {by!r}")
    points = await trends.get_test_trend(history, test_id, value="duration", **filters)
    periods: dict[str, list[float]] = {}
    for point in points:
        duration = point["duration_ms"]
        if point["status"] != "skipped" and duration is not None:
            period = point["finished_at"].strftime(PERIOD_FORMATS[by])
            periods.setdefault(period, []).append(duration)
    return [
        {"period": period, "mean": sum(values) / len(values), "runs": len(values)}
        for period, values in sorted(periods.items())
    ]


async def get_slowest_tests(
    history: History, *, limit: int | None = DEFAULT_SLOWEST, **filters: Unpack[FilterKwargs]
) -> list[SlowTest]:
    """The tests with the longest mean duration over the window, slowest first.

    Per test id, over its executed (not skipped) runs with a numeric
    `duration_ms` that finished in the window: how many, the mean and the
    longest duration, the latest run's duration and how it compares with the
    mean. Ties on the mean (to 9 decimals, as engines may sum in another
    order) go by test id.

    Args:
        limit: how many tests (None: all of them).
        **filters: `since`, `until` (on the test runs' `finished_at`),
            `environment`, `branch`, `suite`, `tags`, `tags_match` (of their
            evaluation runs), `window_days` (default 30).

    Returns:
        `[{test_id, runs, mean_ms, max_ms, last_ms, change, last_seen}]`, where
        `change` is `(last_ms - mean_ms) / mean_ms` (0.5: the last run took 50%
        longer than the mean; None when the mean is 0).
    """
    if limit is not None:
        check_positive_int(limit, "limit")
    run_filters = RunFilters.of(**filters)
    rows = await history.test_rows(run_filters, queries.slowest_tests, "find the slowest tests")
    slowest = sorted((_slow_test(row) for row in rows), key=lambda t: t["test_id"])
    slowest.sort(key=lambda t: round(t["mean_ms"], 9), reverse=True)  # stable: ties by id
    return slowest if limit is None else slowest[:limit]


def _slow_test(row: Document) -> SlowTest:
    mean, last = row["mean_ms"], row["last_ms"]
    return {
        "test_id": row["_id"],
        "runs": row["runs"],
        "mean_ms": mean,
        "max_ms": row["max_ms"],
        "last_ms": last,
        "change": (last - mean) / mean if mean else None,
        "last_seen": row["last_seen"],
    }
