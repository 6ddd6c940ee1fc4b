"""Metric series (issue 14): a run's points read back, downsampled, summarised; one metric
across runs.

Points live in `metric_points`, one per (run, metric, split, step). Each question is a
`Query` in both engines' words (a pipeline for MongoDB, SQL for the local store); the
Python after them is shared.

Downsampling happens on the server. A series of more than `max_points` points has its
step range `[first_step, last_step]` cut into `max_points // 2` equal buckets; in each
bucket the point with the lowest value and the point with the highest value are kept,
with their real steps (the earliest step on ties). So at most `max_points` points come
back, a single spike survives, and the global min and max are always among them.

Queries (each on one run, `evaluation_run_id` being its ObjectId):

- `series_ranges`: per (metric, split): points, first and last step.
- `series_points`: the points of some series, in step order (no downsampling).
- `series_buckets`: per bucket of the downsampled series: its min and max points.
- `summary_stats` and `summary_extremes`: count, steps, last, mean, min, max, and the
  earliest steps reaching min and max (a second, indexed read of the few points equal to
  them, so no point list is ever grouped in memory).
- `runs_with_metric`: the newest finished runs whose summary (`series` on the run
  document, written when the run is finalised) holds a metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bson import ObjectId

from evalstore.analysis.base import History
from evalstore.analysis.pipelines import FINISHED
from evalstore.errors import InvalidDataError
from evalstore.models import Document, check_positive_int, check_text
from evalstore.storage.engine import Filter, Pipeline, Query, Select, SqlRows
from evalstore.storage.sqlite.documents import object_id
from evalstore.storage.sqlite.where import from_ms

BestMode = Literal["min", "max"]
DEFAULT_MAX_POINTS = 500
MIN_MAX_POINTS = 2
"""Downsampling keeps two points (min and max) per bucket: fewer than 2 leaves no bucket."""
SUMMARY_FIELDS = (
    "count",
    "first_step",
    "last_step",
    "last",
    "mean",
    "min",
    "min_step",
    "max",
    "max_step",
)
"""The fields of a summary row after `metric` and `split`, in order (the run's `series`)."""


@dataclass(frozen=True)
class SeriesRange:
    """One series of a run: how many points, and its step range."""

    metric: str
    split: str
    total: int
    first_step: int
    last_step: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.metric, self.split)

    @property
    def span(self) -> int:
        return self.last_step - self.first_step + 1


# -- arguments ----------------------------------------------------------------------------


def check_metrics(metrics: Sequence[str] | str | None) -> list[str] | None:
    """Metric names as a sorted list without repeats (a bare string is one), or None for all."""
    if metrics is None:
        return None
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    return sorted({check_text(name, "metric") for name in names})


def check_split(split: str | None) -> str | None:
    """A split name, or None for every split."""
    return None if split is None else check_text(split, "split")


def check_max_points(max_points: int | None) -> int | None:
    """None (every point), or an int of at least `MIN_MAX_POINTS`."""
    if max_points is None:
        return None
    if isinstance(max_points, bool) or not isinstance(max_points, int):
        raise InvalidDataError(f"max_points must be an integer or None, got {max_points!r}")
    if max_points < MIN_MAX_POINTS:
        raise InvalidDataError(
            f"max_points must be at least {MIN_MAX_POINTS} (a min and a max per bucket), "
            f"got {max_points}; None returns every point"
        )
    return max_points


def check_mode(mode: str) -> BestMode:
    if mode == "min":
        return "min"
    if mode == "max":
        return "max"
    raise InvalidDataError(f"mode must be 'min' or 'max', got {mode!r}")


def points_match(
    run_oid: ObjectId, metrics: Sequence[str] | None = None, split: str | None = None
) -> Filter:
    """The points of one run, of some metrics (all when None), of one split (all when None)."""
    match: dict[str, Any] = {"evaluation_run_id": run_oid}
    if metrics is not None:
        match["metric"] = metrics[0] if len(metrics) == 1 else {"$in": list(metrics)}
    if split is not None:
        match["split"] = split
    return match


def ranges_match(run_oid: ObjectId, ranges: Sequence[SeriesRange]) -> Filter:
    """The points of exactly these series, within the step ranges they were read with.

    Bounding the steps keeps a live run's points logged after `series_ranges` out of
    the buckets, so a bucket index never exceeds its count.
    """
    return {
        "evaluation_run_id": run_oid,
        "$or": [
            {
                "metric": r.metric,
                "split": r.split,
                "step": {"$gte": r.first_step, "$lte": r.last_step},
            }
            for r in ranges
        ],
    }


# -- series_ranges --------------------------------------------------------------------------


def series_ranges_pipeline(match: Filter) -> Pipeline:
    """Per (metric, split) of the matching points: their count, first and last step."""
    return [
        {"$match": dict(match)},
        {
            "$group": {
                "_id": {"metric": "$metric", "split": "$split"},
                "total": {"$sum": 1},
                "first_step": {"$min": "$step"},
                "last_step": {"$max": "$step"},
            }
        },
        {
            "$project": {
                "_id": 0,
                "metric": "$_id.metric",
                "split": "$_id.split",
                "total": 1,
                "first_step": 1,
                "last_step": 1,
            }
        },
        {"$sort": {"metric": 1, "split": 1}},
    ]


def series_ranges_sql(match: Filter) -> SqlRows:
    """`series_ranges_pipeline` in SQL (the table is clustered on run, metric, split, step)."""

    def rows(select: Select) -> list[Document]:
        return select(
            "SELECT metric, split, count(*) AS total, min(step) AS first_step, "
            "max(step) AS last_step FROM metric_points WHERE {where} "
            "GROUP BY metric, split ORDER BY metric, split",
            match,
        )

    return rows


def series_ranges(match: Filter) -> Query:
    """Per series of the matching points: total, first and last step."""
    return Query("metric_points", series_ranges_pipeline(match), series_ranges_sql(match))


# -- series_points --------------------------------------------------------------------------


def series_points_pipeline(match: Filter) -> Pipeline:
    """The matching points (metric, split, step, value) in series and step order."""
    return [
        {"$match": dict(match)},
        {"$sort": {"metric": 1, "split": 1, "step": 1}},
        {"$project": {"_id": 0, "metric": 1, "split": 1, "step": 1, "value": 1}},
    ]


def series_points_sql(match: Filter) -> SqlRows:
    """`series_points_pipeline` in SQL."""

    def rows(select: Select) -> list[Document]:
        return select(
            "SELECT metric, split, step, value FROM metric_points WHERE {where} "
            "ORDER BY metric, split, step",
            match,
        )

    return rows


def series_points(match: Filter) -> Query:
    """The matching points in step order."""
    return Query("metric_points", series_points_pipeline(match), series_points_sql(match))


# -- series_buckets -------------------------------------------------------------------------


def _bucket_expression(ranges: Sequence[SeriesRange], max_points: int) -> Any:
    """`floor((step - first_step) * buckets / span)` with each series' own range."""

    def of(r: SeriesRange) -> Any:
        scaled = {"$multiply": [{"$subtract": ["$step", r.first_step]}, max_points // 2]}
        return {"$floor": {"$divide": [scaled, r.span]}}

    if len(ranges) == 1:
        return of(ranges[0])
    return {
        "$switch": {
            "branches": [
                {
                    "case": {
                        "$and": [{"$eq": ["$metric", r.metric]}, {"$eq": ["$split", r.split]}]
                    },
                    "then": of(r),
                }
                for r in ranges
            ],
            "default": -1,  # unreachable: the $match selects these series only
        }
    }


def _first_equal(field: str) -> Any:
    """The first pushed point (earliest step) whose value equals the group's `field`."""
    return {
        "$arrayElemAt": [
            {
                "$filter": {
                    "input": "$points",
                    "as": "point",
                    "cond": {"$eq": ["$$point.value", f"${field}"]},
                }
            },
            0,
        ]
    }


def series_buckets_pipeline(
    run_oid: ObjectId, ranges: Sequence[SeriesRange], max_points: int
) -> Pipeline:
    """Per bucket of each series: its lowest and its highest point, earliest step on ties.

    Sorted by step before `$group`, so `$push` keeps step order and the first point
    equal to the bucket's min (max) is the earliest.
    """
    return [
        {"$match": ranges_match(run_oid, ranges)},
        {"$sort": {"metric": 1, "split": 1, "step": 1}},
        {
            "$group": {
                "_id": {
                    "metric": "$metric",
                    "split": "$split",
                    "bucket": _bucket_expression(ranges, max_points),
                },
                "low": {"$min": "$value"},
                "high": {"$max": "$value"},
                "points": {"$push": {"step": "$step", "value": "$value"}},
            }
        },
        {
            "$project": {
                "_id": 0,
                "metric": "$_id.metric",
                "split": "$_id.split",
                "low": _first_equal("low"),
                "high": _first_equal("high"),
            }
        },
    ]


def series_buckets_sql(
    run_oid: ObjectId, ranges: Sequence[SeriesRange], max_points: int
) -> SqlRows:
    """`series_buckets_pipeline` in SQL: window functions rank each bucket's points by value."""
    params: dict[str, Any] = {}
    cases = []
    for index, r in enumerate(ranges):
        params.update(
            {
                f"m{index}": r.metric,
                f"s{index}": r.split,
                f"lo{index}": r.first_step,
                f"n{index}": max_points // 2,
                f"span{index}": r.span,
            }
        )
        cases.append(
            f"WHEN metric = :m{index} AND split = :s{index} "
            f"THEN ((step - :lo{index}) * :n{index}) / :span{index}"
        )
    bucket = f"CASE {' '.join(cases)} ELSE -1 END"
    window = "PARTITION BY metric, split, bucket"
    sql = (
        f"WITH b AS (SELECT metric, split, step, value, {bucket} AS bucket "
        "FROM metric_points WHERE {where}), "
        "r AS (SELECT metric, split, bucket, step, value, "
        f"row_number() OVER ({window} ORDER BY value, step) AS low_rank, "
        f"row_number() OVER ({window} ORDER BY value DESC, step) AS high_rank FROM b) "
        "SELECT metric, split, bucket, step, value, low_rank, high_rank FROM r "
        "WHERE low_rank = 1 OR high_rank = 1"
    )
    match = ranges_match(run_oid, ranges)

    def rows(select: Select) -> list[Document]:
        groups: dict[tuple[str, str, int], Document] = {}
        for row in select(sql, match, **params):
            group = groups.setdefault(
                (row["metric"], row["split"], row["bucket"]),
                {"metric": row["metric"], "split": row["split"]},
            )
            point = {"step": row["step"], "value": row["value"]}
            if row["low_rank"] == 1:
                group["low"] = point
            if row["high_rank"] == 1:
                group["high"] = point
        return list(groups.values())

    return rows


def series_buckets(run_oid: ObjectId, ranges: Sequence[SeriesRange], max_points: int) -> Query:
    """The min and max point of each bucket of these series (see the module's docstring)."""
    return Query(
        "metric_points",
        series_buckets_pipeline(run_oid, ranges, max_points),
        series_buckets_sql(run_oid, ranges, max_points),
    )


# -- summary --------------------------------------------------------------------------------


def summary_stats_pipeline(match: Filter) -> Pipeline:
    """Per series: count, first and last step, the value at the last step, mean, min, max."""
    return [
        {"$match": dict(match)},
        {"$sort": {"metric": 1, "split": 1, "step": 1}},
        {
            "$group": {
                "_id": {"metric": "$metric", "split": "$split"},
                "count": {"$sum": 1},
                "first_step": {"$first": "$step"},
                "last_step": {"$last": "$step"},
                "last": {"$last": "$value"},
                "mean": {"$avg": "$value"},
                "min": {"$min": "$value"},
                "max": {"$max": "$value"},
            }
        },
        {
            "$project": {
                "_id": 0,
                "metric": "$_id.metric",
                "split": "$_id.split",
                **dict.fromkeys(("count", "first_step", "last_step", "last", "mean"), 1),
                **dict.fromkeys(("min", "max"), 1),
            }
        },
        {"$sort": {"metric": 1, "split": 1}},
    ]


def summary_stats_sql(match: Filter) -> SqlRows:
    """`summary_stats_pipeline` in SQL; the last value is read by primary key."""

    def rows(select: Select) -> list[Document]:
        return select(
            "WITH g AS (SELECT evaluation_run_id, metric, split, count(*) AS count, "
            "min(step) AS first_step, max(step) AS last_step, avg(value) AS mean, "
            "min(value) AS min, max(value) AS max FROM metric_points WHERE {where} "
            "GROUP BY evaluation_run_id, metric, split) "
            "SELECT g.metric, g.split, g.count, g.first_step, g.last_step, p.value AS last, "
            "g.mean, g.min, g.max FROM g JOIN metric_points AS p "
            "ON p.evaluation_run_id = g.evaluation_run_id AND p.metric = g.metric "
            "AND p.split = g.split AND p.step = g.last_step ORDER BY g.metric, g.split",
            match,
        )

    return rows


def summary_stats(match: Filter) -> Query:
    """Count, steps, last, mean, min and max per series of the matching points."""
    return Query("metric_points", summary_stats_pipeline(match), summary_stats_sql(match))


def extremes_match(run_oid: ObjectId, stats: Sequence[Document]) -> Filter:
    """The points of each series whose value equals its min or its max."""
    return {
        "evaluation_run_id": run_oid,
        "$or": [
            {"metric": row["metric"], "split": row["split"], "value": row[name]}
            for row in stats
            for name in ("min", "max")
        ],
    }


def summary_extremes_pipeline(match: Filter) -> Pipeline:
    """Per series and value of the matching points: the earliest step holding it."""
    return [
        {"$match": dict(match)},
        {
            "$group": {
                "_id": {"metric": "$metric", "split": "$split", "value": "$value"},
                "step": {"$min": "$step"},
            }
        },
        {
            "$project": {
                "_id": 0,
                "metric": "$_id.metric",
                "split": "$_id.split",
                "value": "$_id.value",
                "step": 1,
            }
        },
    ]


def summary_extremes_sql(match: Filter) -> SqlRows:
    """`summary_extremes_pipeline` in SQL."""

    def rows(select: Select) -> list[Document]:
        return select(
            "SELECT metric, split, value, min(step) AS step FROM metric_points "
            "WHERE {where} GROUP BY metric, split, value",
            match,
        )

    return rows


def summary_extremes(match: Filter) -> Query:
    """The earliest step of each value of the matching points, per series."""
    return Query("metric_points", summary_extremes_pipeline(match), summary_extremes_sql(match))


# -- runs holding a metric ------------------------------------------------------------------


def runs_with_metric_pipeline(match: Filter, metric: str, split: str | None, last: int) -> Pipeline:
    """The `last` newest runs of `match` whose `series` summary holds `metric` (of `split`)."""
    held: dict[str, Any] = {"metric": metric}
    if split is not None:
        held["split"] = split
    return [
        {"$match": {**match, "series": {"$elemMatch": held}}},
        {"$sort": {"started_at": -1, "_id": -1}},
        {"$limit": last},
        {"$project": {"_id": 1, "evaluation_run_id": 1, "started_at": 1}},
    ]


def runs_with_metric_sql(match: Filter, metric: str, split: str | None, last: int) -> SqlRows:
    """`runs_with_metric_pipeline` in SQL (`series` is read from the run's JSON)."""

    def rows(select: Select) -> list[Document]:
        found = select(
            "SELECT _id, evaluation_run_id, started_at FROM evaluation_runs "
            "WHERE {where} AND EXISTS (SELECT 1 FROM json_each(doc, '$.series') AS s "
            "WHERE s.value ->> '$.metric' = :metric "
            "AND (:split IS NULL OR s.value ->> '$.split' = :split)) "
            "ORDER BY started_at DESC, _id DESC LIMIT :last",
            match,
            metric=metric,
            split=split,
            last=last,
        )
        return [
            {
                "_id": object_id(row["_id"]),
                "evaluation_run_id": row["evaluation_run_id"],
                "started_at": None if row["started_at"] is None else from_ms(row["started_at"]),
            }
            for row in found
        ]

    return rows


def runs_with_metric(match: Filter, metric: str, split: str | None, last: int) -> Query:
    """The newest runs of `match` that recorded `metric` (of `split`), newest first."""
    return Query(
        "evaluation_runs",
        runs_with_metric_pipeline(match, metric, split, last),
        runs_with_metric_sql(match, metric, split, last),
    )


# -- the shared Python ----------------------------------------------------------------------


def to_ranges(rows: Sequence[Document]) -> list[SeriesRange]:
    return sorted(
        (
            SeriesRange(
                row["metric"],
                row["split"],
                int(row["total"]),
                int(row["first_step"]),
                int(row["last_step"]),
            )
            for row in rows
        ),
        key=lambda r: r.key,
    )


def _point(step: Any, value: Any) -> Document:
    return {"step": int(step), "value": float(value)}


def bucket_points(rows: Sequence[Document]) -> dict[tuple[str, str], list[Document]]:
    """The points the buckets kept, per series, in step order (a point kept once)."""
    kept: dict[tuple[str, str], dict[int, float]] = {}
    for row in rows:
        steps = kept.setdefault((row["metric"], row["split"]), {})
        for name in ("low", "high"):
            steps[int(row[name]["step"])] = float(row[name]["value"])
    return {key: [_point(s, v) for s, v in sorted(steps.items())] for key, steps in kept.items()}


def plain_points(rows: Sequence[Document]) -> dict[tuple[str, str], list[Document]]:
    """`series_points` rows per series, in step order."""
    series: dict[tuple[str, str], list[Document]] = {}
    for row in rows:
        series.setdefault((row["metric"], row["split"]), []).append(
            _point(row["step"], row["value"])
        )
    for points in series.values():
        points.sort(key=lambda point: point["step"])
    return series


def summary_rows(stats: Sequence[Document], extremes: Sequence[Document]) -> list[Document]:
    """The summary of each series from `summary_stats` and `summary_extremes` rows."""
    earliest = {
        (row["metric"], row["split"], float(row["value"])): int(row["step"]) for row in extremes
    }
    answers = []
    for row in sorted(stats, key=lambda r: (r["metric"], r["split"])):
        low, high = float(row["min"]), float(row["max"])
        answers.append(
            {
                "metric": row["metric"],
                "split": row["split"],
                "count": int(row["count"]),
                "first_step": int(row["first_step"]),
                "last_step": int(row["last_step"]),
                "last": float(row["last"]),
                "mean": float(row["mean"]),
                "min": low,
                "min_step": earliest[(row["metric"], row["split"], low)],
                "max": high,
                "max_step": earliest[(row["metric"], row["split"], high)],
            }
        )
    return answers


async def _available(history: History, run_oid: ObjectId) -> list[Document]:
    return await history.rows(series_ranges(points_match(run_oid)), "read metric series")


def _names(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


async def check_found(
    history: History,
    run: Document,
    found: Sequence[tuple[str, str]],
    metrics: Sequence[str] | None,
    split: str | None,
) -> None:
    """Refuse metrics (or a split) the run never recorded, naming those it has.

    Raises:
        InvalidDataError: a requested metric or split has no point in the run.
    """
    have = {metric for metric, _ in found}
    missing = [m for m in metrics or () if m not in have]
    if not missing and (split is None or found):
        return
    every = await _available(history, run["_id"])
    run_id = run.get("evaluation_run_id") or str(run["_id"])
    recorded = sorted({row["metric"] for row in every})
    unknown = [m for m in missing if m not in recorded]
    if unknown:
        raise InvalidDataError(
            f"run {run_id} has no metric {unknown[0]!r} (its metrics: {_names(recorded)})"
        )
    # the metrics exist, so a split was asked for that they lack
    splits = sorted({row["split"] for row in every if not missing or row["metric"] == missing[0]})
    what = f"metric {missing[0]!r}" if missing else "series"
    raise InvalidDataError(
        f"run {run_id} has no {what} of split {split!r} (its splits: {_names(splits)})"
    )


async def read_series(
    history: History,
    run: Document,
    metrics: Sequence[str] | None,
    split: str | None,
    max_points: int | None,
) -> list[Document]:
    """The series of one stored run (see `get_series`)."""
    run_oid = run["_id"]
    action = "read metric series"
    ranges = to_ranges(
        await history.rows(series_ranges(points_match(run_oid, metrics, split)), action)
    )
    await check_found(history, run, [r.key for r in ranges], metrics, split)
    down = [r for r in ranges if max_points is not None and r.total > max_points]
    plain = [r for r in ranges if r not in down]
    points: dict[tuple[str, str], list[Document]] = {}
    if plain:
        rows = await history.rows(series_points(ranges_match(run_oid, plain)), action)
        points.update(plain_points(rows))
    if down and max_points is not None:
        rows = await history.rows(series_buckets(run_oid, down, max_points), action)
        points.update(bucket_points(rows))
    return [
        {
            "metric": r.metric,
            "split": r.split,
            "points": points.get(r.key, []),
            "total": r.total,
            "downsampled": r in down,
        }
        for r in ranges
    ]


async def summarise(
    history: History,
    run_oid: ObjectId,
    metrics: Sequence[str] | None = None,
    split: str | None = None,
) -> list[Document]:
    """The summary rows of one run's series (see `get_series_summary`), from the store."""
    action = "summarise metric series"
    stats = await history.rows(summary_stats(points_match(run_oid, metrics, split)), action)
    if not stats:
        return []
    extremes = await history.rows(summary_extremes(extremes_match(run_oid, stats)), action)
    return summary_rows(stats, extremes)


# -- the service's questions ---------------------------------------------------------------


async def get_series(
    history: History,
    evaluation_run_id: str | ObjectId,
    *,
    metrics: Sequence[str] | None = None,
    split: str | None = None,
    max_points: int | None = DEFAULT_MAX_POINTS,
) -> list[Document]:
    """One entry per (metric, split) of a run, sorted by metric then split.

    Each: `metric`, `split`, `points` (`{step, value}` in step order), `total` (the
    points stored) and `downsampled` (True when `points` is the min/max per bucket of a
    series longer than `max_points`; see the module's docstring). `max_points=None`
    returns every point.

    Raises:
        RunNotFoundError: no run has that name.
        InvalidDataError: a requested metric or split was never recorded in the run
            (the message names those it has), or `max_points` is below 2.
    """
    names = check_metrics(metrics)
    split = check_split(split)
    max_points = check_max_points(max_points)
    run = await history.select(evaluation_run_id)
    return await read_series(history, run, names, split, max_points)


async def get_series_summary(
    history: History,
    evaluation_run_id: str | ObjectId,
    *,
    metrics: Sequence[str] | None = None,
    split: str | None = None,
) -> list[Document]:
    """Per (metric, split) of a run: count, first_step, last_step, last (the value at
    last_step), mean, min, min_step, max, max_step (the earliest steps reaching them).

    Raises:
        RunNotFoundError: no run has that name.
        InvalidDataError: a requested metric or split was never recorded in the run.
    """
    names = check_metrics(metrics)
    split = check_split(split)
    run = await history.select(evaluation_run_id)
    rows = await summarise(history, run["_id"], names, split)
    await check_found(history, run, [(r["metric"], r["split"]) for r in rows], names, split)
    return rows


async def get_best_step(
    history: History,
    evaluation_run_id: str | ObjectId,
    metric: str,
    *,
    mode: str = "min",
    split: str | None = None,
) -> Document:
    """The best step of one metric (lowest value for `min`, highest for `max`; the
    earliest on ties), the last step and the steps since the best (early stopping).

    Raises:
        RunNotFoundError: no run has that name.
        InvalidDataError: the metric (or split) was never recorded in the run, or it was
            recorded in several splits and `split` is None.
    """
    best_mode = check_mode(mode)
    check_text(metric, "metric")
    split = check_split(split)
    run = await history.select(evaluation_run_id)
    rows = await summarise(history, run["_id"], [metric], split)
    await check_found(history, run, [(r["metric"], r["split"]) for r in rows], [metric], split)
    if len(rows) > 1:
        run_id = run.get("evaluation_run_id") or str(run["_id"])
        splits = ", ".join(row["split"] for row in rows)
        raise InvalidDataError(
            f"metric {metric!r} of run {run_id} was recorded in several splits ({splits}): "
            "choose one with --split (split= in Python)"
        )
    [row] = rows
    step = row[f"{best_mode}_step"]
    return {
        "metric": metric,
        "split": row["split"],
        "mode": best_mode,
        "step": step,
        "value": row[best_mode],
        "last_step": row["last_step"],
        "steps_since_best": row["last_step"] - step,
    }


async def get_metric_across_runs(
    history: History,
    metric: str,
    *,
    split: str | None = None,
    runs: Sequence[str | ObjectId] | None = None,
    last: int = 5,
    max_points: int | None = DEFAULT_MAX_POINTS,
    branch: str | None = None,
    environment: str | None = None,
    suite: str | None = None,
    not_after: datetime | None = None,
) -> list[Document]:
    """One metric in several runs: the named `runs` (in that order), or else the `last`
    newest finished runs (of a branch, environment, suite) that recorded it, oldest first.

    One entry per (run, split): `evaluation_run_id`, `started_at`, `split`, `points`,
    `total`, `downsampled` (as in `get_series`).

    Raises:
        RunNotFoundError: a named run does not exist.
        InvalidDataError: a named run never recorded the metric (or split).
    """
    check_text(metric, "metric")
    split = check_split(split)
    max_points = check_max_points(max_points)
    chosen: list[Document]
    if runs is not None:
        names = [runs] if isinstance(runs, str) else list(runs)
        chosen = [await history.select(name) for name in names]
    else:
        count = check_positive_int(last, "last")
        match: dict[str, Any] = {"status": {"$in": list(FINISHED)}}
        if not_after is not None:
            match["started_at"] = {"$lte": not_after}
        for field, value in (
            ("git_branch", branch),
            ("environment", environment),
            ("suite", suite),
        ):
            if value is not None:
                match[field] = check_text(value, field)
        found = await history.rows(
            runs_with_metric(match, metric, split, count), "find runs with a metric"
        )
        chosen = found[::-1]
    answers = []
    for run in chosen:
        for series in await read_series(history, run, [metric], split, max_points):
            answers.append(
                {
                    "evaluation_run_id": run.get("evaluation_run_id"),
                    "started_at": run.get("started_at"),
                    "split": series["split"],
                    "points": series["points"],
                    "total": series["total"],
                    "downsampled": series["downsampled"],
                }
            )
    return answers
