"""MongoDBClient: one database of evalstore's history, and the storage seam.

Everything above `evalstore.storage` (the service, the analysis queries, the
recorder, sync) goes through the typed operations of `MongoDBClient`
(`insert`, `upsert_run`, `upsert_test_runs`, `touch_run`, `update_run`, `read`,
`read_one`, `rows`, `count`, `distinct_values`, `delete`, `create_indexes`).
The client hands each one to the engine its connection string names:

- `mongodb://…`, `mongodb+srv://…`: MongoDB through PyMongo's async client, and
  `mongomock://`: the in-process test double (`evalstore.storage.mongo`);
- `file:///absolute/dir`: the local store, SQLite files in that directory
  (`evalstore.storage.sqlite`).

Engines are imported on first use, so choosing one never loads the other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from evalstore.errors import ConfigurationError, StorageUnavailableError
from evalstore.models import Document
from evalstore.redaction import redact_connection_string
from evalstore.settings import (
    CONNECTION_SCHEMES,
    DEFAULT_CONNECTION_STRING,
    DEFAULT_DATABASE,
    MAX_TIMEOUT_MS,
    Settings,
)
from evalstore.storage.engine import (
    Collection,
    EncodedTestRun,
    Engine,
    Filter,
    Pipeline,
    Query,
    RefusedDocument,
    Sort,
    bson_problem,
)

if TYPE_CHECKING:
    from evalstore.storage.mongo import MongoEngine

__all__ = [
    "EMBEDDED_SCHEME",
    "LOCAL_SCHEME",
    "Collection",
    "Filter",
    "MongoDBClient",
    "Pipeline",
    "Query",
    "RefusedDocument",
    "Sort",
    "bson_problem",
]

log = logging.getLogger("evalstore")

EMBEDDED_SCHEME = "mongomock://"
LOCAL_SCHEME = "file://"


class MongoDBClient:
    """An async connection to one database of evalstore's history, on either engine.

    Args:
        connection_string: `mongodb://…`, `mongodb+srv://…`, `mongomock://` for the
            embedded in-process test double, or `file:///absolute/dir` for the local
            store (SQLite files in that directory; several processes may write at once);
            the same default as the settings' `MONGODB_CONNECTION_STRING`.
        database: the database name.
        timeout_ms: how long to wait for a server (or, on the local store, for
            another process's write) before giving up.

    The connection opens lazily on first use; indexes are created on first use too.
    Usable as `async with MongoDBClient(...) as client:`.
    """

    def __init__(
        self,
        connection_string: str = DEFAULT_CONNECTION_STRING,
        database: str = DEFAULT_DATABASE,
        *,
        timeout_ms: int = 5000,
    ) -> None:
        if not connection_string.startswith(CONNECTION_SCHEMES):
            raise ConfigurationError(
                f"invalid connection string {redact_connection_string(connection_string)!r}: "
                "it must start with " + ", ".join(CONNECTION_SCHEMES)
            )
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int):
            raise ConfigurationError(f"timeout_ms must be a whole number, got {timeout_ms!r}")
        if not 0 < timeout_ms <= MAX_TIMEOUT_MS:
            raise ConfigurationError(
                f"timeout_ms must be from 1 to {MAX_TIMEOUT_MS} milliseconds (pymongo's limit), "
                f"got {timeout_ms}"
            )
        if connection_string.startswith(LOCAL_SCHEME):
            from evalstore.storage import localstore

            localstore.store_path(connection_string)  # a relative path is refused here
        self.connection_string = connection_string
        self.database_name = database
        self.timeout_ms = timeout_ms
        self._engine: Engine | None = None
        self._indexes_ready = False
        self._index_attempt: asyncio.Future[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MongoDBClient:
        """A client for the connection string, database and timeout in `settings`."""
        return cls(
            settings.mongodb_connection_string,
            settings.mongodb_database,
            timeout_ms=settings.mongodb_timeout_ms,
        )

    @property
    def redacted_uri(self) -> str:
        """The connection string with any password replaced by `***`, safe to show."""
        return redact_connection_string(self.connection_string)

    @property
    def is_embedded(self) -> bool:
        """True for the in-process `mongomock://` backend."""
        return self.connection_string.startswith(EMBEDDED_SCHEME)

    @property
    def is_local(self) -> bool:
        """True for the local store (`file:///absolute/dir`)."""
        return self.connection_string.startswith(LOCAL_SCHEME)

    @property
    def store_kind(self) -> str:
        """What messages call this store: MongoDB, the local store or the embedded backend."""
        if self.is_local:
            return "the local store"
        return "the embedded backend" if self.is_embedded else "MongoDB"

    @property
    def store_description(self) -> str:
        """The store and where it is, safe to show: `MongoDB at mongodb://u:***@db:27017`."""
        if self.is_local:
            from evalstore.storage import localstore

            return f"the local store at {localstore.store_path(self.connection_string)}"
        return "the embedded backend" if self.is_embedded else f"MongoDB at {self.redacted_uri}"

    @property
    def engine(self) -> Engine:
        """The engine answering this client's operations (created on first use)."""
        if self._engine is None:
            if self.is_local:
                from evalstore.storage import localstore
                from evalstore.storage.sqlite.engine import SqliteEngine

                root = localstore.store_path(self.connection_string)
                self._engine = SqliteEngine(root, self.database_name, timeout_ms=self.timeout_ms)
            else:
                from evalstore.storage.mongo import MongoEngine

                self._engine = MongoEngine(
                    self.connection_string,
                    self.database_name,
                    timeout_ms=self.timeout_ms,
                    redacted_uri=self.redacted_uri,
                )
        return self._engine

    def _mongo(self) -> MongoEngine:
        from evalstore.storage.mongo import MongoEngine

        engine = self.engine
        if not isinstance(engine, MongoEngine):
            raise ConfigurationError(
                "raw collections exist on MongoDB and mongomock:// only; "
                f"{self.store_description} answers through the client's operations"
            )
        return engine

    @property
    def db(self) -> Any:
        """The driver's database (for raw queries; MongoDB and `mongomock://` only)."""
        return self._mongo().db

    @property
    def evaluation_runs(self) -> Any:
        """The `evaluation_runs` collection (MongoDB and `mongomock://` only)."""
        return self.db["evaluation_runs"]

    @property
    def test_runs(self) -> Any:
        """The `test_runs` collection (MongoDB and `mongomock://` only)."""
        return self.db["test_runs"]

    async def ping(self) -> float:
        """Check that the store answers; return the round trip in milliseconds.

        Raises:
            StorageUnavailableError: the server cannot be reached within the timeout.
        """
        return await self.engine.ping()

    async def create_indexes(self) -> list[str]:
        """Create evalstore's indexes on both collections (idempotent); return their names.

        Raises:
            IndexConflictError: an index with one of evalstore's names or keys exists
                with other options.
        """
        names = await self.engine.create_indexes()
        self._indexes_ready = True
        return names

    async def ensure_indexes(self) -> None:
        """Create the indexes once per client, on first use.

        Concurrent callers share one attempt rather than queueing behind a lock:
        with the server down, fifty runs starting together wait one timeout, not
        fifty. A failed attempt is not kept, so the next call tries again.
        """
        if self._indexes_ready:
            return
        attempt = self._index_attempt
        if attempt is None or attempt.get_loop() is not asyncio.get_running_loop():
            attempt = self._index_attempt = asyncio.ensure_future(self._create_indexes_once())
            attempt.add_done_callback(self._forget_failed_attempt)
        await asyncio.shield(attempt)

    def _forget_failed_attempt(self, attempt: asyncio.Future[None]) -> None:
        if self._index_attempt is attempt and (attempt.cancelled() or attempt.exception()):
            self._index_attempt = None

    async def _create_indexes_once(self) -> None:
        try:
            await self.create_indexes()
        except StorageUnavailableError as exc:
            from evalstore.storage.mongo import MongoEngine

            engine = self.engine
            if not (isinstance(engine, MongoEngine) and engine.may_skip_indexes(exc)):
                raise
            # A read-only user can still query: say so once and go on.
            log.warning("evalstore could not create its indexes: %s", exc)
            self._indexes_ready = True

    async def list_indexes(self) -> dict[str, list[dict[str, Any]]]:
        """The indexes that exist on both collections: name, keys and uniqueness."""
        return await self.engine.list_indexes()

    async def drop_database(self) -> None:
        """Delete this client's database and everything in it (tests and benchmarks)."""
        await self.engine.drop_database()
        self._indexes_ready = False
        self._index_attempt = None

    async def close(self) -> None:
        """Close the connection (the embedded backend keeps its data for the process)."""
        if self._engine is not None:
            await self._engine.close()
            self._engine = None
        self._indexes_ready = False
        self._index_attempt = None

    async def __aenter__(self) -> MongoDBClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"MongoDBClient({self.redacted_uri!r}, {self.database_name!r})"

    # The storage seam: every read and write evalstore makes. Each operation creates
    # the indexes on first use and turns engine errors into one-line evalstore errors
    # that name `action`.

    async def insert(self, collection: Collection, document: Document, *, what: str) -> Any:
        """Insert one new document; return its `_id`.

        Raises:
            DuplicateRunError: `what` (e.g. "evaluation run 'x'") already exists.
        """
        await self.ensure_indexes()
        return await self.engine.insert(collection, document, what=what)

    async def replace(self, collection: Collection, document: Document, *, what: str) -> None:
        """Store `document` (with its `_id`) whole, replacing the one stored under that `_id`."""
        await self.ensure_indexes()
        await self.engine.replace(collection, document, what=what)

    async def upsert_points(self, documents: Sequence[Document]) -> None:
        """Store metric points; a point of the same run, metric, split and step is replaced."""
        await self.ensure_indexes()
        await self.engine.upsert_points(documents)

    async def insert_usage(self, documents: Sequence[Document]) -> None:
        """Store usage records (with `usage_id`) not stored yet; storing one again does nothing."""
        await self.ensure_indexes()
        await self.engine.insert_usage(documents)

    async def upsert_run(self, document: Document) -> bool:
        """Store a run document (with its `_id`) unless stored; True when this call stored it.

        Keyed on `_id` and `evaluation_run_id` with `$setOnInsert`, so storing it
        again never overwrites or duplicates; `last_seen_at` only moves forward.

        Raises:
            DuplicateRunError: another run already has this `evaluation_run_id`.
        """
        await self.ensure_indexes()
        return await self.engine.upsert_run(document)

    async def upsert_test_runs(
        self, documents: Sequence[Document], encoded: Sequence[EncodedTestRun | None] | None = None
    ) -> list[RefusedDocument]:
        """Store the test runs not stored yet, in one write (none if empty).

        Each is upserted on `test_run_id` with `$setOnInsert` of the whole
        document, so writing one twice leaves exactly one, unchanged. A document
        the store refuses (it cannot be encoded, it is too large, the server
        rejects it) does not hold the others back: they are stored, and it is
        returned with the reason. A data problem is never reported as the store
        being unavailable.

        Args:
            documents: the test run documents.
            encoded: for each document, its text as the journal wrote it (or None): the
                local store keeps that text rather than encoding the document again.

        Returns:
            The refused documents (usually none).
        """
        if not documents:
            return []
        await self.ensure_indexes()
        return await self.engine.upsert_test_runs(documents, encoded)

    async def touch_run(self, run_oid: ObjectId, seen_at: datetime) -> None:
        """Move the run's heartbeat `last_seen_at` forward to `seen_at`."""
        await self.ensure_indexes()
        await self.engine.touch_run(run_oid, seen_at)

    async def update_run(self, query: Filter, fields: Document, *, action: str) -> Document | None:
        """Set `fields` on the first run matching `query`; the updated run, or None if none."""
        await self.ensure_indexes()
        return await self.engine.update_run(query, fields, action=action)

    async def read(
        self,
        collection: Collection,
        query: Filter,
        *,
        action: str,
        projection: Mapping[str, Any] | None = None,
        sort: Sort = (),
        limit: int = 0,
    ) -> list[Document]:
        """The documents matching `query`, sorted, at most `limit` (0: all)."""
        await self.ensure_indexes()
        return await self.engine.read(
            collection, query, action=action, projection=projection, sort=sort, limit=limit
        )

    async def read_one(
        self,
        collection: Collection,
        query: Filter,
        *,
        action: str,
        projection: Mapping[str, Any] | None = None,
        sort: Sort = (),
    ) -> Document | None:
        """The first document matching `query` in `sort` order, or None."""
        await self.ensure_indexes()
        return await self.engine.read_one(
            collection, query, action=action, projection=projection, sort=sort
        )

    async def rows(self, query: Query, *, action: str) -> list[Document]:
        """The rows of a history query: its pipeline on MongoDB, its SQL on the local store."""
        await self.ensure_indexes()
        return await self.engine.rows(query, action=action)

    async def count(self, collection: Collection, query: Filter, *, action: str) -> int:
        """How many documents match `query`."""
        await self.ensure_indexes()
        return await self.engine.count(collection, query, action=action)

    async def distinct_values(
        self, collection: Collection, field: str, query: Filter, *, action: str
    ) -> list[Any]:
        """The distinct values of `field` among the documents matching `query`."""
        await self.ensure_indexes()
        return await self.engine.distinct_values(collection, field, query, action=action)

    async def delete(self, collection: Collection, query: Filter, *, action: str) -> int:
        """Delete the documents matching `query`; return how many were deleted."""
        await self.ensure_indexes()
        return await self.engine.delete(collection, query, action=action)
