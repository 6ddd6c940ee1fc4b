"""Per-test statistics and flaky tests over the window."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal, get_args

from typing_extensions import Unpack

from evalstore.analysis import queries
from evalstore.analysis.base import History
from evalstore.analysis.filters import FilterKwargs, RunFilters
from evalstore.analysis.significance import wilson_interval
from evalstore.analysis.types import FlakyTest, OutcomeChange, PerTestStats, TestOutcomes
from evalstore.errors import InvalidDataError
from evalstore.models import Document, check_positive_int

StatsSortKey = Literal[
    "test_id",
    "runs",
    "passed",
    "mean_score",
    "min_score",
    "max_score",
    "pass_rate",
    "last_status",
    "last_seen",
]
STATS_SORT_KEYS: tuple[str, ...] = get_args(StatsSortKey)
DEFAULT_STRIP_LENGTH = 10
FLAKY_FLIPS = 2
"""A test is flaky from two outcome changes on; one change is a lasting regression or fix."""
RATE_DIGITS = 6
"""Interval bounds of a pass rate are rounded to this many decimals."""
_STRIP_LETTERS = {"passed": "P", "failed": "F", "error": "E"}


def sort_rows(rows: list[Any], key: str, descending: bool = False) -> list[Any]:
    """Rows sorted on `key` (ties by `test_id`), rows whose `key` is None last either way."""
    by_id = sorted(rows, key=lambda r: r["test_id"])
    present = [r for r in by_id if r[key] is not None]
    missing = [r for r in by_id if r[key] is None]
    # Python's sort is stable also with reverse=True, so ties stay in test id order. Means
    # are compared to 9 decimals: summed in another order (SQL, a server's pipeline) they
    # can differ in the last bit, which must not reorder tests with equal means.
    return sorted(present, key=lambda r: _sort_value(r[key]), reverse=descending) + missing


def _sort_value(value: Any) -> Any:
    return round(value, 9) if isinstance(value, float) else value


def flips(outcomes: Sequence[bool]) -> int:
    """How many times consecutive outcomes change (pass to fail or fail to pass)."""
    return sum(1 for before, after in pairwise(outcomes) if before != after)


async def get_test_stats(
    history: History,
    *,
    sort: StatsSortKey = "test_id",
    descending: bool = False,
    test_id: str | None = None,
    **filters: Unpack[FilterKwargs],
) -> list[PerTestStats]:
    """Statistics of every test id that ran in the window.

    Args:
        sort: the key to sort on (ties by test id; None values last).
        descending: largest first.
        test_id: only this test.
        **filters: `since`, `until` (on the test runs' `finished_at`),
            `environment`, `branch`, `tags`, `tags_match` (of their
            evaluation runs), `window_days` (default 30).

    Returns:
        `[{test_id, runs, passed, mean_score, min_score, max_score, pass_rate,
        last_status, last_seen}]`. `pass_rate` is passes over executed runs
        (a skipped run counts in `runs` only); scores average the runs that
        have one.
    """
    if sort not in STATS_SORT_KEYS:
        raise InvalidDataError(f"sort must be one of {', '.join(STATS_SORT_KEYS)}, got {sort!r}")
    run_filters = RunFilters.of(**filters, test_id=test_id)
    rows = await history.test_rows(
        run_filters, queries.per_test_stats, "compute per-test statistics"
    )
    stats: list[PerTestStats] = [
        {
            "test_id": r["_id"],
            "runs": r["runs"],
            "passed": r["passed"],
            "mean_score": r.get("mean_score"),
            "min_score": r.get("min_score"),
            "max_score": r.get("max_score"),
            "pass_rate": r.get("pass_rate"),
            "last_status": r.get("last_status"),
            "last_seen": r["last_seen"],
        }
        for r in rows
    ]
    return sort_rows(stats, sort, descending)


async def get_flaky_tests(
    history: History,
    min_runs: int = 5,
    *,
    strip_length: int = DEFAULT_STRIP_LENGTH,
    test_id: str | None = None,
    **filters: Unpack[FilterKwargs],
) -> list[FlakyTest]:
    """Tests whose outcome alternated in the window, most flaky first.

    A test is flaky when it has at least `min_runs` executed runs (skipped
    runs do not count) and its outcome changed at least twice between
    consecutive runs, in `finished_at` order (an error counts as a failure).
    A test whose outcome changed exactly once (`PPPPFFFF`: it broke and
    stayed broken, or it was fixed) is not flaky: `get_outcome_changes`
    lists those. The flip rate is the number of changes divided by runs
    minus one. Ranked by flip rate (highest first), then pass rate (lowest
    first), then test id.

    Args:
        min_runs: the fewest executed runs a test needs to be judged.
        strip_length: how many of the last outcomes `recent` shows.
        test_id: only this test.
        **filters: as for `get_test_stats`.

    Returns:
        `[{test_id, runs, pass_rate, flips, flip_rate, recent, last_seen,
        pass_rate_low, pass_rate_high}]`, where `recent` reads oldest to
        newest, e.g. `PPFPF` (E for an error), and `pass_rate_low` /
        `pass_rate_high` bound the Wilson 95% interval of the pass rate (how
        sure `runs` runs make it: 3 passes in 5 runs give 23% to 88%).
    """
    rows = await _mixed_outcomes(history, min_runs, strip_length, test_id, filters)
    return _flaky(rows)


async def get_outcome_changes(
    history: History,
    min_runs: int = 5,
    *,
    strip_length: int = DEFAULT_STRIP_LENGTH,
    test_id: str | None = None,
    **filters: Unpack[FilterKwargs],
) -> list[OutcomeChange]:
    """Tests whose outcome changed exactly once in the window: broke (or were fixed) and stayed.

    `PPPPPFFFFF` is a regression that lasted, not a flake; these are the
    tests `get_flaky_tests` leaves out. Same arguments as `get_flaky_tests`.

    Returns:
        `[{test_id, runs, change, changed_at, pass_rate, recent, last_seen}]`,
        `change` being `broke` (passing, then failing) or `fixed`, newest change first.
    """
    rows = await _mixed_outcomes(history, min_runs, strip_length, test_id, filters)
    return _changed(rows)


async def get_test_outcomes(
    history: History,
    min_runs: int = 5,
    *,
    strip_length: int = DEFAULT_STRIP_LENGTH,
    test_id: str | None = None,
    **filters: Unpack[FilterKwargs],
) -> TestOutcomes:
    """`get_flaky_tests` and `get_outcome_changes` together, from one read of the window.

    What `evalstore flaky` shows: the flaky tests, then those that changed once.

    Returns:
        `{flaky, changed}`, each as the function of that name returns it.
    """
    rows = await _mixed_outcomes(history, min_runs, strip_length, test_id, filters)
    return {"flaky": _flaky(rows), "changed": _changed(rows)}


def _flaky(rows: list[tuple[FlakyTest, datetime]]) -> list[FlakyTest]:
    flaky = [row for row, _changed_at in rows if row["flips"] >= FLAKY_FLIPS]
    flaky.sort(key=lambda f: (-f["flip_rate"], f["pass_rate"], f["test_id"]))
    return flaky


def _changed(rows: list[tuple[FlakyTest, datetime]]) -> list[OutcomeChange]:
    changes: list[OutcomeChange] = [
        {
            "test_id": row["test_id"],
            "runs": row["runs"],
            "change": "fixed" if row["recent"][-1] == "P" else "broke",
            "changed_at": changed_at,
            "pass_rate": row["pass_rate"],
            "recent": row["recent"],
            "last_seen": row["last_seen"],
        }
        for row, changed_at in rows
        if row["flips"] == 1
    ]
    changes.sort(key=lambda c: c["test_id"])
    changes.sort(key=lambda c: c["changed_at"], reverse=True)
    return changes


async def _mixed_outcomes(
    history: History,
    min_runs: int,
    strip_length: int,
    test_id: str | None,
    filters: FilterKwargs,
) -> list[tuple[FlakyTest, datetime]]:
    """Each test that both passed and failed, with when its outcome last changed."""
    check_positive_int(min_runs, "min_runs")
    check_positive_int(strip_length, "strip_length")
    run_filters = RunFilters.of(**filters, test_id=test_id)
    rows = await history.test_rows(
        run_filters, lambda match: queries.flaky_tests(match, min_runs), "find flaky tests"
    )
    return [_flaky_row(row, strip_length) for row in rows]


def _flaky_row(row: Document, strip_length: int) -> tuple[FlakyTest, datetime]:
    # Time order is established here: $push order after $group is not specified by MongoDB.
    outcomes: list[Document] = sorted(row["outcomes"], key=lambda o: o["t"])
    passed = [o["s"] == "passed" for o in outcomes]
    count = flips(passed)
    last_change = max(i for i in range(1, len(passed)) if passed[i] != passed[i - 1])
    last_seen: datetime = outcomes[-1]["t"]
    interval = wilson_interval(sum(passed), len(passed))
    assert interval is not None  # the query returns tests with at least one executed run
    flaky: FlakyTest = {
        "test_id": row["_id"],
        "runs": row["runs"],
        "pass_rate": row["pass_rate"],
        "flips": count,
        "flip_rate": count / (row["runs"] - 1),
        "recent": "".join(_STRIP_LETTERS[o["s"]] for o in outcomes[-strip_length:]),
        "last_seen": last_seen,
        "pass_rate_low": round(interval[0], RATE_DIGITS),
        "pass_rate_high": round(interval[1], RATE_DIGITS),
    }
    return flaky, outcomes[last_change]["t"]
