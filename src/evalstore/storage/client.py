"""MongoDBClient: the connection to MongoDB or to the embedded backend, and the storage seam.

This is the only module that imports Motor and the only one that calls a
collection method: everything above `evalstore.storage` (the service, the
analysis queries, the recorder, sync) goes through the typed operations at the
end of `MongoDBClient` (`insert`, `upsert_run`, `upsert_test_runs`, `touch_run`,
`update_run`, `read`, `read_one`, `rows`, `count`, `distinct_values`, `delete`,
`create_indexes`), so that a driver change touches one file, `mypy --strict`
checks every database call, and a second engine can implement the same
operations. The embedded backend (mongomock and mongomock-motor) lives in
`evalstore.storage.embedded`, imported only for `mongomock://`, and its
persisted form in `evalstore.storage.localstore`, imported only for `file://`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import bson
from bson import ObjectId
from bson.errors import InvalidDocument
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import IndexModel, ReturnDocument, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)
from pymongo.errors import (
    ConfigurationError as PyMongoConfigurationError,
)

from evalstore.errors import (
    ConfigurationError,
    DuplicateRunError,
    EvalstoreError,
    IndexConflictError,
    InvalidDataError,
    StorageUnavailableError,
)
from evalstore.models import MAX_DOCUMENT_BYTES, Document
from evalstore.redaction import redact_connection_string, redact_uri
from evalstore.settings import (
    CONNECTION_SCHEMES,
    DEFAULT_CONNECTION_STRING,
    DEFAULT_DATABASE,
    MAX_TIMEOUT_MS,
    Settings,
)
from evalstore.storage.indexes import EVALUATION_RUNS, INDEXES, TEST_RUNS

log = logging.getLogger("evalstore")

Collection = Literal["evaluation_runs", "test_runs"]
"""The two collections evalstore keeps."""
Filter = Mapping[str, Any]
"""A MongoDB query filter."""
Sort = Sequence[tuple[str, int]]
"""Sort keys: `[(field, 1 or -1), ...]`."""
Pipeline = Sequence[Mapping[str, Any]]
"""An aggregation pipeline."""

EMBEDDED_SCHEME = "mongomock://"
LOCAL_SCHEME = "file://"
_START_HINT = (
    "start MongoDB with `docker compose up -d`, or set MONGODB_CONNECTION_STRING "
    "(use mongomock:// for the embedded backend)"
)
_DUPLICATE_KEY = 11000
# What encoding a document to BSON raises for a value MongoDB cannot hold (a NUL byte in a
# key, a lone surrogate, an integer beyond 64 bits, a document over the size limit).
_DATA_ERRORS = (InvalidDocument, DocumentTooLarge, UnicodeEncodeError, OverflowError)
# Error codes MongoDB uses when an index exists with the same name or keys but other options.
_INDEX_CONFLICT_CODES = {85, 86}
_UNAUTHORIZED = 13
_AUTHENTICATION_FAILED = 18


def _first_line(exc: BaseException) -> str:
    text = redact_uri(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_index_conflict(exc: OperationFailure) -> bool:
    # The embedded backend raises without a code; MongoDB says 85 or 86.
    return exc.code in _INDEX_CONFLICT_CODES or (
        exc.code is None and "already exists with different options" in str(exc)
    )


@dataclass(frozen=True)
class RefusedDocument:
    """A document the store would not take, and why (the others of its batch were stored)."""

    document: Document
    reason: str


def bson_problem(document: Document) -> str | None:
    """Why MongoDB would refuse `document` (it cannot be encoded, or it is too large), or None."""
    try:
        size = len(bson.encode(document))
    except _DATA_ERRORS as exc:
        return _first_line(exc)
    if size > MAX_DOCUMENT_BYTES:
        return f"the document is {size:,} bytes; MongoDB's limit is {MAX_DOCUMENT_BYTES:,}"
    return None


def _upserts(documents: Sequence[Document]) -> list[UpdateOne]:
    return [
        UpdateOne({"test_run_id": doc["test_run_id"]}, {"$setOnInsert": doc}, upsert=True)
        for doc in documents
    ]


def _refused_by_server(documents: Sequence[Document], exc: BulkWriteError) -> list[RefusedDocument]:
    """The documents an unordered bulk write refused (the others were written)."""
    refused = []
    for error in exc.details.get("writeErrors", []):
        if error.get("code") == _DUPLICATE_KEY:  # a concurrent upsert of the same test run won
            continue
        refused.append(RefusedDocument(documents[error["index"]], str(error.get("errmsg"))))
    return refused


class MongoDBClient:
    """An async connection to one MongoDB database holding evalstore's two collections.

    Args:
        connection_string: `mongodb://…`, `mongodb+srv://…`, `mongomock://` for the
            embedded in-process backend, or `file:///absolute/dir` for the local store
            (the embedded backend persisted in a directory, one process at a time);
            the same default as the settings' `MONGODB_CONNECTION_STRING`.
        database: the database name.
        timeout_ms: how long to wait for a server before giving up.

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
        self._motor: Any = None
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
    def is_local(self) -> bool:
        """True for the local store (`file:///absolute/dir`)."""
        return self.connection_string.startswith(LOCAL_SCHEME)

    def _client(self) -> Any:
        if self._motor is None:
            if self.is_embedded:
                from evalstore.storage import embedded

                self._motor = embedded.open_client()
            elif self.is_local:
                from evalstore.storage import localstore

                self._motor = localstore.open_client(self.connection_string)
            else:
                try:
                    self._motor = AsyncIOMotorClient(
                        self.connection_string,
                        serverSelectionTimeoutMS=self.timeout_ms,
                        connectTimeoutMS=self.timeout_ms,
                        tz_aware=True,
                        appname="evalstore",
                    )
                except (PyMongoConfigurationError, ValueError, TypeError) as exc:
                    raise ConfigurationError(
                        f"invalid connection string {self.redacted_uri!r}: {redact_uri(str(exc))}"
                    ) from None
        return self._motor

    @property
    def db(self) -> Any:
        """The Motor database (for raw queries)."""
        return self._client()[self.database_name]

    @property
    def evaluation_runs(self) -> Any:
        """The `evaluation_runs` collection."""
        return self.db[EVALUATION_RUNS]

    @property
    def test_runs(self) -> Any:
        """The `test_runs` collection."""
        return self.db[TEST_RUNS]

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn driver errors raised inside the block into one-line evalstore errors.

        Args:
            action: what was being done, for the message (e.g. "save a test run").
        """
        try:
            yield
        except EvalstoreError:
            raise
        except ConnectionFailure as exc:
            raise StorageUnavailableError(
                f"cannot reach MongoDB at {self.redacted_uri} (no answer within "
                f"{self.timeout_ms} ms, {type(exc).__name__}); {_START_HINT}"
            ) from None
        except OperationFailure as exc:
            if exc.code == _AUTHENTICATION_FAILED:
                raise StorageUnavailableError(
                    f"MongoDB at {self.redacted_uri} refused the credentials: "
                    "check the user and password in MONGODB_CONNECTION_STRING"
                ) from None
            if exc.code == _UNAUTHORIZED:
                raise StorageUnavailableError(
                    f"cannot {action}: the MongoDB user of {self.redacted_uri} lacks the "
                    "permission; grant it readWrite on the database"
                ) from None
            raise StorageUnavailableError(
                f"cannot {action}: MongoDB at {self.redacted_uri} answered: {_first_line(exc)}"
            ) from None
        except PyMongoConfigurationError as exc:
            raise ConfigurationError(
                f"invalid connection string {self.redacted_uri!r}: {redact_uri(str(exc))}"
            ) from None
        except PyMongoError as exc:
            raise StorageUnavailableError(
                f"cannot {action}: MongoDB at {self.redacted_uri}: {_first_line(exc)}"
            ) from None

    async def ping(self) -> float:
        """Check that the server answers; return the round trip in milliseconds.

        Raises:
            StorageUnavailableError: the server cannot be reached within the timeout.
        """
        loop = asyncio.get_running_loop()
        with self.errors("ping"):
            start = loop.time()
            await self._client().admin.command("ping")
            return (loop.time() - start) * 1000.0

    async def create_indexes(self) -> list[str]:
        """Create evalstore's indexes on both collections (idempotent); return their names.

        Raises:
            IndexConflictError: an index with one of evalstore's names or keys exists
                with other options.
        """
        names: list[str] = []
        for collection in (EVALUATION_RUNS, TEST_RUNS):
            specs = [spec for spec in INDEXES if spec.collection == collection]
            models = [
                IndexModel(list(spec.keys), name=spec.name, unique=spec.unique) for spec in specs
            ]
            with self.errors(f"create indexes on {collection}"):
                try:
                    names += await self.db[collection].create_indexes(models)
                except OperationFailure as exc:
                    if not _is_index_conflict(exc):
                        raise
                    raise IndexConflictError(
                        f"an index on {collection} conflicts with evalstore's: "
                        f"{_first_line(exc)}; drop it (db.{collection}.dropIndex(NAME)) "
                        "and run `evalstore indexes` again"
                    ) from None
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
            cause = exc.__context__
            if not (isinstance(cause, OperationFailure) and cause.code == _UNAUTHORIZED):
                raise
            # A read-only user can still query: say so once and go on.
            log.warning("evalstore could not create its indexes: %s", exc)
            self._indexes_ready = True

    async def list_indexes(self) -> dict[str, list[dict[str, Any]]]:
        """The indexes that exist on both collections: name, keys and uniqueness."""
        result: dict[str, list[dict[str, Any]]] = {}
        for collection in (EVALUATION_RUNS, TEST_RUNS):
            with self.errors(f"list indexes of {collection}"):
                info = await self.db[collection].index_information()
            result[collection] = [
                {
                    "name": name,
                    "keys": [(field, int(direction)) for field, direction in spec["key"]],
                    "unique": bool(spec.get("unique", False)),
                }
                for name, spec in sorted(info.items())
            ]
        return result

    async def close(self) -> None:
        """Close the connection (the embedded backend keeps its data for the process).

        For a local store, the last client of the process to close releases its lock.
        """
        if self._motor is not None:
            self._motor.close()
            self._motor = None
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
    # the indexes on first use and turns driver errors into one-line evalstore errors
    # that name `action`.

    async def _ready(self) -> None:
        await self.ensure_indexes()

    def _collection(self, name: Collection) -> Any:
        return self.evaluation_runs if name == EVALUATION_RUNS else self.test_runs

    async def insert(self, collection: Collection, document: Document, *, what: str) -> Any:
        """Insert one new document; return its `_id`.

        Raises:
            DuplicateRunError: `what` (e.g. "evaluation run 'x'") already exists.
        """
        await self._ready()
        with self.errors(f"store {what}"):
            try:
                result = await self._collection(collection).insert_one(document)
            except DuplicateKeyError:
                raise DuplicateRunError(f"{what} already exists") from None
        return result.inserted_id

    async def upsert_run(self, document: Document) -> bool:
        """Store a run document (with its `_id`) unless stored; True when this call stored it.

        Keyed on `_id` and `evaluation_run_id` with `$setOnInsert`, so storing it
        again never overwrites or duplicates; `last_seen_at` only moves forward.

        Raises:
            DuplicateRunError: another run already has this `evaluation_run_id`.
        """
        await self._ready()
        keys = ("_id", "evaluation_run_id", "last_seen_at")  # the first two come from the filter
        fields = {k: v for k, v in document.items() if k not in keys}
        update: Document = {"$setOnInsert": fields}
        if document.get("last_seen_at") is not None:
            update["$max"] = {"last_seen_at": document["last_seen_at"]}
        with self.errors("store an evaluation run"):
            try:
                result = await self.evaluation_runs.update_one(
                    {"_id": document["_id"], "evaluation_run_id": document["evaluation_run_id"]},
                    update,
                    upsert=True,
                )
            except DuplicateKeyError:
                raise DuplicateRunError(
                    f"evaluation run {document['evaluation_run_id']!r} already exists"
                ) from None
            except _DATA_ERRORS as exc:
                raise InvalidDataError(
                    f"the store refused evaluation run {document.get('evaluation_run_id')!r}: "
                    f"{_first_line(exc)}"
                ) from None
        return result.upserted_id is not None

    async def upsert_test_runs(self, documents: Sequence[Document]) -> list[RefusedDocument]:
        """Store the test runs not stored yet, in one unordered bulk write (none if empty).

        Each is upserted on `test_run_id` with `$setOnInsert` of the whole
        document, so writing one twice leaves exactly one, unchanged. A document
        the store refuses (it cannot be encoded, it is too large, the server
        rejects it) does not hold the others back: they are stored, and it is
        returned with the reason. A data problem is never reported as the store
        being unavailable.

        Returns:
            The refused documents (usually none).
        """
        if not documents:
            return []
        await self._ready()
        try:
            with self.errors("store test runs"):
                try:
                    await self.test_runs.bulk_write(_upserts(documents), ordered=False)
                except BulkWriteError as exc:
                    return _refused_by_server(documents, exc)
            return []
        except _DATA_ERRORS:
            pass  # one document of the batch cannot be stored: find it, store the others
        refused, good = [], []
        for document in documents:
            problem = bson_problem(document)
            if problem is None:
                good.append(document)
            else:
                refused.append(RefusedDocument(document, problem))
        if len(good) == len(documents):  # nothing to isolate: a problem of the whole write
            raise InvalidDataError("the store refused a batch of test runs for no one document")
        return refused + await self.upsert_test_runs(good)

    async def touch_run(self, run_oid: ObjectId, seen_at: datetime) -> None:
        """Move the run's heartbeat `last_seen_at` forward to `seen_at`."""
        await self._ready()
        with self.errors("update a run's heartbeat"):
            await self.evaluation_runs.update_one(
                {"_id": run_oid}, {"$max": {"last_seen_at": seen_at}}
            )

    async def update_run(self, query: Filter, fields: Document, *, action: str) -> Document | None:
        """Set `fields` on the first run matching `query`; the updated run, or None if none."""
        await self._ready()
        with self.errors(action):
            updated: Document | None = await self.evaluation_runs.find_one_and_update(
                dict(query), {"$set": fields}, return_document=ReturnDocument.AFTER
            )
        return updated

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
        await self._ready()
        with self.errors(action):
            cursor = self._collection(collection).find(dict(query), projection)
            if sort:
                cursor = cursor.sort(list(sort))
            if limit:
                cursor = cursor.limit(limit)
            found: list[Document] = await cursor.to_list(None)
        return found

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
        await self._ready()
        with self.errors(action):
            found: Document | None = await self._collection(collection).find_one(
                dict(query), projection, sort=list(sort) or None
            )
        return found

    async def rows(
        self, collection: Collection, pipeline: Pipeline, *, action: str
    ) -> list[Document]:
        """The plain rows an aggregation pipeline returns."""
        await self._ready()
        with self.errors(action):
            found: list[Document] = (
                await self._collection(collection).aggregate(list(pipeline)).to_list(None)
            )
        return found

    async def count(self, collection: Collection, query: Filter, *, action: str) -> int:
        """How many documents match `query`."""
        await self._ready()
        with self.errors(action):
            return int(await self._collection(collection).count_documents(dict(query)))

    async def distinct_values(
        self, collection: Collection, field: str, query: Filter, *, action: str
    ) -> list[Any]:
        """The distinct values of `field` among the documents matching `query`."""
        await self._ready()
        with self.errors(action):
            values: list[Any] = await self._collection(collection).distinct(field, dict(query))
        return values

    async def delete(self, collection: Collection, query: Filter, *, action: str) -> int:
        """Delete the documents matching `query`; return how many were deleted."""
        await self._ready()
        with self.errors(action):
            result = await self._collection(collection).delete_many(dict(query))
        return int(result.deleted_count)
