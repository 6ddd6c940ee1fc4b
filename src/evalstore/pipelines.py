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


def run_counts_pipeline(evaluation_run_oid: ObjectId) -> Pipeline:
    """Counts by status and the mean test score of one evaluation run.

    Skipped tests carry no score (null), which `$avg` ignores, so they do not
    pull the run score down. `num_failed` counts failed and error tests.
    """

    def count_status(*statuses: str) -> dict[str, Any]:
        return {"$sum": {"$cond": [{"$in": ["$status", list(statuses)]}, 1, 0]}}

    return [
        {"$match": {"evaluation_run_id": evaluation_run_oid}},
        {
            "$group": {
                "_id": None,
                "num_tests": {"$sum": 1},
                "num_passed": count_status("passed"),
                "num_failed": count_status("failed", "error"),
                "num_skipped": count_status("skipped"),
                "num_errors": count_status("error"),
                "score": {"$avg": "$score"},
            }
        },
    ]


def run_metric_means_pipeline(evaluation_run_oid: ObjectId) -> Pipeline:
    """The mean score of each metric over the tests of one evaluation run that have it."""
    return [
        {"$match": {"evaluation_run_id": evaluation_run_oid}},
        {"$project": {"_id": 0, "metric": {"$objectToArray": {"$ifNull": ["$metrics", {}]}}}},
        {"$unwind": "$metric"},
        {"$group": {"_id": "$metric.k", "mean": {"$avg": "$metric.v.score"}}},
        {"$sort": {"_id": 1}},
    ]


def run_aggregates_pipeline(evaluation_run_oid: ObjectId) -> Pipeline:
    """Both of the above in one pass over the run's test runs: `{counts: [...], means: [...]}`."""
    return [
        {"$match": {"evaluation_run_id": evaluation_run_oid}},
        {
            "$facet": {
                "counts": run_counts_pipeline(evaluation_run_oid)[1:],
                "means": run_metric_means_pipeline(evaluation_run_oid)[1:],
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
