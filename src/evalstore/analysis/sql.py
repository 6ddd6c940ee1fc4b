"""The local store's side of each history query: SQL returning the pipeline's rows.

Each function here mirrors the pipeline of the same name in `pipelines` and
returns rows of the same shape, so the Python after it (in the analysis
modules) is written once for both engines. `{where}` is the SQL of the query's
`$match` (see `evalstore.storage.sqlite.where`); the heavy part (filtering,
grouping over test runs) is SQL on indexed columns, the rest is plain Python
on the few rows it returns.

Columns hold datetimes as milliseconds and ObjectIds as hex (see
`evalstore.storage.sqlite.schema`); `_date` and `_oid` turn them back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId

from evalstore.analysis.pipelines import PERIOD_FORMATS, TEST_VALUE_FIELDS, Period, TestValue
from evalstore.models import Document
from evalstore.storage.engine import Filter, Select, SqlRows
from evalstore.storage.sqlite.documents import decode_document, decode_value, object_id
from evalstore.storage.sqlite.where import from_ms

_NUMBER = "('integer', 'real')"


def _date(value: int | None) -> datetime | None:
    return None if value is None else from_ms(value)


def _present(row: Mapping[str, Any]) -> Document:
    """A row without its NULL fields, as a `$project` leaves out missing ones."""
    return {key: value for key, value in row.items() if value is not None}


def run_ids(match: Filter) -> SqlRows:
    """`run_ids_pipeline`: the `_id`s of the matching evaluation runs."""

    def rows(select: Select) -> list[Document]:
        found = select("SELECT _id FROM evaluation_runs WHERE {where}", match)
        return [{"_id": object_id(row["_id"])} for row in found]

    return rows


def documents(match: Filter, order: str, limit: int) -> SqlRows:
    """Whole run documents matching `match`, in `order` (an SQL ORDER BY list), at most `limit`."""

    def rows(select: Select) -> list[Document]:
        found = select(
            f"SELECT doc FROM evaluation_runs WHERE {{where}} ORDER BY {order} LIMIT :limit",
            match,
            limit=limit,
        )
        return [decode_document(row["doc"]) for row in found]

    return rows


def score_trend(match: Filter) -> SqlRows:
    """`score_trend_pipeline`: score, passes and tests of each run, oldest first."""

    def rows(select: Select) -> list[Document]:
        found = select(
            "SELECT evaluation_run_id, started_at, status, score, "
            "doc ->> '$.num_passed' AS num_passed, doc ->> '$.num_tests' AS num_tests "
            "FROM evaluation_runs WHERE {where} ORDER BY started_at, rowid",
            match,
        )
        return [
            _present({**row, "started_at": _date(row["started_at"])}) | {"score": row["score"]}
            for row in found
        ]

    return rows


def recorded_metrics(match: Filter) -> SqlRows:
    """`recorded_metrics_pipeline`: the number of runs and their metric names."""

    def rows(select: Select) -> list[Document]:
        [counted] = select("SELECT count(*) AS n FROM evaluation_runs WHERE {where}", match)
        names = select(
            "SELECT DISTINCT m.key AS name FROM evaluation_runs, "
            "json_each(evaluation_runs.doc, '$.metrics') AS m "
            "WHERE {where} AND json_type(evaluation_runs.doc, '$.metrics') = 'object' "
            "ORDER BY m.key",
            match,
        )
        return [
            {
                "runs": [{"n": counted["n"]}] if counted["n"] else [],
                "metrics": [{"_id": row["name"]} for row in names],
            }
        ]

    return rows


def single_test_trend(match: Filter, value: TestValue = "score") -> SqlRows:
    """`single_test_trend_pipeline`: one test's runs, oldest first (score or duration)."""
    decode: Callable[[Any, Any], Any] = _same
    column, raw = "score", "NULL"
    if value == "duration":
        # The column holds the finite numbers; any other stored value (a string, NaN) is
        # returned as stored, decoded from `doc`, as the pipeline returns it.
        column, decode = "duration_ms", _or_decoded
        raw = "CASE WHEN duration_ms IS NULL THEN doc -> '$.duration_ms' END"
    field = TEST_VALUE_FIELDS[value]

    def rows(select: Select) -> list[Document]:
        found = select(
            f"SELECT test_run_id, finished_at, {column} AS value, {raw} AS raw, passed, status "
            "FROM test_runs WHERE {where} ORDER BY finished_at, rowid",
            match,
        )
        return [
            {
                "test_run_id": row["test_run_id"],
                "finished_at": _date(row["finished_at"]),
                field: decode(row["value"], row["raw"]),
                "passed": None if row["passed"] is None else bool(row["passed"]),
                "status": row["status"],
            }
            for row in found
        ]

    return rows


def _same(value: Any, raw: Any) -> Any:
    return value


def _or_decoded(value: Any, raw: str | None) -> Any:
    return value if value is not None else decode_value(raw)


def slowest_tests(match: Filter) -> SqlRows:
    """`slowest_tests_pipeline`: per test id, count, mean, max and last of its durations.

    Over the executed runs with a numeric `duration_ms` (the column: NULL when the
    document's is no number). The last duration is that of the latest `finished_at`
    (of runs finished at the same time, the last stored, as the embedded backend's
    stable sort gives), looked up per test. Everything read is in the
    `test_id_finished_at` index: the query scans the index alone, no `doc`.
    """
    executed = {**match, "status": {"$ne": "skipped"}}

    def rows(select: Select) -> list[Document]:
        found = select(
            "SELECT g.*, (SELECT t.duration_ms FROM test_runs AS t "
            "  WHERE t.test_id = g._id AND t.finished_at IS g.last_seen AND {where} "
            "  AND t.duration_ms IS NOT NULL "
            "  ORDER BY t.rowid DESC LIMIT 1) AS last_ms "
            "FROM (SELECT test_id AS _id, count(*) AS runs, avg(duration_ms) AS mean_ms, "
            "  max(duration_ms) AS max_ms, max(finished_at) AS last_seen "
            "  FROM test_runs WHERE {where} AND duration_ms IS NOT NULL "
            "  GROUP BY test_id) AS g "
            "ORDER BY g._id",
            executed,
        )
        return [{**row, "last_seen": _date(row["last_seen"])} for row in found]

    return rows


def per_test_stats(match: Filter) -> SqlRows:
    """`per_test_stats_pipeline`: per test id, counts, scores, pass rate, last status.

    The last status is that of the latest `finished_at` (of runs finished at the
    same time, the last stored, as the embedded backend's stable sort gives),
    looked up per test through the `test_id_finished_at` index.
    """

    def rows(select: Select) -> list[Document]:
        found = select(
            "SELECT g.*, (SELECT t.status FROM test_runs AS t "
            "  WHERE t.test_id = g._id AND t.finished_at IS g.last_seen AND {where} "
            "  ORDER BY t.rowid DESC LIMIT 1) AS last_status "
            "FROM (SELECT test_id AS _id, count(*) AS runs, "
            "  sum(CASE WHEN passed THEN 1 ELSE 0 END) AS passed, "
            "  avg(score) AS mean_score, min(score) AS min_score, max(score) AS max_score, "
            "  avg(CASE WHEN status = 'skipped' THEN NULL WHEN passed THEN 1.0 ELSE 0.0 END) "
            "    AS pass_rate, "
            "  max(finished_at) AS last_seen "
            "  FROM test_runs WHERE {where} GROUP BY test_id) AS g "
            "ORDER BY g._id",
            match,
        )
        return [{**row, "last_seen": _date(row["last_seen"])} for row in found]

    return rows


def flaky_tests(match: Filter, min_runs: int) -> SqlRows:
    """`flaky_tests_pipeline`: tests with enough executed runs and mixed outcomes, with them.

    One pass over the `test_id_finished_at` index groups each test's outcomes into
    a JSON array (time, status, row), so only the mixed tests come back, one row
    each; Python puts each test's outcomes in time order (ties in the order stored,
    as the embedded backend's `$push` gives them).
    """
    executed = {**match, "status": {"$ne": "skipped"}}

    def rows(select: Select) -> list[Document]:
        found = select(
            "SELECT test_id, count(*) AS runs, "
            "sum(CASE WHEN passed THEN 1 ELSE 0 END) AS passes, "
            "json_group_array(json_array(finished_at, status, rowid)) AS outcomes "
            "FROM test_runs WHERE {where} GROUP BY test_id "
            "HAVING count(*) >= :min_runs AND passes BETWEEN 1 AND count(*) - 1 "
            "ORDER BY test_id",
            executed,
            min_runs=min_runs,
        )
        result = []
        for row in found:
            outcomes = sorted(json.loads(row["outcomes"]), key=lambda o: (o[0], o[2]))
            result.append(
                {
                    "_id": row["test_id"],
                    "runs": row["runs"],
                    "pass_rate": row["passes"] / row["runs"],
                    "outcomes": [{"t": _date(time), "s": status} for time, status, _ in outcomes],
                }
            )
        return result

    return rows


def configurations(match: Filter) -> SqlRows:
    """`configurations_pipeline`: per configuration hash, counts, score, dates, metric means."""

    def rows(select: Select) -> list[Document]:
        runs = select(
            "SELECT g.*, (SELECT r.doc -> '$.system_information' FROM evaluation_runs AS r "
            "  WHERE r.system_info_hash IS g._id AND {where} LIMIT 1) AS snapshot "
            "FROM (SELECT system_info_hash AS _id, count(*) AS runs, avg(score) AS mean_score, "
            "  min(started_at) AS first_seen, max(started_at) AS last_seen "
            "  FROM evaluation_runs WHERE {where} GROUP BY system_info_hash) AS g "
            "ORDER BY g._id",
            match,
        )
        means = select(
            "SELECT evaluation_runs.system_info_hash AS hash, m.key AS metric, "
            "avg(m.value) AS mean FROM evaluation_runs, "
            "json_each(evaluation_runs.doc, '$.metrics') AS m "
            f"WHERE {{where}} AND json_type(evaluation_runs.doc, '$.metrics') = 'object' "
            f"AND m.type IN {_NUMBER} GROUP BY hash, metric ORDER BY hash, metric",
            match,
        )
        return [
            {
                "runs": [
                    {
                        **row,
                        "first_seen": _date(row["first_seen"]),
                        "last_seen": _date(row["last_seen"]),
                        "snapshot": decode_value(row["snapshot"]),
                    }
                    for row in runs
                ],
                "metrics": [
                    {"_id": {"hash": row["hash"], "metric": row["metric"]}, "mean": row["mean"]}
                    for row in means
                ],
            }
        ]

    return rows


def run_tests(evaluation_run_oid: ObjectId) -> SqlRows:
    """`run_tests_pipeline`: the outcome, duration and metrics of every test run of one run."""
    match = {"evaluation_run_id": evaluation_run_oid}

    def rows(select: Select) -> list[Document]:
        found = select(
            "SELECT test_id, status, score, finished_at, doc -> '$.message' AS message, "
            "doc -> '$.duration_ms' AS duration_ms, doc -> '$.metrics' AS metrics "
            "FROM test_runs WHERE {where} ORDER BY rowid",
            match,
        )
        return [
            _present(
                {
                    **row,
                    "finished_at": _date(row["finished_at"]),
                    "message": decode_value(row["message"]),
                    "duration_ms": decode_value(row["duration_ms"]),
                    "metrics": decode_value(row["metrics"]),
                }
            )
            for row in found
        ]

    return rows


def experiment(match: Filter) -> SqlRows:
    """`experiment_pipeline`: the values of the run score and of each run metric."""

    def rows(select: Select) -> list[Document]:
        scores = select(
            "SELECT score FROM evaluation_runs WHERE {where} AND score IS NOT NULL ORDER BY rowid",
            match,
        )
        metrics = select(
            "SELECT m.key AS name, m.value AS value FROM evaluation_runs, "
            "json_each(evaluation_runs.doc, '$.metrics') AS m "
            f"WHERE {{where}} AND json_type(evaluation_runs.doc, '$.metrics') = 'object' "
            f"AND m.type IN {_NUMBER} ORDER BY m.key, evaluation_runs.rowid",
            match,
        )
        values: dict[str, list[float]] = {}
        for row in metrics:
            values.setdefault(row["name"], []).append(row["value"])
        return [
            {
                "score": (
                    [{"_id": "score", "values": [row["score"] for row in scores]}] if scores else []
                ),
                "metrics": [{"_id": name, "values": found} for name, found in values.items()],
            }
        ]

    return rows


def run_aggregates(evaluation_run_oid: ObjectId) -> SqlRows:
    """`run_aggregates_pipeline`: tests per status, run score and metric means of one run."""
    match = {"evaluation_run_id": evaluation_run_oid}

    def rows(select: Select) -> list[Document]:
        counts = select(
            "SELECT status AS _id, count(*) AS tests FROM test_runs WHERE {where} "
            "GROUP BY status ORDER BY status",
            match,
        )
        [score] = select(
            "SELECT count(*) AS n, avg(score) AS score FROM test_runs WHERE {where}", match
        )
        means = select(
            "SELECT m.key AS _id, avg(CASE WHEN m.type = 'object' "
            f"AND json_type(m.value, '$.score') IN {_NUMBER} "
            "THEN m.value ->> '$.score' END) AS mean "
            "FROM test_runs, json_each(test_runs.doc, '$.metrics') AS m "
            "WHERE {where} AND json_type(test_runs.doc, '$.metrics') = 'object' "
            "GROUP BY m.key ORDER BY m.key",
            match,
        )
        return [
            {
                "counts": counts,
                "score": [{"_id": None, "score": score["score"]}] if score["n"] else [],
                "means": means,
            }
        ]

    return rows


def metric_trend(field: str, match: Filter, by: Period) -> SqlRows:
    """`metric_trend_pipeline`: the mean of a numeric run field per day or ISO week.

    The local store's runs are few (one per suite execution), so SQL selects the
    runs that measured the field and Python groups them by period, with the
    format `$dateToString` uses.
    """
    if field == "score":
        value, params = "score", {}
    else:
        value = (
            "(SELECT m.value FROM json_each(evaluation_runs.doc, '$.metrics') AS m "
            f"WHERE m.key = :metric AND m.type IN {_NUMBER})"
        )
        params = {"metric": field.removeprefix("metrics.")}
    period_format = PERIOD_FORMATS[by]

    def rows(select: Select) -> list[Document]:
        found = select(
            f"SELECT started_at, value FROM (SELECT started_at, {value} AS value "
            "FROM evaluation_runs WHERE {where}) WHERE value IS NOT NULL",
            match,
            **params,
        )
        totals: dict[str, list[float]] = {}
        for row in found:
            started = _date(row["started_at"])
            period = None if started is None else started.strftime(period_format)
            totals.setdefault(period, []).append(row["value"])  # type: ignore[arg-type]
        return [
            {"_id": period, "mean": sum(values) / len(values), "runs": len(values)}
            for period, values in sorted(
                totals.items(), key=lambda item: (item[0] is not None, item[0] or "")
            )
        ]

    return rows
