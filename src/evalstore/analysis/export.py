"""Exports: the stored documents of one kind as CSV, JSON or NDJSON, in constant memory.

Five kinds: `runs` (evaluation_runs), `tests` (test_runs), `series` (metric_points),
`alerts` and `usage`. Documents are read in pages of `PAGE_SIZE` through the
storage seam's `read`, by keyset pagination: sorted by `_id`, each next page
asks for `_id` greater than the last one seen. Both engines answer that the
same way (the local store keeps ObjectIds as hex, whose order is the
ObjectIds' order), so no page is skipped or repeated whatever is written
meanwhile before the cursor, and memory holds one page at a time, never the
whole export.

Rows come out in `_id` order (the order they were recorded), except metric points:
run after run (in `_id` order of the runs), then by metric, split and step, paged
on that unique key (the local store has no index on a point's `_id`); points whose
run is gone are not exported. The filters
(`ExportFilters`):

* `since` / `until`: on each kind's own time field (`started_at` of runs,
  `finished_at` of tests, `recorded_at` of points and usage, `fired_at` of
  alerts); without them, everything is exported (no default window);
* `environment`, `branch`, `suite`, `tags` (`tags_match`): the runs exported,
  or the runs whose tests, points and usage are exported (the matching runs are
  read in pages too, and each page of runs selects its rows with `$in`); on
  alerts, the alert's own `environment`, `git_branch` and `suite` (tags do not
  apply);
* `run`: one run's tests, points or usage (an id, `latest`, `previous` or a
  unique prefix, as for `select_evaluation_run`).

CSV (and `to_dataframe`) have one column per value, named by its dotted path
(`metrics.wer.score`, `usage.cost`); the columns of each kind are `columns_of`.
A run's `metrics.<name>` columns and a test's `metrics.<name>.*` columns depend
on what was recorded: they are found first by a pass over the same selection
reading only the `metrics` field (pages again), so a CSV header is complete
before its first row. JSON and NDJSON keep each document whole, as stored,
ObjectIds as hex and dates as ISO 8601 UTC strings; the tests, points and
usage of a run also get `run`, the run's human-readable id (read once per page
of rows for the runs not already known).
"""

from __future__ import annotations

import csv
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, TypedDict

from bson import ObjectId
from typing_extensions import Unpack

from evalstore.analysis.base import History
from evalstore.analysis.filters import RunFilters, TagsMatch
from evalstore.errors import ConfigurationError, EvalstoreError, InvalidDataError
from evalstore.models import Document, check_positive_int, to_utc
from evalstore.storage.client import Collection, Filter, MongoDBClient

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "FORMATS",
    "KINDS",
    "PAGE_SIZE",
    "Column",
    "Export",
    "ExportFilters",
    "Format",
    "Kind",
    "columns_of",
    "to_dataframe",
]

Kind = Literal["runs", "tests", "series", "alerts", "usage"]
Format = Literal["csv", "json", "ndjson"]
KINDS: tuple[Kind, ...] = ("runs", "tests", "series", "alerts", "usage")
FORMATS: tuple[Format, ...] = ("csv", "json", "ndjson")
PAGE_SIZE = 1000
"""Documents per read: what an export holds in memory at once."""

PANDAS_MISSING = "to_dataframe needs pandas: pip install 'evalstore[pandas]'"

ColumnType = Literal["id", "text", "int", "float", "bool", "date", "list", "object"]
"""How a column's values are written: `id` an ObjectId as hex, `date` ISO 8601 UTC,
`list` and `object` as JSON text in CSV (kept as Python values in a DataFrame)."""


class ExportFilters(TypedDict, total=False):
    """The keyword filters of an export (see the module's documentation)."""

    since: datetime | None
    until: datetime | None
    environment: str | None
    branch: str | None
    suite: str | None
    tags: Sequence[str]
    tags_match: TagsMatch
    run: str | ObjectId | None


@dataclass(frozen=True)
class Column:
    """One column of a flat export: its name, the type of its values, its path in a document."""

    name: str
    type: ColumnType
    path: tuple[str, ...]

    def value(self, document: Mapping[str, Any]) -> Any:
        """The value at this column's path in `document` (None where the path stops)."""
        value: Any = document
        for part in self.path:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value


def _columns(*specs: tuple[str, ColumnType]) -> tuple[Column, ...]:
    return tuple(Column(name, kind, tuple(name.split("."))) for name, kind in specs)


RUN_COLUMNS = _columns(
    ("_id", "id"),
    ("evaluation_run_id", "text"),
    ("status", "text"),
    ("started_at", "date"),
    ("finished_at", "date"),
    ("last_seen_at", "date"),
    ("suite", "text"),
    ("environment", "text"),
    ("git_branch", "text"),
    ("git_commit", "text"),
    ("git_dirty", "bool"),
    ("experiment_tags", "list"),
    ("system_info_hash", "text"),
    ("system_information.config", "object"),
    ("num_tests", "int"),
    ("num_passed", "int"),
    ("num_failed", "int"),
    ("num_skipped", "int"),
    ("num_errors", "int"),
    ("score", "float"),
    ("usage.input_tokens", "int"),
    ("usage.output_tokens", "int"),
    ("usage.cache_read_tokens", "int"),
    ("usage.cache_write_tokens", "int"),
    ("usage.reasoning_tokens", "int"),
    ("usage.calls", "int"),
    ("usage.records", "int"),
    ("usage.cost", "float"),
    ("usage.unpriced", "int"),
    ("usage.cost_per_passed_test", "float"),
)
"""A run's columns, before one `metrics.<name>` (the mean score) per recorded metric."""

TEST_COLUMNS = _columns(
    ("_id", "id"),
    ("test_run_id", "text"),
    ("evaluation_run_id", "id"),
    ("run", "text"),
    ("test_id", "text"),
    ("test_name", "text"),
    ("status", "text"),
    ("passed", "bool"),
    ("score", "float"),
    ("score_method", "text"),
    ("started_at", "date"),
    ("finished_at", "date"),
    ("duration_ms", "float"),
    ("tags", "list"),
    ("participants", "list"),
    ("message", "text"),
    ("agent.attempts", "int"),
    ("agent.first_time_right", "bool"),
)
"""A test run's columns, before `metrics.<name>.score|passed|threshold|unit` per metric."""

METRIC_FIELDS: tuple[tuple[str, ColumnType], ...] = (
    ("score", "float"),
    ("passed", "bool"),
    ("threshold", "float"),
    ("unit", "text"),
)
"""The columns of each metric of a test run (its free-form `details` are in JSON only)."""

SERIES_COLUMNS = _columns(
    ("run", "text"),
    ("metric", "text"),
    ("split", "text"),
    ("step", "int"),
    ("value", "float"),
    ("recorded_at", "date"),
)

ALERT_COLUMNS = _columns(
    ("_id", "id"),
    ("key", "text"),
    ("rule", "text"),
    ("level", "text"),
    ("max_level", "text"),
    ("kind", "text"),
    ("check", "text"),
    ("metric", "text"),
    ("test_id", "text"),
    ("step", "int"),
    ("value", "float"),
    ("threshold", "float"),
    ("baseline.mean", "float"),
    ("baseline.std", "float"),
    ("baseline.n", "int"),
    ("statistic.change", "float"),
    ("statistic.z", "float"),
    ("statistic.p", "float"),
    ("message", "text"),
    ("state", "text"),
    ("acknowledged", "bool"),
    ("acknowledged_at", "date"),
    ("acknowledged_by", "text"),
    ("resolved_at", "date"),
    ("resolved_by", "text"),
    ("evaluation_run_id", "id"),
    ("run", "text"),
    ("first_evaluation_run_id", "id"),
    ("first_run", "text"),
    ("runs", "int"),
    ("suite", "text"),
    ("environment", "text"),
    ("git_branch", "text"),
    ("context", "object"),
    ("fired_at", "date"),
    ("last_seen_at", "date"),
    ("last_run_started_at", "date"),
)

USAGE_COLUMNS = _columns(
    ("_id", "id"),
    ("usage_id", "text"),
    ("evaluation_run_id", "id"),
    ("run", "text"),
    ("test_id", "text"),
    ("step", "int"),
    ("model", "text"),
    ("provider", "text"),
    ("input_tokens", "int"),
    ("output_tokens", "int"),
    ("cache_read_tokens", "int"),
    ("cache_write_tokens", "int"),
    ("reasoning_tokens", "int"),
    ("calls", "int"),
    ("cost", "float"),
    ("cost_source", "text"),
    ("price.source", "text"),
    ("price.model", "text"),
    ("price.provider", "text"),
    ("price.input_mtok", "float"),
    ("price.output_mtok", "float"),
    ("price.cache_read_mtok", "float"),
    ("price.cache_write_mtok", "float"),
    ("price.valid_from", "text"),
    ("recorded_at", "date"),
    ("suite", "text"),
    ("git_branch", "text"),
    ("environment", "text"),
)


@dataclass(frozen=True)
class _KindSpec:
    collection: Collection
    time_field: str
    columns: tuple[Column, ...]
    per_run: bool  # its documents belong to a run: `run` and run filters select them


_KINDS: dict[str, _KindSpec] = {
    "runs": _KindSpec("evaluation_runs", "started_at", RUN_COLUMNS, per_run=False),
    "tests": _KindSpec("test_runs", "finished_at", TEST_COLUMNS, per_run=True),
    "series": _KindSpec("metric_points", "recorded_at", SERIES_COLUMNS, per_run=True),
    "alerts": _KindSpec("alerts", "fired_at", ALERT_COLUMNS, per_run=False),
    "usage": _KindSpec("usage", "recorded_at", USAGE_COLUMNS, per_run=True),
}
_FILTERS = frozenset(ExportFilters.__annotations__)
_RUN_NAMES_KEPT = 10 * PAGE_SIZE  # run ids remembered before the cache starts over


def columns_of(kind: Kind, metrics: Sequence[str] = ()) -> list[Column]:
    """The flat columns of `kind`, with those of `metrics` (for runs and tests), in order."""
    spec = _spec(kind)
    columns = list(spec.columns)
    for name in sorted(metrics):
        if kind == "runs":
            columns.append(Column(f"metrics.{name}", "float", ("metrics", name)))
        elif kind == "tests":
            columns.extend(
                Column(f"metrics.{name}.{field}", type_, ("metrics", name, field))
                for field, type_ in METRIC_FIELDS
            )
    return columns


def _spec(kind: object) -> _KindSpec:
    if not isinstance(kind, str) or kind not in _KINDS:
        raise InvalidDataError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return _KINDS[kind]


@dataclass(frozen=True)
class _Plan:
    query: Filter  # on the kind's collection
    run_query: Filter | None  # select runs first, then their rows (`$in`), page by page


class Export:
    """One export: the documents of `kind` matching `filters`, read page by page.

    Args:
        client: the store.
        kind: `runs`, `tests`, `series`, `alerts` or `usage`.
        filters: see `ExportFilters` and the module's documentation.
        page_size: documents per read (at least 1).

    Raises:
        InvalidDataError: an unknown kind or filter, or a filter value of the wrong type.
    """

    def __init__(
        self,
        client: MongoDBClient,
        kind: Kind,
        filters: ExportFilters | None = None,
        *,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.client = client
        self.kind = kind
        self.spec = _spec(kind)
        self.page_size = check_positive_int(page_size, "page_size")
        self.filters: dict[str, Any] = dict(filters or {})
        unknown = sorted(set(self.filters) - _FILTERS)
        if unknown:
            raise InvalidDataError(
                f"unknown export filter {unknown[0]!r}: expected {', '.join(sorted(_FILTERS))}"
            )
        run_filters = {k: v for k, v in self.filters.items() if k != "run" and v is not None}
        self._window = RunFilters.of(**run_filters)  # validates every value
        if self.filters.get("run") is not None and not self.spec.per_run:
            raise InvalidDataError("run selects tests, series and usage; not " + kind)
        if self._window.tags and kind == "alerts":
            raise InvalidDataError("tags select runs, tests, series and usage; not alerts")
        self._plan: _Plan | None = None
        self._names: dict[Any, str | None] = {}

    async def _planned(self) -> _Plan:
        """The queries of this export (the run named by `run` is looked up once)."""
        if self._plan is not None:
            return self._plan
        window = self._window
        query: dict[str, Any] = {}
        bounds: dict[str, datetime] = {}
        if window.since is not None:
            bounds["$gte"] = to_utc(window.since)
        if window.until is not None:
            bounds["$lt"] = to_utc(window.until)
        if bounds:
            query[self.spec.time_field] = bounds
        runs: dict[str, Any] = {}
        for field, value in (
            ("environment", window.environment),
            ("git_branch", window.branch),
            ("suite", window.suite),
        ):
            if value is not None:
                runs[field] = value
        if window.tags:
            operator = "$in" if window.tags_match == "any" else "$all"
            runs["experiment_tags"] = {operator: list(window.tags)}
        run_query: dict[str, Any] | None = None
        if not self.spec.per_run:
            query.update(runs)  # runs: their own fields; alerts: the group they concern
        elif self.filters.get("run") is not None:
            run = await History(self.client).select(self.filters["run"])
            self._names[run["_id"]] = run.get("evaluation_run_id")
            query["evaluation_run_id"] = run["_id"]
        elif runs:
            run_query = runs
        self._plan = _Plan(query, run_query)
        return self._plan

    async def _keyset(
        self,
        collection: Collection,
        query: Filter,
        *,
        projection: Mapping[str, Any] | None = None,
        action: str,
    ) -> AsyncIterator[list[Document]]:
        """The documents matching `query` in pages of `page_size`, in `_id` order."""
        last: Any = None
        while True:
            page_query = dict(query) if last is None else {**query, "_id": {"$gt": last}}
            page = await self.client.read(
                collection,
                page_query,
                sort=[("_id", 1)],
                limit=self.page_size,
                projection=projection,
                action=action,
            )
            if page:
                yield page
            if len(page) < self.page_size:
                return
            last = page[-1]["_id"]

    async def _run_pages(self, run_query: Filter) -> AsyncIterator[list[Document]]:
        async for runs in self._keyset(
            "evaluation_runs",
            run_query,
            projection={"evaluation_run_id": 1},
            action=f"export {self.kind}: select runs",
        ):
            self._names = {run["_id"]: run.get("evaluation_run_id") for run in runs}
            yield runs

    async def pages(
        self, projection: Mapping[str, Any] | None = None
    ) -> AsyncIterator[list[Document]]:
        """The documents to export, page by page, as stored (`projection` applied)."""
        plan = await self._planned()
        action = f"export {self.kind}"
        collection = self.spec.collection
        if self.kind == "series":
            async for page in self._series_pages(plan, projection):
                yield page
            return
        if plan.run_query is None:
            async for page in self._keyset(
                collection, plan.query, projection=projection, action=action
            ):
                yield page
            return
        async for runs in self._run_pages(plan.run_query):
            query = {**plan.query, "evaluation_run_id": {"$in": [run["_id"] for run in runs]}}
            async for page in self._keyset(collection, query, projection=projection, action=action):
                yield page

    async def rows(self) -> AsyncIterator[list[Document]]:
        """The documents to export, page by page; a run's tests, points and usage with `run`."""
        async for page in self.pages():
            if not self.spec.per_run:
                yield page
                continue
            await self._name_runs(page)
            names = self._names
            yield [_with_run(doc, names.get(doc.get("evaluation_run_id"))) for doc in page]

    async def _series_pages(
        self, plan: _Plan, projection: Mapping[str, Any] | None
    ) -> AsyncIterator[list[Document]]:
        """A run's points by metric, split and step, run after run, in pages.

        Points are paged on their own unique key (run, metric, split, step), which
        both engines index (the local store's table is clustered on it and has no
        index on `_id`, so paging it by `_id` would rescan the table for every page).
        """
        run = plan.query.get("evaluation_run_id")
        runs = (
            _one_page([{"_id": run}]) if run is not None else self._run_pages(plan.run_query or {})
        )
        action = "export series"
        async for page_of_runs in runs:
            for each in page_of_runs:
                series = {**plan.query, "evaluation_run_id": each["_id"]}
                metrics = await self.client.distinct_values(
                    "metric_points", "metric", series, action=action
                )
                for metric in sorted(metrics):
                    splits = await self.client.distinct_values(
                        "metric_points", "split", {**series, "metric": metric}, action=action
                    )
                    for split in sorted(splits):
                        async for page in self._steps(
                            {**series, "metric": metric, "split": split}, projection
                        ):
                            yield page

    async def _steps(
        self, query: Filter, projection: Mapping[str, Any] | None
    ) -> AsyncIterator[list[Document]]:
        last: Any = None
        while True:
            page_query = dict(query) if last is None else {**query, "step": {"$gt": last}}
            page = await self.client.read(
                "metric_points",
                page_query,
                sort=[("step", 1)],
                limit=self.page_size,
                projection=projection,
                action="export series",
            )
            if page:
                yield page
            if len(page) < self.page_size:
                return
            last = page[-1]["step"]

    async def documents(self) -> AsyncIterator[Document]:
        """The documents to export, one by one (as `rows`)."""
        async for page in self.rows():
            for document in page:
                yield document

    async def _name_runs(self, page: Sequence[Document]) -> None:
        """Learn the human-readable ids of the runs of `page` not known yet (one read)."""
        wanted = {
            oid
            for document in page
            if isinstance(oid := document.get("evaluation_run_id"), ObjectId)
            and oid not in self._names
        }
        if not wanted:
            return
        if len(self._names) + len(wanted) > _RUN_NAMES_KEPT:
            self._names = {}
        found = await self.client.read(
            "evaluation_runs",
            {"_id": {"$in": sorted(wanted)}},
            projection={"evaluation_run_id": 1},
            action=f"export {self.kind}: name runs",
        )
        self._names.update(dict.fromkeys(wanted))  # a run that is gone has no name
        self._names.update({run["_id"]: run.get("evaluation_run_id") for run in found})

    async def count(self) -> int:
        """How many documents the export writes (for a progress bar)."""
        plan = await self._planned()
        action = f"count {self.kind}"
        if plan.run_query is None:
            return await self.client.count(self.spec.collection, plan.query, action=action)
        total = 0
        async for runs in self._run_pages(plan.run_query):
            query = {**plan.query, "evaluation_run_id": {"$in": [run["_id"] for run in runs]}}
            total += await self.client.count(self.spec.collection, query, action=action)
        return total

    async def metric_names(self) -> list[str]:
        """The metric names the selected runs or tests recorded, sorted (a pass over `metrics`)."""
        if self.kind not in ("runs", "tests"):
            return []
        names: set[str] = set()
        async for page in self.pages(projection={"metrics": 1}):
            for document in page:
                metrics = document.get("metrics")
                if isinstance(metrics, Mapping):
                    names.update(name for name in metrics if isinstance(name, str))
        return sorted(names)

    async def columns(self) -> list[Column]:
        """The flat columns of this export (metric names found first for runs and tests)."""
        return columns_of(self.kind, await self.metric_names())

    async def write(
        self,
        stream: IO[str],
        fmt: Format,
        *,
        on_rows: Callable[[int], None] | None = None,
    ) -> int:
        """Write the export to `stream` as `fmt`; return the number of rows.

        Args:
            on_rows: called after each page with the rows written from it.
        """
        if fmt not in FORMATS:
            raise InvalidDataError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        writer: _Writer
        if fmt == "csv":
            writer = _CsvWriter(stream, await self.columns())
        elif fmt == "json":
            writer = _JsonArrayWriter(stream)
        else:
            writer = _NdjsonWriter(stream)
        written = 0
        async for page in self.rows():
            for document in page:
                writer.write(document)
            written += len(page)
            if on_rows is not None:
                on_rows(len(page))
        writer.close()
        return written

    async def write_file(
        self,
        path: str | os.PathLike[str],
        fmt: Format,
        *,
        on_rows: Callable[[int], None] | None = None,
    ) -> int:
        """Write the export to the file `path` as `fmt`, whole or not at all.

        The rows go to a temporary file beside `path` (`<name>.<random>.tmp`), renamed
        over `path` once complete; on any error it is removed and `path` is untouched.

        Raises:
            EvalstoreError: the file cannot be written (one line naming it), or what
                reading the store raised.
        """
        target = Path(path)
        if target.is_dir():
            raise EvalstoreError(f"cannot write {target}: it is a directory")
        temporary = target.with_name(f"{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise EvalstoreError(f"cannot write {target}: {exc.strerror or exc}") from None
        try:
            with open(descriptor, "w", encoding="utf-8", newline="") as stream:
                written = await self.write(stream, fmt, on_rows=on_rows)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise EvalstoreError(f"cannot write {target}: {exc.strerror or exc}") from None
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return written


async def _one_page(page: list[Document]) -> AsyncIterator[list[Document]]:
    yield page


def _with_run(document: Document, name: str | None) -> Document:
    """`document` with `run` (the run's human-readable id) after its `evaluation_run_id`."""
    shaped: Document = {}
    for key, value in document.items():
        if key != "run":
            shaped[key] = value
        if key == "evaluation_run_id":
            shaped["run"] = name
    return shaped


def plain(value: Any) -> Any:
    """`value` as JSON holds it: ObjectIds as hex, dates as ISO 8601 UTC (`...Z`)."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def iso(value: datetime) -> str:
    """An ISO 8601 UTC timestamp (`2025-03-01T10:00:00Z`; a naive datetime is UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _json(value: Any) -> str:
    return json.dumps(plain(value), default=str, separators=(",", ":"))


def cell(value: Any) -> str:
    """A CSV cell: empty for None, `true`/`false`, dates ISO 8601 UTC, lists and objects JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping | list | tuple):
        return _json(value)
    return str(value)


class _Writer(Protocol):
    def write(self, document: Document) -> None: ...

    def close(self) -> None: ...


class _CsvWriter:
    def __init__(self, stream: IO[str], columns: Sequence[Column]) -> None:
        self._columns = columns
        self._rows = csv.writer(stream)
        self._rows.writerow([column.name for column in columns])

    def write(self, document: Document) -> None:
        self._rows.writerow([cell(column.value(document)) for column in self._columns])

    def close(self) -> None:
        pass


class _JsonArrayWriter:
    """One JSON array, written element by element."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._first = True
        stream.write("[")

    def write(self, document: Document) -> None:
        self._stream.write(("\n" if self._first else ",\n") + _json(document))
        self._first = False

    def close(self) -> None:
        self._stream.write("]\n" if self._first else "\n]\n")


class _NdjsonWriter:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, document: Document) -> None:
        self._stream.write(_json(document) + "\n")

    def close(self) -> None:
        pass


# -- pandas ---------------------------------------------------------------------------


class _HasClient(Protocol):
    client: MongoDBClient


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ConfigurationError(PANDAS_MISSING) from None
    return pandas


async def to_dataframe(
    source: MongoDBClient | _HasClient,
    kind: Kind,
    *,
    page_size: int = PAGE_SIZE,
    **filters: Unpack[ExportFilters],
) -> pd.DataFrame:
    """The export of `kind` as a pandas DataFrame with the CSV's flat columns.

    Dtypes: dates `datetime64[ns, UTC]`, counts `Int64`, scores and costs `float64`,
    flags `boolean`, text and ids (hex) `string`; lists and objects stay Python values.

    Args:
        source: a `MetricsStorageService` or a `MongoDBClient`.
        kind: `runs`, `tests`, `series`, `alerts` or `usage`.
        filters: as for `Export` (`since`, `until`, `environment`, `branch`, `suite`,
            `tags`, `tags_match`, `run`).

    Raises:
        ConfigurationError: pandas is not installed.
    """
    pandas = _pandas()
    client = source if isinstance(source, MongoDBClient) else source.client
    export = Export(client, kind, filters, page_size=page_size)
    columns = await export.columns()
    values: list[list[Any]] = [[] for _ in columns]
    async for document in export.documents():
        for column, into in zip(columns, values, strict=True):
            into.append(column.value(document))
    frame = pandas.DataFrame(
        {
            column.name: _series(pandas, column, into)
            for column, into in zip(columns, values, strict=True)
        },
        columns=[column.name for column in columns],
    )
    return frame


_DTYPES: dict[ColumnType, str] = {
    "id": "string",
    "text": "string",
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
}


def _series(pandas: Any, column: Column, values: list[Any]) -> Any:
    """One column's values as a Series of its dtype (object when a value does not fit it)."""
    if column.type == "date":
        try:
            return pandas.Series(pandas.to_datetime(values, utc=True), dtype="datetime64[ns, UTC]")
        except (TypeError, ValueError):
            return pandas.Series(values, dtype=object)
    dtype = _DTYPES.get(column.type)
    if dtype is None:
        return pandas.Series(values, dtype=object)
    if column.type in ("id", "text"):
        values = [None if value is None else str(value) for value in values]
    try:
        return pandas.Series(values, dtype=dtype)
    except (TypeError, ValueError):
        return pandas.Series(values, dtype=object)
