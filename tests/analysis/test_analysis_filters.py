"""The `$match` documents of the history queries: one window, three shapes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bson import ObjectId

from evalstore.analysis.filters import RUN_LOOKUP_SLACK, RunFilters

NOW = datetime(2026, 3, 15, 12, tzinfo=timezone.utc)
SINCE = datetime(2026, 3, 1, tzinfo=timezone.utc)
UNTIL = datetime(2026, 3, 10, tzinfo=timezone.utc)
OID = ObjectId("65a1b2c3d4e5f6a7b8c9d0e1")


def _ordered(value: object) -> object:
    """Nested dicts as lists of items, so that comparisons also check key order."""
    if isinstance(value, dict):
        return [(key, _ordered(item)) for key, item in value.items()]
    return value


def test_run_match_without_an_end_has_no_upper_bound() -> None:
    filters = RunFilters(window_days=7)
    assert _ordered(filters.match(now=NOW)) == [("started_at", [("$gte", NOW - timedelta(days=7))])]


def test_run_match_with_every_filter() -> None:
    filters = RunFilters(
        since=SINCE,
        until=UNTIL,
        environment="dev",
        branch="main",
        tags=("a", "b"),
        tags_match="all",
    )
    assert _ordered(filters.match(now=NOW)) == [
        ("started_at", [("$gte", SINCE), ("$lt", UNTIL)]),
        ("environment", "dev"),
        ("git_branch", "main"),
        ("experiment_tags", [("$all", ["a", "b"])]),
    ]


def test_run_lookup_match_starts_the_window_earlier() -> None:
    filters = RunFilters(since=SINCE, until=UNTIL, environment="dev", tags=("a",))
    assert _ordered(filters.run_lookup_match(NOW)) == [
        ("started_at", [("$gte", SINCE - RUN_LOOKUP_SLACK), ("$lt", UNTIL)]),
        ("environment", "dev"),
        ("experiment_tags", [("$in", ["a"])]),
    ]
    assert _ordered(RunFilters(window_days=2).run_lookup_match(NOW)) == [
        ("started_at", [("$gte", NOW - timedelta(days=2) - RUN_LOOKUP_SLACK)])
    ]


def test_test_match_filters_finished_at_and_runs() -> None:
    filters = RunFilters(since=SINCE, until=UNTIL, environment="dev", test_id="t1")
    assert _ordered(filters.test_match([OID], NOW)) == [
        ("test_id", "t1"),
        ("finished_at", [("$gte", SINCE), ("$lt", UNTIL)]),
        ("evaluation_run_id", [("$in", [OID])]),
    ]
    assert _ordered(RunFilters(until=UNTIL, window_days=1).test_match(now=NOW)) == [
        ("finished_at", [("$gte", UNTIL - timedelta(days=1)), ("$lt", UNTIL)])
    ]
