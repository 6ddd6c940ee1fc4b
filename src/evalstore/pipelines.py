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
    """The number of test runs of one evaluation run per status: `{_id: status, tests: n}`.

    The service turns them into `num_passed`, `num_failed` (failed and error),
    `num_skipped` and `num_errors`; one `$group` on the status is cheaper than
    a conditional sum per status and per test run.
    """
    return [
        {"$match": {"evaluation_run_id": evaluation_run_oid}},
        {"$group": {"_id": "$status", "tests": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]


def run_score_pipeline(evaluation_run_oid: ObjectId) -> Pipeline:
    """The run score: the mean test score of one evaluation run.

    Skipped tests carry no score (null), which `$avg` ignores, so they do not
    pull the run score down.
    """
    return [
        {"$match": {"evaluation_run_id": evaluation_run_oid}},
        {"$group": {"_id": None, "score": {"$avg": "$score"}}},
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
    """The three above in one pass over the run's test runs: `{counts, score, means}`."""
    return [
        {"$match": {"evaluation_run_id": evaluation_run_oid}},
        {
            "$facet": {
                "counts": run_counts_pipeline(evaluation_run_oid)[1:],
                "score": run_score_pipeline(evaluation_run_oid)[1:],
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
