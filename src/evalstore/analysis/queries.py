"""Each history question in both engines' words: a pipeline (`pipelines`) and SQL (`sql`).

The analysis modules ask `History` for the rows of these `Query` objects; the
client runs the side its engine speaks. Adding a question means adding its
pipeline, its SQL and one function here.
"""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId

from evalstore.analysis import pipelines, sql
from evalstore.analysis.pipelines import Filter, Period, TestValue
from evalstore.storage.engine import Query


def run_ids(match: Filter) -> Query:
    """The `_id`s of the evaluation runs matching `match`."""
    return Query("evaluation_runs", pipelines.run_ids_pipeline(match), sql.run_ids(match))


def score_trend(match: Filter) -> Query:
    """Score, passes and tests of each finished run, oldest first."""
    return Query(
        "evaluation_runs",
        pipelines.score_trend_pipeline(match),
        sql.score_trend(pipelines.finished_runs(match)),
    )


def recorded_metrics(match: Filter) -> Query:
    """How many finished runs match, and the metric names they hold."""
    return Query(
        "evaluation_runs",
        pipelines.recorded_metrics_pipeline(match),
        sql.recorded_metrics(pipelines.finished_runs(match)),
    )


def single_test_trend(match: Filter, value: TestValue = "score") -> Query:
    """One test's runs: score (or duration) and outcome, oldest first."""
    return Query(
        "test_runs",
        pipelines.single_test_trend_pipeline(match, value),
        sql.single_test_trend(match, value),
    )


def slowest_tests(match: Filter) -> Query:
    """Per test id, the count, mean, max and last of its executed runs' durations."""
    return Query("test_runs", pipelines.slowest_tests_pipeline(match), sql.slowest_tests(match))


def per_test_stats(match: Filter) -> Query:
    """Per-test statistics over the test runs matching `match`."""
    return Query("test_runs", pipelines.per_test_stats_pipeline(match), sql.per_test_stats(match))


def flaky_tests(match: Filter, min_runs: int) -> Query:
    """Tests with at least `min_runs` executed runs and mixed outcomes, with their outcomes."""
    return Query(
        "test_runs",
        pipelines.flaky_tests_pipeline(match, min_runs),
        sql.flaky_tests(match, min_runs),
    )


def configurations(match: Filter) -> Query:
    """Finished runs per configuration hash, with metric means."""
    return Query(
        "evaluation_runs",
        pipelines.configurations_pipeline(match),
        sql.configurations(pipelines.finished_runs(match)),
    )


def latest_runs(
    branch: str | None = None,
    environment: str | None = None,
    count: int = 2,
    suite: str | None = None,
    not_after: datetime | None = None,
) -> Query:
    """The `count` newest finished runs with tests, newest first (whole documents)."""
    pipeline = pipelines.latest_runs_pipeline(branch, environment, count, suite, not_after)
    match = pipeline[0]["$match"]
    return Query("evaluation_runs", pipeline, sql.documents(match, "started_at DESC, rowid", count))


def run_tests(evaluation_run_oid: ObjectId) -> Query:
    """The outcome of every test run of one evaluation run."""
    return Query(
        "test_runs",
        pipelines.run_tests_pipeline(evaluation_run_oid),
        sql.run_tests(evaluation_run_oid),
    )


def experiment(match: Filter) -> Query:
    """The values of the score and of each metric over the finished runs of `match`."""
    return Query(
        "evaluation_runs",
        pipelines.experiment_pipeline(match),
        sql.experiment(pipelines.finished_runs(match)),
    )


def run_aggregates(evaluation_run_oid: ObjectId) -> Query:
    """The counts, score and metric means of one evaluation run."""
    return Query(
        "test_runs",
        pipelines.run_aggregates_pipeline(evaluation_run_oid),
        sql.run_aggregates(evaluation_run_oid),
    )


def metric_trend(field: str, match: Filter, by: Period = "day") -> Query:
    """The mean of a numeric run field per day or ISO week."""
    return Query(
        "evaluation_runs",
        pipelines.metric_trend_pipeline(field, match, by),
        sql.metric_trend(field, match, by),
    )
