"""The aggregation pipelines, as pure functions returning plain dicts.

A run's own aggregates (`run_aggregates_pipeline`, run by finalisation) and every
history-analysis question.

The service runs exactly these, and the README shows each one as its mongosh
twin. Only operators that MongoDB 6+ and the embedded backend evaluate
identically are used. What the embedded backend cannot do (`$setWindowFields`
for flip rates, `$stdDevSamp`, `$round`) is done in Python on the few rows a
pipeline returns, after a server-side `$match`/`$group`/`$sort`.

Every pipeline starts with a `$match` on indexed fields (see
`index_coverage`, which the test suite checks against the indexes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from bson import ObjectId

from evalstore.errors import InvalidDataError

Pipeline = list[dict[str, Any]]
Period = Literal["day", "week"]

PERIOD_FORMATS: dict[str, str] = {"day": "%Y-%m-%d", "week": "%G-W%V"}

Filter = dict[str, Any]

RUNNING = "running"
"""Runs still running have no aggregates yet, so run-level analyses leave them out.

Every other status (`completed`, `failed`, `interrupted`) is a finalised run.
"""

_HEX = re.compile(r"[0-9a-f]{1,64}")


def finished_runs(match: Filter) -> Filter:
    """`match` restricted to finalised evaluation runs (any status but `running`)."""
    return {**match, "status": {"$ne": RUNNING}}


def run_ids_pipeline(match: Filter) -> Pipeline:
    """The `_id`s of the evaluation runs matching `match` (to filter their test runs).

    Test runs do not carry the environment, branch or tags of their run, so a
    test-run query with those filters first selects the runs' `_id`s here and
    then matches `evaluation_run_id: {$in: ids}` (served by its index).
    """
    return [{"$match": match}, {"$project": {"_id": 1}}]


def score_trend_pipeline(match: Filter) -> Pipeline:
    """Score, passed and test counts of each finished evaluation run, oldest first."""
    return [
        {"$match": finished_runs(match)},
        {"$sort": {"started_at": 1}},
        {
            "$project": {
                "_id": 0,
                "evaluation_run_id": 1,
                "started_at": 1,
                "status": 1,
                "score": 1,
                "num_passed": 1,
                "num_tests": 1,
            }
        },
    ]


def recorded_metrics_pipeline(match: Filter) -> Pipeline:
    """How many finished runs match, and the run metric names they hold (sorted).

    One document `{runs: [{n}], metrics: [{_id: name}, ...]}`: what an empty
    answer is explained with.
    """
    return [
        {"$match": finished_runs(match)},
        {
            "$facet": {
                "runs": [{"$group": {"_id": None, "n": {"$sum": 1}}}],
                "metrics": [
                    {
                        "$project": {
                            "_id": 0,
                            "m": {"$objectToArray": {"$ifNull": ["$metrics", {}]}},
                        }
                    },
                    {"$unwind": "$m"},
                    {"$group": {"_id": "$m.k"}},
                    {"$sort": {"_id": 1}},
                ],
            }
        },
    ]


TestValue = Literal["score", "duration"]
"""What a test's trend follows: its score, or its duration (`duration_ms`)."""

TEST_VALUE_FIELDS: dict[str, str] = {"score": "score", "duration": "duration_ms"}
"""The test run field each `TestValue` reads."""


def single_test_trend_pipeline(match: Filter, value: TestValue = "score") -> Pipeline:
    """One test's runs (match on `test_id` and `finished_at`): score and outcome, oldest first.

    With `value="duration"`, each row holds `duration_ms` instead of `score`.
    """
    return [
        {"$match": match},
        {"$sort": {"finished_at": 1}},
        {
            "$project": {
                "_id": 0,
                "test_run_id": 1,
                "finished_at": 1,
                TEST_VALUE_FIELDS[value]: 1,
                "passed": 1,
                "status": 1,
            }
        },
    ]


def slowest_tests_pipeline(match: Filter) -> Pipeline:
    """Per test id, the durations of its executed runs: count, mean, max, last, last seen.

    Skipped runs (their duration is the time to skip) and runs without a
    numeric `duration_ms` are left out. The `$sort` before `$group` makes
    `$last` the latest run's duration; every matched document has the field,
    so the embedded backend's `$last` (which skips a missing one) agrees.
    Ranking and the limit are Python's, so that both engines cut at the same test.
    """
    return [
        # $ne rather than $in: the status index must not look like it serves this query.
        {
            "$match": {
                **match,
                "status": {"$ne": "skipped"},
                "duration_ms": {"$type": "number"},
            }
        },
        {"$sort": {"finished_at": 1}},
        {
            "$group": {
                "_id": "$test_id",
                "runs": {"$sum": 1},
                "mean_ms": {"$avg": "$duration_ms"},
                "max_ms": {"$max": "$duration_ms"},
                "last_ms": {"$last": "$duration_ms"},
                "last_seen": {"$max": "$finished_at"},
            }
        },
        {"$sort": {"_id": 1}},
    ]


def _pass_or_null() -> dict[str, Any]:
    # 1 for a pass, 0 for a failure or error, null for a skipped run ($avg ignores null).
    return {"$cond": [{"$in": ["$status", ["skipped"]]}, None, {"$cond": ["$passed", 1, 0]}]}


def per_test_stats_pipeline(match: Filter) -> Pipeline:
    """Per test id: runs, passes, mean/min/max score, pass rate, last status, last seen.

    Skipped runs count in `runs` but not in `pass_rate` (passes over executed
    runs) and carry no score. The `$sort` before `$group` makes `$last` the
    latest status; `$ifNull` keeps MongoDB's null where the embedded backend
    would skip a missing value.
    """
    return [
        {"$match": match},
        {"$sort": {"finished_at": 1}},
        {
            "$group": {
                "_id": "$test_id",
                "runs": {"$sum": 1},
                "passed": {"$sum": {"$cond": ["$passed", 1, 0]}},
                "mean_score": {"$avg": "$score"},
                "min_score": {"$min": "$score"},
                "max_score": {"$max": "$score"},
                "pass_rate": {"$avg": _pass_or_null()},
                "last_status": {"$last": {"$ifNull": ["$status", None]}},
                "last_seen": {"$max": "$finished_at"},
            }
        },
        {"$sort": {"_id": 1}},
    ]


def flaky_tests_pipeline(match: Filter, min_runs: int) -> Pipeline:
    """Tests with at least `min_runs` executed runs and a pass rate strictly between 0 and 1.

    Each row carries its outcomes as `{t: finished_at, s: status}`; the flip
    rate (changes between consecutive runs) needs them in time order, which
    Python establishes by sorting on `t` ($setWindowFields and $reduce are
    missing on the embedded backend).
    """
    return [
        # $ne rather than $in: the status index must not look like it serves this query.
        {"$match": {**match, "status": {"$ne": "skipped"}}},
        {
            "$group": {
                "_id": "$test_id",
                "runs": {"$sum": 1},
                "pass_rate": {"$avg": {"$cond": ["$passed", 1, 0]}},
                "outcomes": {"$push": {"t": "$finished_at", "s": "$status"}},
            }
        },
        {"$match": {"runs": {"$gte": min_runs}, "pass_rate": {"$gt": 0, "$lt": 1}}},
        {"$sort": {"_id": 1}},
    ]


def _metric_pairs() -> dict[str, Any]:
    return {"$objectToArray": {"$ifNull": ["$metrics", {}]}}


def configurations_pipeline(match: Filter) -> Pipeline:
    """Finished runs per `system_info_hash`: counts, mean score, first/last seen, metric means.

    One `$facet` gives the per-configuration totals (`runs`) and the mean of
    each run metric per configuration (`metrics`, over the runs that measured it).
    """
    return [
        {"$match": finished_runs(match)},
        {
            "$facet": {
                "runs": [
                    {
                        "$group": {
                            "_id": "$system_info_hash",
                            "runs": {"$sum": 1},
                            "mean_score": {"$avg": "$score"},
                            "first_seen": {"$min": "$started_at"},
                            "last_seen": {"$max": "$started_at"},
                            # One hash, one snapshot: any run's will do.
                            "snapshot": {"$first": "$system_information"},
                        }
                    },
                    {"$sort": {"_id": 1}},
                ],
                "metrics": [
                    {"$project": {"_id": 0, "hash": "$system_info_hash", "m": _metric_pairs()}},
                    {"$unwind": "$m"},
                    {"$match": {"m.v": {"$type": "number"}}},
                    {
                        "$group": {
                            "_id": {"hash": "$hash", "metric": "$m.k"},
                            "mean": {"$avg": "$m.v"},
                        }
                    },
                    {"$sort": {"_id.hash": 1, "_id.metric": 1}},
                ],
            }
        },
    ]


def config_hash_filter(hash_or_prefix: str) -> Filter:
    """The filter on `system_info_hash` for a full hash or a unique hex prefix of one.

    An anchored prefix `$regex` uses the `system_info_hash` index as a range.

    Raises:
        InvalidDataError: the text is not 1 to 64 lower-case hex digits.
    """
    text = hash_or_prefix.strip().lower()
    if not _HEX.fullmatch(text):
        raise InvalidDataError(
            f"configuration hash must be hex digits (a prefix will do), got {hash_or_prefix!r}"
        )
    if len(text) == 64:
        return {"system_info_hash": text}
    return {"system_info_hash": {"$regex": f"^{text}"}}


def run_id_prefix_filter(prefix: str) -> Filter:
    """The filter on `evaluation_run_id` for the runs whose id starts with `prefix`.

    An anchored prefix `$regex` uses the `evaluation_run_id` index as a range.
    """
    return {"evaluation_run_id": {"$regex": f"^{re.escape(prefix)}"}}


FUTURE_SLACK = timedelta(days=1)
"""How far ahead of now a run may be dated and still be `latest` (clocks differ a little)."""

FINISHED = ("completed", "failed")
"""The statuses of a run that ran to its end, whatever its tests' outcome.

`failed` is a run whose tests (or whose block) failed: exactly what a CI gate
must see. `running` and `interrupted` runs are not finished.
"""


def latest_runs_pipeline(
    branch: str | None = None,
    environment: str | None = None,
    count: int = 2,
    suite: str | None = None,
    not_after: datetime | None = None,
) -> Pipeline:
    """The `count` newest finished runs with tests (of a branch, environment, suite), newest first.

    A run is finished when it is `completed` or `failed` (its tests failed);
    runs still `running`, `interrupted` ones and runs that recorded no test
    are left out. With `not_after`, so are runs dated later (a clock a year ahead
    must not make its run `latest` for a year).
    """
    match: Filter = {"status": {"$in": list(FINISHED)}, "num_tests": {"$gt": 0}}
    if not_after is not None:
        match["started_at"] = {"$lte": not_after}
    if branch:
        match["git_branch"] = branch
    if environment:
        match["environment"] = environment
    if suite:
        match["suite"] = suite
    return [{"$match": match}, {"$sort": {"started_at": -1}}, {"$limit": count}]


def run_tests_pipeline(evaluation_run_oid: ObjectId) -> Pipeline:
    """The outcome, duration and metrics of every test run of one evaluation run (for run
    comparison: `compare --stats` pairs the metric scores and the durations)."""
    return [
        {"$match": {"evaluation_run_id": evaluation_run_oid}},
        {
            "$project": {
                "_id": 0,
                "test_id": 1,
                "status": 1,
                "score": 1,
                "finished_at": 1,
                "message": 1,
                "duration_ms": 1,
                "metrics": 1,
            }
        },
    ]


def experiment_pipeline(match: Filter) -> Pipeline:
    """The values of the run score and of each run metric over the finished runs of `match`.

    Values are pushed so that Python computes the sample standard deviation
    (`$stdDevSamp` is missing on the embedded backend); each facet row holds
    `{_id: name, values: [...]}`.
    """
    return [
        {"$match": finished_runs(match)},
        {
            "$facet": {
                "score": [
                    {"$match": {"score": {"$type": "number"}}},
                    {"$group": {"_id": "score", "values": {"$push": "$score"}}},
                ],
                "metrics": [
                    {"$project": {"_id": 0, "m": _metric_pairs()}},
                    {"$unwind": "$m"},
                    {"$match": {"m.v": {"$type": "number"}}},
                    {"$group": {"_id": "$m.k", "values": {"$push": "$m.v"}}},
                    {"$sort": {"_id": 1}},
                ],
            }
        },
    ]


def old_runs_filter(cutoff: datetime) -> Filter:
    """Evaluation runs started before `cutoff` (retention)."""
    return {"started_at": {"$lt": cutoff}}


def runs_by_oid_filter(oids: Sequence[ObjectId]) -> Filter:
    """Evaluation runs by `_id` (retention deletes exactly the runs it selected)."""
    return {"_id": {"$in": list(oids)}}


def child_test_runs_filter(oids: Sequence[ObjectId]) -> Filter:
    """The test runs of these evaluation runs."""
    return {"evaluation_run_id": {"$in": list(oids)}}


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
