"""Item 8: every analysis query's filter and sort are served by a declared index.

Two checks: each query of the registry (`index_coverage`), built
by the service's own pipeline builders with the filters off and on, against
`INDEXES`; and every read and delete the public analysis methods really send,
recorded on the way to the embedded backend. Both enumerate the public functions
of the analysis modules (each also a method of `MetricsStorageService`), so a new
query without an entry (or without an index) fails here.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import Result, at, git_repo, record_run
from engine_wrappers import WrappedCollections
from index_coverage import (
    QueryShape,
    RegisteredQuery,
    coverage_problems,
    covering_index,
    match_shape,
    pipeline_shape,
    registered_queries,
    sort_index,
)

from evalstore import MetricsStorageService, MongoDBClient
from evalstore.analysis import comparison, configs, experiments, retention, stats, trends
from evalstore.analysis.filters import RunFilters
from evalstore.analysis.pipelines import per_test_stats_pipeline
from evalstore.storage.indexes import EVALUATION_RUNS, INDEXES, TEST_RUNS
from evalstore.storage.sqlite.engine import SqliteEngine

PUBLIC_METHODS = {
    name
    for module in (comparison, configs, experiments, retention, stats, trends)
    for name, member in inspect.getmembers(module, inspect.iscoroutinefunction)
    if not name.startswith("_") and member.__module__ == module.__name__
}
QUERIES = registered_queries()


def test_every_public_analysis_method_is_registered() -> None:
    assert {q.method for q in QUERIES} == PUBLIC_METHODS
    assert len(PUBLIC_METHODS) == 13
    assert all(
        inspect.iscoroutinefunction(getattr(MetricsStorageService, name)) for name in PUBLIC_METHODS
    )


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.method}: {q.label}")
def test_every_registered_query_is_served_by_an_index(query: RegisteredQuery) -> None:
    assert coverage_problems(query.shape) == []


def test_which_index_serves_what() -> None:
    stats = pipeline_shape(TEST_RUNS, per_test_stats_pipeline(RunFilters().test_match()))
    assert covering_index(stats).name == "finished_at"  # type: ignore[union-attr]
    one_test = pipeline_shape(
        TEST_RUNS, per_test_stats_pipeline(RunFilters(test_id="t").test_match())
    )
    # Equality on test_id, then finished_at in the index's (reversed) order.
    assert covering_index(one_test).name == "test_id_finished_at"  # type: ignore[union-attr]
    latest_on_branch = [{"$match": {"status": "completed", "git_branch": "main"}}]
    branch_shape = replace(
        pipeline_shape(EVALUATION_RUNS, latest_on_branch), sort=(("started_at", -1),), limited=True
    )
    assert covering_index(branch_shape).name == "git_branch_started_at"  # type: ignore[union-attr]
    # Without the branch, the started_at index is walked newest first until the limit.
    latest = replace(branch_shape, equality=frozenset({"status"}))
    assert covering_index(latest).name == "started_at"  # type: ignore[union-attr]


def test_the_rules_reject_what_no_index_serves() -> None:
    # Without the finished_at index, statistics over all tests would scan every test run.
    without = [spec for spec in INDEXES if spec.name != "finished_at"]
    stats = pipeline_shape(TEST_RUNS, per_test_stats_pipeline(RunFilters().test_match()))
    assert coverage_problems(stats, without) == [
        "no index on test_runs leads with a field the query filters on (finished_at)"
    ]
    # Filtering with one index and sorting with another is not served either.
    by_status = match_shape(TEST_RUNS, {"status": "failed"}, sort=(("finished_at", 1),))
    assert coverage_problems(by_status) == [
        "no index on test_runs serves both the filter on (status) and the sort {'finished_at': 1}"
    ]
    # A residual condition ($ne, $type) is no seek; nor is a field behind a compound prefix.
    assert coverage_problems(match_shape(TEST_RUNS, {"status": {"$ne": "skipped"}})) != []
    assert coverage_problems(match_shape(TEST_RUNS, {"finished_at": {"$gte": 1}}), without) != []
    # A sort against the index's mixed directions is not served.
    mixed = QueryShape(
        TEST_RUNS, sort=(("test_id", 1), ("finished_at", 1)), ranges=frozenset({"test_id"})
    )
    assert sort_index(mixed) is None
    # $or is covered when every branch is.
    assert (
        coverage_problems(
            match_shape(EVALUATION_RUNS, {"$or": [{"_id": 1}, {"evaluation_run_id": "x"}]})
        )
        == []
    )
    assert (
        coverage_problems(match_shape(EVALUATION_RUNS, {"$or": [{"_id": 1}, {"environment": "x"}]}))
        != []
    )


class RecordingClient(WrappedCollections):
    """The test's database, recording the shape of every read and delete it is sent."""

    shapes: list[QueryShape]

    def wrap(self, name: str, collection: Any) -> Any:
        assert name in {spec.collection for spec in INDEXES}
        return _Recorder(collection, name, self.shapes)


class _Recorder:
    def __init__(self, collection: Any, name: str, shapes: list[QueryShape]) -> None:
        self._collection, self._name, self._shapes = collection, name, shapes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def aggregate(self, pipeline: list[dict[str, Any]], **kwargs: Any) -> Any:
        self._shapes.append(pipeline_shape(self._name, pipeline))
        return self._collection.aggregate(pipeline, **kwargs)

    def find(self, query: Any = None, projection: Any = None, **kwargs: Any) -> Any:
        sort = tuple(tuple(key) for key in kwargs.get("sort") or ())
        self._shapes.append(match_shape(self._name, query or {}, sort, bool(kwargs.get("limit"))))
        return self._collection.find(query, projection, **kwargs)

    async def find_one(self, query: Any = None, *args: Any, **kwargs: Any) -> Any:
        self._shapes.append(match_shape(self._name, query or {}, limited=True))
        return await self._collection.find_one(query, *args, **kwargs)

    async def count_documents(self, query: Any, **kwargs: Any) -> Any:
        self._shapes.append(match_shape(self._name, query))
        return await self._collection.count_documents(query, **kwargs)

    async def distinct(self, key: str, query: Any = None, **kwargs: Any) -> Any:
        self._shapes.append(match_shape(self._name, query or {}))
        return await self._collection.distinct(key, query, **kwargs)

    async def delete_many(self, query: Any, **kwargs: Any) -> Any:
        self._shapes.append(match_shape(self._name, query))
        return await self._collection.delete_many(query, **kwargs)


MARCH = {"since": at(1, 0), "until": at(1, 0, month=4)}
Call = Callable[[MetricsStorageService, dict[str, Any]], Awaitable[Any]]
CALLS: dict[str, list[Call]] = {
    "get_metric_trend": [
        lambda s, h: s.get_metric_trend("wer", **MARCH),
        lambda s, h: s.get_metric_trend("score", "week", branch="main", tags=["x"], **MARCH),
    ],
    "get_score_trend": [
        lambda s, h: s.get_score_trend(),
        lambda s, h: s.get_score_trend(environment="dev", **MARCH),
    ],
    "get_recorded_metrics": [
        lambda s, h: s.get_recorded_metrics(),
        lambda s, h: s.get_recorded_metrics(branch="main", **MARCH),
    ],
    "get_test_trend": [
        lambda s, h: s.get_test_trend("a", **MARCH),
        lambda s, h: s.get_test_trend("a", branch="main", **MARCH),
    ],
    "get_test_stats": [
        lambda s, h: s.get_test_stats(**MARCH),
        lambda s, h: s.get_test_stats(test_id="a", **MARCH),
        lambda s, h: s.get_test_stats(tags=["x"], tags_match="all", **MARCH),
    ],
    "get_flaky_tests": [
        lambda s, h: s.get_flaky_tests(1, **MARCH),
        lambda s, h: s.get_flaky_tests(1, environment="dev", **MARCH),
        lambda s, h: s.get_flaky_tests(1, test_id="a", **MARCH),
    ],
    "get_test_outcomes": [
        lambda s, h: s.get_test_outcomes(1, **MARCH),
        lambda s, h: s.get_test_outcomes(1, branch="main", test_id="a", **MARCH),
    ],
    "get_outcome_changes": [
        lambda s, h: s.get_outcome_changes(1, **MARCH),
        lambda s, h: s.get_outcome_changes(1, environment="dev", **MARCH),
        lambda s, h: s.get_outcome_changes(1, test_id="a", **MARCH),
    ],
    "compare_configurations": [
        lambda s, h: s.compare_configurations(**MARCH),
        lambda s, h: s.compare_configurations(branch="main", **MARCH),
    ],
    "diff_configurations": [
        lambda s, h: s.diff_configurations(h["hash"][:8], h["hash"]),
    ],
    "compare_runs": [
        lambda s, h: s.compare_runs("previous", "latest", branch="main"),
        lambda s, h: s.compare_runs(h["first"], h["second_oid"]),
    ],
    "compare_experiments": [
        lambda s, h: s.compare_experiments(["x"], ["y"], **MARCH),
    ],
    "prune": [
        lambda s, h: s.prune(1, dry_run=True),
        lambda s, h: s.prune(1, batch_size=1),
    ],
}


def test_every_public_analysis_method_is_exercised_below() -> None:
    assert set(CALLS) == PUBLIC_METHODS


async def two_runs(service: MetricsStorageService, tmp_path: Path) -> dict[str, Any]:
    """Two runs of test `a` on main (passed, then failed): what the calls below refer to."""
    main = git_repo(tmp_path / "main", "main")
    first = await record_run(service, at(1), [Result("a", "passed", 80)], tags=["x"], repo=main)
    second = await record_run(service, at(2), [Result("a", "failed", 20)], tags=["y"], repo=main)
    history = {
        "hash": first["system_info_hash"],
        "first": first["evaluation_run_id"],
        "second_oid": str(second["_id"]),
    }
    return history


@pytest.mark.mongodb_only
async def test_what_the_methods_send_is_served_by_an_index(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    history = await two_runs(service, tmp_path)
    client = service.client
    recording = RecordingClient(client.connection_string, client.database_name)
    recording.shapes = []
    recorder_service = MetricsStorageService(recording)
    try:
        for method, calls in CALLS.items():
            for call in calls:
                before = len(recording.shapes)
                await call(recorder_service, history)
                sent = recording.shapes[before:]
                assert sent, f"{method} sent no query"
                for shape in sent:
                    assert coverage_problems(shape) == [], (method, shape)
    finally:
        await recording.close()
    # prune(1) deleted both runs and their tests: the calls above really ran.
    assert await client.count("evaluation_runs", action="count", query={}) == 0
    assert await client.count("test_runs", action="count", query={}) == 0


async def test_the_local_store_reads_test_runs_through_an_index(tmp_path: Path) -> None:
    """The local store's side: no statement the public methods run scans the test_runs table.

    Every SQL statement is captured as SQLite ran it (parameters inlined) and its
    plan asked of SQLite: a `SCAN test_runs` without an index would read every
    test run ever stored.
    """
    client = MongoDBClient(f"file://{tmp_path / 'store'}", "plans")
    service = MetricsStorageService(client)
    history = await two_runs(service, tmp_path)
    engine = client.engine
    assert isinstance(engine, SqliteEngine)
    statements: list[str] = []
    engine._connect().set_trace_callback(statements.append)
    reading: set[str] = set()
    try:
        for method, calls in CALLS.items():
            for call in calls:
                statements.clear()
                await call(service, history)
                for sql in [sql for sql in statements if " test_runs" in sql]:
                    reading.add(method)
                    plan = engine._connect().execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                    details = [row["detail"] for row in plan]
                    scans = [d for d in details if d.startswith("SCAN test_runs")]
                    assert [d for d in scans if "INDEX" not in d] == [], (method, sql, details)
        test_run_methods = {"get_test_stats", "get_flaky_tests", "get_outcome_changes"}
        assert reading >= test_run_methods | {"get_test_trend", "compare_runs", "prune"}
    finally:
        engine._connect().set_trace_callback(None)
        await client.close()
