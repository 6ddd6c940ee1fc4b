"""Aggregation pipelines as pure functions returning `list[dict]`.

They run unchanged on MongoDB 6+ and on the embedded backend: only operators
that both evaluate identically are used (see the project's mongomock notes).
The README shows each one next to its mongosh twin.
"""

from __future__ import annotations

from typing import Any, Literal

from bson import ObjectId

Pipeline = list[dict[str, Any]]
Period = Literal["day", "week"]

PERIOD_FORMATS: dict[str, str] = {"day": "%Y-%m-%d", "week": "%G-W%V"}


def _count_stages() -> Pipeline:
    """The number of test runs per status: `{_id: status, tests: n}`.

    The service turns them into `num_passed`, `num_failed` (failed and error),
    `num_skipped` and `num_errors`; one `$group` on the status is cheaper than
    a conditional sum per status and per test run.
    """
    return [
        {"$group": {"_id": "$status", "tests": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]


def _score_stages() -> Pipeline:
    """The run score: the mean test score.

    Skipped tests carry no score (null), which `$avg` ignores, so they do not
    pull the run score down.
    """
    return [{"$group": {"_id": None, "score": {"$avg": "$score"}}}]


def _metric_means_stages() -> Pipeline:
    """The mean score of each metric over the test runs that have it."""
    return [
        {"$project": {"_id": 0, "metric": {"$objectToArray": {"$ifNull": ["$metrics", {}]}}}},
        {"$unwind": "$metric"},
        {"$group": {"_id": "$metric.k", "mean": {"$avg": "$metric.v.score"}}},
        {"$sort": {"_id": 1}},
    ]


def run_aggregates_pipeline(evaluation_run_oid: ObjectId) -> Pipeline:
    """The aggregates of one evaluation run, in one pass over its test runs.

    One document `{counts, score, means}`: the test runs per status, the run
    score and the mean of each metric (see the stage builders above).
    """
    return [
        {"$match": {"evaluation_run_id": evaluation_run_oid}},
        {
            "$facet": {
                "counts": _count_stages(),
                "score": _score_stages(),
                "means": _metric_means_stages(),
            }
        },
    ]


def metric_trend_pipeline(field: str, match: dict[str, Any], by: Period = "day") -> Pipeline:
    """Mean of a numeric run field per day (`YYYY-MM-DD`) or ISO week (`YYYY-Www`).

    Only runs where the field is a number count, so `runs` is the number of
    runs that measured it.
    """
    return [
        {"$match": {**match, field: {"$type": "number"}}},
        {
            "$group": {
                "_id": {"$dateToString": {"format": PERIOD_FORMATS[by], "date": "$started_at"}},
                "mean": {"$avg": f"${field}"},
                "runs": {"$sum": 1},
            }
        },
        {"$sort": {"_id": 1}},
    ]
