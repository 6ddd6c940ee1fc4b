"""Which index serves each analysis query: the query registry and the coverage rules.

`registered_queries()` lists, for every public analysis method, the pipelines
(or find/delete filters, written as a one-stage `$match` pipeline) it runs,
built by the same functions the service calls, with the filters off and on.
The test suite checks each against `INDEXES` and checks that every public
method of `AnalysisQueries` is registered, so a new query without an index
(or without an entry here) fails the suite.

The rules, a simplification of MongoDB's query planner:

* **filter**: a query is covered when the leading key of some index on its
  collection is one of the equality, `$in` or range fields of its first
  `$match` (the implicit `_id` index counts); for `$or`, when every branch is
  covered; a query that has a `$limit` right after an index-served `$sort`
  is covered too (the index is walked in order until the limit is reached).
* **sort**: a `$sort` right after the first `$match` is covered when the
  same index, after dropping its leading keys that the match fixes by
  equality, starts with the sort's keys, in order, all in the index's
  direction or all reversed (a query uses one index: filtering with one and
  sorting with another means a full scan or an in-memory sort). A `$sort`
  after `$group` sorts the grouped rows and needs none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from bson import ObjectId

from evalstore.analysis.filters import RunFilters
from evalstore.analysis.pipelines import (
    Pipeline,
    child_test_runs_filter,
    config_hash_filter,
    configurations_pipeline,
    experiment_pipeline,
    flaky_tests_pipeline,
    latest_runs_pipeline,
    metric_trend_pipeline,
    old_runs_filter,
    per_test_stats_pipeline,
    recorded_metrics_pipeline,
    run_id_prefix_filter,
    run_ids_pipeline,
    run_tests_pipeline,
    runs_by_oid_filter,
    score_trend_pipeline,
    single_test_trend_pipeline,
)
from evalstore.storage.indexes import EVALUATION_RUNS, INDEXES, TEST_RUNS, IndexSpec

Sort = tuple[tuple[str, int], ...]
_RANGE_OPERATORS = frozenset({"$gt", "$gte", "$lt", "$lte"})


@dataclass(frozen=True)
class QueryShape:
    """What an index can serve in a query: its filter fields by kind, its sort, its limit."""

    collection: str
    equality: frozenset[str] = frozenset()
    points: frozenset[str] = frozenset()
    ranges: frozenset[str] = frozenset()
    branches: tuple[QueryShape, ...] = ()
    sort: Sort = ()
    limited: bool = False

    @property
    def filter_fields(self) -> frozenset[str]:
        """The fields an index can seek on: equality, `$in` and range conditions."""
        return self.equality | self.points | self.ranges


def _is_anchored_regex(condition: Mapping[str, Any]) -> bool:
    pattern = condition.get("$regex")
    return isinstance(pattern, str) and pattern.startswith("^") and "$options" not in condition


def match_shape(
    collection: str, match: Mapping[str, Any], sort: Sort = (), limited: bool = False
) -> QueryShape:
    """The shape of a find-style filter (also the first `$match` of a pipeline)."""
    equality: set[str] = set()
    points: set[str] = set()
    ranges: set[str] = set()
    branches: list[QueryShape] = []
    for name, condition in match.items():
        if name == "$or":
            branches = [match_shape(collection, branch) for branch in condition]
        elif name.startswith("$"):
            continue  # $and/$expr/...: not used by evalstore's queries, so never counted
        elif isinstance(condition, Mapping) and any(key.startswith("$") for key in condition):
            if _RANGE_OPERATORS & condition.keys() or _is_anchored_regex(condition):
                ranges.add(name)
            elif "$in" in condition or "$all" in condition:
                points.add(name)
            # $type, $ne, $nin, $exists, ...: filtered after the index seek
        else:
            equality.add(name)
    return QueryShape(
        collection,
        frozenset(equality),
        frozenset(points),
        frozenset(ranges),
        tuple(branches),
        sort,
        limited,
    )


def pipeline_shape(collection: str, pipeline: Pipeline) -> QueryShape:
    """The shape of a pipeline: its first `$match`, a `$sort` and a `$limit` right after it."""
    if not pipeline or "$match" not in pipeline[0]:
        return QueryShape(collection)  # a pipeline not starting with $match reads everything
    sort: Sort = ()
    position = 1
    if len(pipeline) > position and "$sort" in pipeline[position]:
        sort = tuple((str(k), int(v)) for k, v in pipeline[position]["$sort"].items())
        position += 1
    limited = len(pipeline) > position and "$limit" in pipeline[position]
    return match_shape(collection, pipeline[0]["$match"], sort, limited)


def indexes_on(collection: str, indexes: Iterable[IndexSpec] = INDEXES) -> list[IndexSpec]:
    """The declared indexes of `collection`, plus MongoDB's implicit unique `_id` index."""
    return [IndexSpec(collection, "_id_", (("_id", 1),), unique=True)] + [
        spec for spec in indexes if spec.collection == collection
    ]


def serves_sort(spec: IndexSpec, shape: QueryShape) -> bool:
    """True when `spec` returns the query's documents already in its sort order."""
    if not shape.sort:
        return False
    keys = list(spec.keys)
    while keys and keys[0][0] in shape.equality:
        keys.pop(0)
    if [name for name, _ in keys[: len(shape.sort)]] != [name for name, _ in shape.sort]:
        return False
    same = [d == wanted for (_, d), (_, wanted) in zip(keys, shape.sort, strict=False)]
    return all(same) or not any(same)


def sort_index(shape: QueryShape, indexes: Iterable[IndexSpec] = INDEXES) -> IndexSpec | None:
    """An index that returns the query's documents already in its sort order, if any."""
    return next((s for s in indexes_on(shape.collection, indexes) if serves_sort(s, shape)), None)


def filter_index(shape: QueryShape, indexes: Iterable[IndexSpec] = INDEXES) -> IndexSpec | None:
    """An index whose leading key is one of the query's filter fields, if any."""
    for spec in indexes_on(shape.collection, indexes):
        if spec.keys[0][0] in shape.filter_fields:
            return spec
    return None


def covering_index(shape: QueryShape, indexes: Iterable[IndexSpec] = INDEXES) -> IndexSpec | None:
    """The index that serves both the query's filter and its sort (a query uses one index).

    An index that seeks on a filter field is preferred to one walked in sort
    order until the `$limit`.
    """
    candidates = indexes_on(shape.collection, indexes)
    for spec in candidates:
        if spec.keys[0][0] in shape.filter_fields and (not shape.sort or serves_sort(spec, shape)):
            return spec
    if shape.limited:
        return next((spec for spec in candidates if serves_sort(spec, shape)), None)
    return None


def coverage_problems(shape: QueryShape, indexes: Iterable[IndexSpec] = INDEXES) -> list[str]:
    """Why the query is not served by the indexes (empty when it is)."""
    indexes = tuple(indexes)
    if covering_index(shape, indexes) is not None:
        return []
    if (
        shape.branches
        and not shape.sort
        and all(not coverage_problems(branch, indexes) for branch in shape.branches)
    ):
        return []
    fields = ", ".join(sorted(shape.filter_fields)) or "nothing"
    if filter_index(shape, indexes) is None and not (shape.limited and sort_index(shape, indexes)):
        return [
            f"no index on {shape.collection} leads with a field the query filters on ({fields})"
        ]
    return [
        f"no index on {shape.collection} serves both the filter on ({fields}) "
        f"and the sort {dict(shape.sort)}"
    ]


@dataclass(frozen=True)
class RegisteredQuery:
    """One query an analysis method runs, with example arguments."""

    method: str
    collection: str
    label: str
    pipeline: Pipeline = field(default_factory=list)

    @property
    def shape(self) -> QueryShape:
        """The query's shape, for the coverage rules."""
        return pipeline_shape(self.collection, self.pipeline)


_NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
_OID = ObjectId("000000000000000000000000")
_WINDOWS: dict[str, RunFilters] = {
    "default window": RunFilters(),
    "since/until": RunFilters(since=datetime(2025, 5, 1), until=datetime(2025, 5, 15)),
}
_RUN_FILTERS: dict[str, RunFilters] = {
    "environment": RunFilters(environment="prod"),
    "branch": RunFilters(branch="main"),
    "tags any": RunFilters(tags=("baseline",)),
    "tags all + everything": RunFilters(
        since=datetime(2025, 5, 1),
        environment="prod",
        branch="main",
        tags=("baseline", "x"),
        tags_match="all",
    ),
}


def _run_queries(method: str, build: Any, note: str = "") -> list[RegisteredQuery]:
    return [
        RegisteredQuery(method, EVALUATION_RUNS, note + label, build(filters.match(now=_NOW)))
        for label, filters in {**_WINDOWS, **_RUN_FILTERS}.items()
    ]


def _test_queries(
    method: str, build: Any, test_ids: Sequence[str | None] = (None,)
) -> list[RegisteredQuery]:
    queries: list[RegisteredQuery] = []
    for test_id in test_ids:
        for label, base in {**_WINDOWS, **_RUN_FILTERS}.items():
            filters = replace(base, test_id=test_id)
            named = f"{label}, test {test_id}" if test_id else label
            oids = [_OID] if filters.selects_runs else None
            queries.append(
                RegisteredQuery(method, TEST_RUNS, named, build(filters.test_match(oids, now=_NOW)))
            )
            if filters.selects_runs:
                queries.append(
                    RegisteredQuery(
                        method,
                        EVALUATION_RUNS,
                        f"{named}: run lookup",
                        run_ids_pipeline(filters.run_lookup_match(now=_NOW)),
                    )
                )
    return queries


def registered_queries() -> list[RegisteredQuery]:
    """Every query the analysis methods run, with the filters off and on."""
    queries: list[RegisteredQuery] = []
    for metric in ("score", "metrics.wer"):
        queries += _run_queries(
            "get_metric_trend",
            lambda match, metric=metric: metric_trend_pipeline(metric, match, "week"),
            f"{metric}: ",
        )
    queries += _run_queries("get_score_trend", score_trend_pipeline)
    queries += _run_queries("get_recorded_metrics", recorded_metrics_pipeline)
    queries += _test_queries("get_test_trend", single_test_trend_pipeline, ["t1"])
    queries += _test_queries("get_test_stats", per_test_stats_pipeline, [None, "t1"])
    for method in ("get_flaky_tests", "get_outcome_changes", "get_test_outcomes"):
        queries += _test_queries(method, lambda match: flaky_tests_pipeline(match, 5), [None, "t1"])
    queries += _run_queries("compare_configurations", configurations_pipeline)
    queries += [
        RegisteredQuery(
            "diff_configurations", EVALUATION_RUNS, label, [{"$match": config_hash_filter(text)}]
        )
        for label, text in (("prefix", "3f9a1c"), ("full hash", "ab" * 32))
    ]
    queries += [
        RegisteredQuery("compare_runs", EVALUATION_RUNS, "latest", latest_runs_pipeline()),
        RegisteredQuery(
            "compare_runs", EVALUATION_RUNS, "latest on a branch", latest_runs_pipeline("main")
        ),
        RegisteredQuery(
            "compare_runs",
            EVALUATION_RUNS,
            "a run by id or ObjectId hex (get_evaluation_run)",
            [{"$match": {"$or": [{"_id": _OID}, {"evaluation_run_id": str(_OID)}]}}],
        ),
        RegisteredQuery(
            "compare_runs",
            EVALUATION_RUNS,
            "a run by a prefix of its id",
            [{"$match": run_id_prefix_filter("2025-03-01T10")}],
        ),
        RegisteredQuery("compare_runs", TEST_RUNS, "tests of a run", run_tests_pipeline(_OID)),
    ]
    queries += [  # is a newly failing test known flaky: the 30 days up to the head's last test
        RegisteredQuery(
            "compare_runs",
            TEST_RUNS,
            f"known flaky, test {test_id}",
            flaky_tests_pipeline(
                RunFilters(until=_NOW, window_days=30, test_id=test_id).test_match(now=_NOW), 5
            ),
        )
        for test_id in (None, "t1")
    ]
    queries += _run_queries("compare_experiments", experiment_pipeline)
    queries += [
        RegisteredQuery(
            "prune",
            EVALUATION_RUNS,
            "old runs (a batch)",
            [{"$match": old_runs_filter(_NOW)}, {"$limit": 500}],
        ),
        RegisteredQuery(
            "prune", TEST_RUNS, "their test runs", [{"$match": child_test_runs_filter([_OID])}]
        ),
        RegisteredQuery(
            "prune", EVALUATION_RUNS, "the runs", [{"$match": runs_by_oid_filter([_OID])}]
        ),
    ]
    return queries
