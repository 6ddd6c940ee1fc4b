"""The local store's engine: evalstore's reads and writes as SQL on one SQLite file.

`file:///dir` keeps each database in `<dir>/<database>/evalstore.sqlite3`, in WAL
mode: any number of processes read and write at once (pytest-xdist workers,
parallel CI jobs, a dashboard reading while a suite writes); a writer waits up
to the client's timeout for another's transaction to end. `synchronous=FULL`:
a write is on disk when the call returns, so the recorder never says a result
is stored where a power cut could take it back.

Each operation runs in a worker thread (`asyncio.to_thread`), so a wait for
another writer never blocks the caller's event loop; one lock per engine keeps
its connection to one thread at a time.

A store written by an older evalstore (a lower `PRAGMA user_version`) is brought up to
the current schema when opened, in one transaction: missing tables and indexes are
created, and from schema 5 on `test_runs.duration_ms` is added and filled from `doc`.

A database directory still in the format of evalstore before the SQLite store
(`snapshot.ndjson` and `log.ndjson`) is imported on first open, in one
transaction, and its files are renamed `*.imported`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from bson import ObjectId

from evalstore.codec import format_date
from evalstore.errors import (
    ConfigurationError,
    DuplicateRunError,
    EvalstoreError,
    InvalidDataError,
    StorageUnavailableError,
)
from evalstore.models import Document
from evalstore.storage.engine import (
    Collection,
    EncodedTestRun,
    Filter,
    Query,
    RefusedDocument,
    Sort,
    bson_problem,
    project,
)
from evalstore.storage.sqlite import legacy
from evalstore.storage.sqlite.documents import (
    decode_document,
    encode_document,
    insert_sql,
    object_id,
    point_row,
    row_of,
    run_row,
    stored_test_row,
    table_columns,
    test_row,
    usage_row,
)
from evalstore.storage.sqlite.schema import (
    DURATION_FILL,
    FILE_NAME,
    INDEXES,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    TABLES,
)
from evalstore.storage.sqlite.where import Where, order_by, sql_value, to_ms

log = logging.getLogger("evalstore")

T = TypeVar("T")
_TABLES: tuple[Collection, ...] = (
    "evaluation_runs",
    "test_runs",
    "usage",
    "metric_points",
    "alerts",
)


def database_directory(root: Path, database: str) -> Path:
    """The directory of one database of the local store at `root`.

    Raises:
        ConfigurationError: the name could escape the store's directory.
    """
    if not database or set("/\\\0") & set(database) or database in (".", ".."):
        raise ConfigurationError(
            f"invalid database name {database!r}: use letters, digits, '-' and '_'"
        )
    return root / database


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class SqliteEngine:
    """evalstore's reads and writes on one database of a local store.

    Args:
        root: the store's directory (`file:///root`).
        database: the database name (a subdirectory of `root`).
        timeout_ms: how long a write waits for another process's transaction.
    """

    def __init__(self, root: Path, database: str, *, timeout_ms: int) -> None:
        self.root = root
        self.directory = database_directory(root, database)
        self.path = self.directory / FILE_NAME
        self.timeout_ms = timeout_ms
        self._connection: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._lock = threading.Lock()

    # -- the connection ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            with self._failures("open the local store"):
                self.directory.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(
                    self.path,
                    timeout=self.timeout_ms / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
                try:
                    connection.row_factory = _dict_row
                    connection.execute(f"PRAGMA busy_timeout = {int(self.timeout_ms)}")
                    self._use_wal(connection)
                    connection.execute("PRAGMA synchronous = FULL")
                    self._create_schema(connection)
                    self._import_legacy(connection)
                except BaseException:
                    connection.close()
                    raise
            self._connection = connection
            stat = os.stat(self.path)
            self._identity = (stat.st_dev, stat.st_ino)
        elif self._replaced():
            self._close()
            raise StorageUnavailableError(
                f"the local store at {self.directory} was deleted or replaced while open: "
                "nothing was written; open it again"
            )
        return self._connection

    def _replaced(self) -> bool:
        """True when the store's file is gone or another file took its place."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (stat.st_dev, stat.st_ino) != self._identity

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        """Put the file in WAL mode, waiting up to the timeout for other openers.

        Switching needs the file to itself and SQLite does not call the busy
        handler for it: processes opening a new store at once (two CI jobs,
        xdist workers) would fail at once. WAL is a property of the file, so
        once one of them has switched, the others find it done.
        """
        deadline = time.monotonic() + self.timeout_ms / 1000
        pause = 0.005
        while True:
            mode = connection.execute("PRAGMA journal_mode").fetchone()["journal_mode"]
            if mode == "wal":
                return
            try:
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()["journal_mode"]
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            else:
                if mode == "wal":
                    return
                raise StorageUnavailableError(
                    f"the local store at {self.directory} cannot use SQLite's WAL mode "
                    f"(the file system kept it in {mode!r} mode): put it on a local disk"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _create_schema(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()["user_version"]
        if version > SCHEMA_VERSION:
            raise ConfigurationError(
                f"the local store at {self.path} was written by a newer evalstore "
                f"(schema {version}, this one reads {SCHEMA_VERSION}): upgrade evalstore"
            )
        if version == SCHEMA_VERSION:
            return
        with _transaction(connection):
            # Read again under the write lock: another process may have migrated meanwhile.
            version = connection.execute("PRAGMA user_version").fetchone()["user_version"]
            if version == SCHEMA_VERSION:
                return
            if version < 5:
                _add_duration_column(connection)
            for statement in TABLES.split(";"):
                if statement.strip():
                    connection.execute(statement)
            for statement in INDEXES.values():
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _import_legacy(self, connection: sqlite3.Connection) -> None:
        """Bring in a database recorded in the format before SQLite (once)."""
        if not legacy.has_legacy_files(self.directory):
            return
        with _transaction(connection):
            done = connection.execute("SELECT value FROM meta WHERE key = 'legacy_import'")
            if done.fetchone() is None:
                contents = legacy.read_legacy_database(self.directory)
                for table, documents in (
                    ("evaluation_runs", contents.evaluation_runs),
                    ("test_runs", contents.test_runs),
                ):
                    row = run_row if table == "evaluation_runs" else test_row
                    connection.executemany(
                        insert_sql(table, or_ignore=True),
                        [row(doc, encode_document(doc)) for doc in documents],
                    )
                connection.execute(
                    "INSERT INTO meta (key, value) VALUES ('legacy_import', ?)",
                    (
                        f"{len(contents.evaluation_runs)} runs, {len(contents.test_runs)} "
                        f"test runs, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
                    ),
                )
                log.warning(
                    "evalstore: imported %d evaluation runs and %d test runs of %s "
                    "from the former local store format",
                    len(contents.evaluation_runs),
                    len(contents.test_runs),
                    self.directory,
                )
        legacy.retire_legacy_files(self.directory)

    @contextmanager
    def _failures(self, action: str) -> Any:
        """SQLite and file errors as one-line evalstore errors naming the store."""
        try:
            yield
        except EvalstoreError:
            raise
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if _is_busy(exc):
                raise StorageUnavailableError(
                    f"cannot {action}: the local store at {self.directory} stayed busy "
                    f"for {self.timeout_ms} ms (another process is writing); try again, "
                    "or raise MONGODB_TIMEOUT_MS"
                ) from None
            if "full" in text:
                raise StorageUnavailableError(
                    f"cannot {action}: the disk of the local store at {self.directory} is full"
                ) from None
            raise StorageUnavailableError(
                f"cannot {action}: the local store at {self.directory}: {text}"
            ) from None
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError) as exc:
            raise InvalidDataError(f"cannot {action}: the local store refused it: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StorageUnavailableError(
                f"cannot {action}: {self.path} is not a readable evalstore store ({exc})"
            ) from None
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot {action}: the local store at {self.directory}: {exc.strerror or exc}"
            ) from None

    async def _run(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock, self._failures(action):
                return work(self._connect())

        return await asyncio.to_thread(locked)

    # -- administration ----------------------------------------------------------------

    async def ping(self) -> float:
        """Open the store and run a trivial query; the time it took in milliseconds."""
        start = time.perf_counter()
        await self._run("open the local store", lambda c: c.execute("SELECT 1").fetchall())
        return (time.perf_counter() - start) * 1000.0

    async def create_indexes(self) -> list[str]:
        """Create the tables and indexes (idempotent); the index names."""
        await self._run("create the local store's indexes", lambda c: None)
        return list(INDEXES)

    async def list_indexes(self) -> dict[str, list[dict[str, Any]]]:
        """The indexes that exist on both tables: name, keys and uniqueness."""

        def read(connection: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
            result: dict[str, list[dict[str, Any]]] = {}
            for table in _TABLES:
                entries = []
                for index in connection.execute(f"PRAGMA index_list({table})").fetchall():
                    if index["origin"] == "pk":
                        continue
                    keys = [
                        (column["name"], -1 if column["desc"] else 1)
                        for column in connection.execute(
                            f"PRAGMA index_xinfo({index['name']})"
                        ).fetchall()
                        if column["key"]
                    ]
                    entries.append(
                        {"name": index["name"], "keys": keys, "unique": bool(index["unique"])}
                    )
                result[table] = sorted(entries, key=lambda entry: entry["name"])
            return result

        return await self._run("list the local store's indexes", read)

    async def close(self) -> None:
        """Close the connection (in a worker thread: an operation may hold it for a while)."""

        def close() -> None:
            with self._lock:
                self._close()

        await asyncio.to_thread(close)

    async def drop_database(self) -> None:
        """Delete this database's directory and everything in it."""
        await self.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- writes ------------------------------------------------------------------------

    async def insert(self, collection: Collection, document: Document, *, what: str) -> Any:
        """Insert one new document (an `_id` is added when it has none); its `_id`."""
        if "_id" not in document:
            document["_id"] = ObjectId()
        _check_size(document, what)
        text = _encoded(document, what)
        row = row_of(collection, document, text)

        def write(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(insert_sql(collection), row)
            except sqlite3.IntegrityError:
                raise DuplicateRunError(f"{what} already exists") from None

        await self._run(f"store {what}", write)
        return document["_id"]

    async def replace(self, collection: Collection, document: Document, *, what: str) -> None:
        """Store `document` whole under its `_id`, replacing the one stored there."""
        _check_size(document, what)
        row = row_of(collection, document, _encoded(document, what))
        await self._run(
            f"store {what}", lambda c: c.execute(insert_sql(collection, replace=True), row)
        )

    async def insert_usage(self, documents: Sequence[Document]) -> None:
        """Store the usage records not stored yet (keyed on `usage_id`) in one transaction."""
        if not documents:
            return
        rows = [usage_row(doc, _encoded(doc, "usage")) for doc in documents]

        def write(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                connection.executemany(insert_sql("usage", or_ignore=True), rows)

        await self._run("store usage", write)

    async def upsert_points(self, documents: Sequence[Document]) -> None:
        """Store metric points in one transaction; a point logged again replaces it."""
        if not documents:
            return
        rows = [point_row(doc, _encoded(doc, "a metric point")) for doc in documents]
        # The table is keyed (and clustered) on run, metric, split and step: a series is
        # read in step order from the table itself, and a point logged again replaces it.
        sql = (
            "INSERT INTO metric_points (_id, evaluation_run_id, metric, split, step, value, "
            "recorded_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(evaluation_run_id, metric, split, step) DO UPDATE SET "
            "value = excluded.value, recorded_at = excluded.recorded_at, "
            # the point keeps its first _id, as MongoDB's upsert keeps it
            "doc = json_set(excluded.doc, '$._id', json_object('$oid', metric_points._id))"
        )

        def write(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                connection.executemany(sql, rows)

        await self._run("store metric points", write)

    async def upsert_run(self, document: Document) -> bool:
        """Store a run document unless stored; True when this call stored it.

        As MongoDB's upsert on `_id` and `evaluation_run_id` with `$setOnInsert`: a stored
        run is left as it is but for `last_seen_at`, which only moves forward.
        """
        run_id = document.get("evaluation_run_id")
        if "last_seen_at" in document and document["last_seen_at"] is None:
            # MongoDB's upsert sets last_seen_at only through $max, never as a null.
            document = {k: v for k, v in document.items() if k != "last_seen_at"}
        _check_size(document, f"evaluation run {run_id!r}")
        text = _encoded(document, f"evaluation run {run_id!r}")
        row = run_row(document, text)
        oid = sql_value(document["_id"])
        seen = document.get("last_seen_at")

        def write(connection: sqlite3.Connection) -> bool:
            with _transaction(connection):
                found = connection.execute(
                    "SELECT evaluation_run_id FROM evaluation_runs WHERE _id = ?", (oid,)
                ).fetchone()
                if found is None:
                    try:
                        connection.execute(insert_sql("evaluation_runs"), row)
                    except sqlite3.IntegrityError:
                        raise DuplicateRunError(
                            f"evaluation run {run_id!r} already exists"
                        ) from None
                    return True
                if found["evaluation_run_id"] != run_id:
                    raise DuplicateRunError(f"evaluation run {run_id!r} already exists")
                if isinstance(seen, datetime):
                    _move_heartbeat(connection, oid, seen)
                return False

        return await self._run("store an evaluation run", write)

    async def upsert_test_runs(
        self, documents: Sequence[Document], encoded: Sequence[EncodedTestRun | None] | None = None
    ) -> list[RefusedDocument]:
        """Store the test runs not stored yet (keyed on `test_run_id`) in one transaction.

        A document MongoDB would refuse (it cannot be encoded, it is over 16 MB) is
        refused here too, so that `sync` can push everything the local store holds.
        """
        if not documents:
            return []
        refused: list[RefusedDocument] = []
        rows = []
        texts = encoded if encoded is not None else [None] * len(documents)
        for document, text in zip(documents, texts, strict=True):
            if "_id" not in document:  # MongoDB gives an upserted document one
                document, text = {"_id": ObjectId(), **document}, None
            row, problem = stored_test_row(document, text)
            if row is not None:
                rows.append(row)
            else:
                refused.append(RefusedDocument(document, problem))

        def write(connection: sqlite3.Connection) -> None:
            with _transaction(connection):
                connection.executemany(insert_sql("test_runs", or_ignore=True), rows)

        if rows:
            await self._run("store test runs", write)
        return refused

    async def touch_run(self, run_oid: ObjectId, seen_at: datetime) -> None:
        """Move the run's heartbeat `last_seen_at` forward to `seen_at`."""

        def write(connection: sqlite3.Connection) -> None:
            _move_heartbeat(connection, str(run_oid), seen_at)

        await self._run("update a run's heartbeat", write)

    async def update_run(self, query: Filter, fields: Document, *, action: str) -> Document | None:
        """Set top-level `fields` on the first run matching `query`; the updated run, or None."""
        where = Where("evaluation_runs")
        condition = where.compile(query)

        def write(connection: sqlite3.Connection) -> Document | None:
            with _transaction(connection):
                found = connection.execute(
                    f"SELECT _id, doc FROM evaluation_runs WHERE {condition} "
                    "ORDER BY rowid LIMIT 1",
                    where.params,
                ).fetchone()
                if found is None:
                    return None
                document = decode_document(found["doc"])
                document.update(fields)
                what = f"evaluation run {document.get('evaluation_run_id')!r}"
                _check_size(document, what)
                text = _encoded(document, what)
                row = run_row(document, text)
                assignments = ", ".join(f"{name} = ?" for name in (*RUN_COLUMNS, "doc"))
                try:
                    connection.execute(
                        f"UPDATE evaluation_runs SET {assignments} WHERE _id = ?",
                        (*row, found["_id"]),
                    )
                except sqlite3.IntegrityError:
                    raise DuplicateRunError(f"{what} already exists") from None
                return decode_document(text)  # as stored: UTC, milliseconds

        return await self._run(action, write)

    async def delete(self, collection: Collection, query: Filter, *, action: str) -> int:
        """Delete the documents matching `query`; how many were deleted."""
        where = Where(collection)
        condition = where.compile(query)

        def write(connection: sqlite3.Connection) -> int:
            with _transaction(connection):
                cursor = connection.execute(
                    f"DELETE FROM {collection} WHERE {condition}", where.params
                )
                return cursor.rowcount

        return await self._run(action, write)

    # -- reads -------------------------------------------------------------------------

    async def read(
        self,
        collection: Collection,
        query: Filter,
        *,
        action: str,
        projection: Mapping[str, Any] | None,
        sort: Sort,
        limit: int,
    ) -> list[Document]:
        """The documents matching `query`, sorted, at most `limit` (0: all)."""
        where = Where(collection)
        sql = (
            f"SELECT doc FROM {collection} WHERE {where.compile(query)} "
            f"{order_by(collection, sort)}"
        )
        if limit:
            sql += f" LIMIT {int(limit)}"

        def select(connection: sqlite3.Connection) -> list[Document]:
            return [
                project(decode_document(row["doc"]), projection)
                for row in connection.execute(sql, where.params).fetchall()
            ]

        return await self._run(action, select)

    async def read_one(
        self,
        collection: Collection,
        query: Filter,
        *,
        action: str,
        projection: Mapping[str, Any] | None,
        sort: Sort,
    ) -> Document | None:
        """The first document matching `query` in `sort` order, or None."""
        found = await self.read(
            collection, query, action=action, projection=projection, sort=sort, limit=1
        )
        return found[0] if found else None

    async def rows(self, query: Query, *, action: str) -> list[Document]:
        """The rows of the query's SQL side."""

        def run(connection: sqlite3.Connection) -> list[Document]:
            def select(sql: str, match: Filter | None = None, **params: Any) -> list[Document]:
                where = Where(query.collection)
                condition = where.compile(match)
                rows: list[Document] = connection.execute(
                    sql.replace("{where}", condition), {**where.params, **params}
                ).fetchall()
                return rows

            return query.sql(select)

        return await self._run(action, run)

    async def count(self, collection: Collection, query: Filter, *, action: str) -> int:
        """How many documents match `query`."""
        where = Where(collection)
        sql = f"SELECT count(*) AS n FROM {collection} WHERE {where.compile(query)}"

        def select(connection: sqlite3.Connection) -> int:
            return int(connection.execute(sql, where.params).fetchone()["n"])

        return await self._run(action, select)

    async def distinct_values(
        self, collection: Collection, field: str, query: Filter, *, action: str
    ) -> list[Any]:
        """The distinct non-null values of a column among the documents matching `query`."""
        columns = table_columns(collection)
        if field not in columns or field == "experiment_tags":
            raise ValueError(f"the local store lists distinct values of columns, not {field!r}")
        holds_ids = field == "_id" or (
            collection != "evaluation_runs" and field == "evaluation_run_id"
        )
        where = Where(collection)
        sql = (
            f"SELECT DISTINCT {field} AS v FROM {collection} "
            f"WHERE {where.compile(query)} AND {field} IS NOT NULL ORDER BY {field}"
        )

        def select(connection: sqlite3.Connection) -> list[Any]:
            values = [row["v"] for row in connection.execute(sql, where.params).fetchall()]
            return [object_id(value) for value in values] if holds_ids else values

        return await self._run(action, select)


def _check_size(document: Document, what: str) -> None:
    """Refuse what MongoDB would refuse, so that `sync` can always push the local store."""
    problem = bson_problem(document)
    if problem is not None:
        raise InvalidDataError(f"the store refused {what}: {problem}")


def _encoded(document: Document, what: str) -> str:
    try:
        return encode_document(document)
    except (TypeError, ValueError) as exc:
        raise InvalidDataError(f"the store refused {what}: {exc}") from None


def _move_heartbeat(connection: sqlite3.Connection, oid: str, seen_at: datetime) -> None:
    """`last_seen_at` of the run set to `seen_at` unless it is later already (MongoDB's $max)."""
    text = json.dumps({"$date": format_date(seen_at)})
    connection.execute(
        "UPDATE evaluation_runs SET last_seen_at = :ms, "
        "doc = json_set(doc, '$.last_seen_at', json(:date)) "
        "WHERE _id = :oid AND (last_seen_at IS NULL OR last_seen_at < :ms)",
        {"ms": to_ms(seen_at), "date": text, "oid": oid},
    )


def _add_duration_column(connection: sqlite3.Connection) -> None:
    """Schema 5 on a store of schema 1 to 4 (inside the caller's transaction).

    `test_runs` gets its `duration_ms` column, filled from each row's `doc`, and the
    covering index `test_id_finished_at` is dropped so that the caller creates it again
    with the column in it. A failure rolls all of it back with the caller's transaction.
    """
    columns = {row["name"] for row in connection.execute("PRAGMA table_info(test_runs)")}
    if not columns:
        return  # no test_runs table yet: the caller creates it with the column
    if "duration_ms" not in columns:
        connection.execute("ALTER TABLE test_runs ADD COLUMN duration_ms")
    connection.execute(DURATION_FILL)
    connection.execute("DROP INDEX IF EXISTS test_id_finished_at")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds the lock."""
    text = str(error)
    return "locked" in text or "busy" in text


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Any:
    """One write transaction, taken at once (`BEGIN IMMEDIATE`), rolled back on error."""
    if connection.in_transaction:  # nested: the outer one commits
        yield
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        # SQLite has already rolled back after some errors (a full disk, an I/O error).
        if connection.in_transaction:
            with suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
