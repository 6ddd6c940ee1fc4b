"""The MongoDB engine: a server through PyMongo's `AsyncMongoClient`, or `mongomock://`.

The only module that talks to a MongoDB driver. Real servers go through
PyMongo's own async API (Motor reached end of life in 2026); the in-process
test double (`mongomock://`) is mongomock-motor, opened by
`evalstore.storage.embedded`. Both expose the same collection methods except
that PyMongo's `aggregate` and `close` are coroutines, which `_maybe_await` absorbs.
Driver errors become one-line evalstore errors with the password masked.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidDocument
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
from evalstore.models import Document
from evalstore.redaction import redact_uri
from evalstore.storage.engine import (
    Collection,
    EncodedTestRun,
    Filter,
    Query,
    RefusedDocument,
    Sort,
    bson_problem,
    first_line,
)
from evalstore.storage.indexes import (
    ALERTS,
    EVALUATION_RUNS,
    INDEXES,
    POINTS,
    TEST_RUNS,
    USAGE,
)

log = logging.getLogger("evalstore")

START_HINT = (
    "start MongoDB with `docker compose up -d`, or set MONGODB_CONNECTION_STRING "
    "(use mongomock:// for the embedded backend, file:///absolute/dir for the local store)"
)
_DUPLICATE_KEY = 11000
# What encoding a document to BSON raises for a value MongoDB cannot hold (a NUL byte in a
# key, a lone surrogate, an integer beyond 64 bits, a document over the size limit).
_DATA_ERRORS = (InvalidDocument, DocumentTooLarge, UnicodeEncodeError, OverflowError)
# Error codes MongoDB uses when an index exists with the same name or keys but other options.
_INDEX_CONFLICT_CODES = {85, 86}
_UNAUTHORIZED = 13
_AUTHENTICATION_FAILED = 18


def _is_index_conflict(exc: OperationFailure) -> bool:
    # The embedded backend raises without a code; MongoDB says 85 or 86.
    return exc.code in _INDEX_CONFLICT_CODES or (
        exc.code is None and "already exists with different options" in str(exc)
    )


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


async def _maybe_await(value: Any) -> Any:
    """PyMongo's async `aggregate` and `close` are coroutines; mongomock-motor's are not."""
    return await value if inspect.isawaitable(value) else value


class MongoEngine:
    """evalstore's reads and writes on one MongoDB database (or the embedded backend).

    Args:
        connection_string: `mongodb://…`, `mongodb+srv://…` or `mongomock://`.
        database: the database name.
        timeout_ms: how long to wait for a server.
        redacted_uri: the connection string with the password masked, for messages.
    """

    def __init__(
        self, connection_string: str, database: str, *, timeout_ms: int, redacted_uri: str
    ) -> None:
        self.connection_string = connection_string
        self.database_name = database
        self.timeout_ms = timeout_ms
        self.redacted_uri = redacted_uri
        self.is_embedded = connection_string.startswith("mongomock://")
        self._driver: Any = None

    def client(self) -> Any:
        """The driver's client, created on first use (it connects lazily)."""
        if self._driver is None:
            if self.is_embedded:
                from evalstore.storage import embedded

                self._driver = embedded.open_client()
            else:
                from pymongo import AsyncMongoClient

                try:
                    self._driver = AsyncMongoClient(
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
        return self._driver

    @property
    def db(self) -> Any:
        """The driver's database object (for raw queries)."""
        return self.client()[self.database_name]

    def _collection(self, name: str) -> Any:
        """The driver's collection `name` (the one place reads and writes get it from)."""
        return self.db[name]

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
                f"{self.timeout_ms} ms, {type(exc).__name__}); {START_HINT}"
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
                f"cannot {action}: MongoDB at {self.redacted_uri} answered: {first_line(exc)}"
            ) from None
        except PyMongoConfigurationError as exc:
            raise ConfigurationError(
                f"invalid connection string {self.redacted_uri!r}: {redact_uri(str(exc))}"
            ) from None
        except PyMongoError as exc:
            raise StorageUnavailableError(
                f"cannot {action}: MongoDB at {self.redacted_uri}: {first_line(exc)}"
            ) from None

    async def ping(self) -> float:
        """Check that the server answers; the round trip in milliseconds."""
        loop = asyncio.get_running_loop()
        with self.errors("ping"):
            start = loop.time()
            await self.client().admin.command("ping")
            return (loop.time() - start) * 1000.0

    async def create_indexes(self) -> list[str]:
        """Create evalstore's indexes on both collections (idempotent); their names."""
        names: list[str] = []
        for collection in (EVALUATION_RUNS, TEST_RUNS, USAGE, POINTS, ALERTS):
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
                        f"{first_line(exc)}; drop it (db.{collection}.dropIndex(NAME)) "
                        "and run `evalstore indexes` again"
                    ) from None
        return names

    def may_skip_indexes(self, exc: StorageUnavailableError) -> bool:
        """True when creating the indexes failed only for lack of permission (reads still work)."""
        cause = exc.__context__
        return isinstance(cause, OperationFailure) and cause.code == _UNAUTHORIZED

    async def list_indexes(self) -> dict[str, list[dict[str, Any]]]:
        """The indexes that exist on both collections: name, keys and uniqueness."""
        result: dict[str, list[dict[str, Any]]] = {}
        for collection in (EVALUATION_RUNS, TEST_RUNS, USAGE, POINTS, ALERTS):
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
        """Close the connection (the embedded backend keeps its data for the process)."""
        if self._driver is not None:
            driver, self._driver = self._driver, None
            await _maybe_await(driver.close())

    async def drop_database(self) -> None:
        """Delete the database and everything in it."""
        with self.errors("drop the database"):
            await self.client().drop_database(self.database_name)

    async def insert(self, collection: Collection, document: Document, *, what: str) -> Any:
        """Insert one new document; its `_id`."""
        with self.errors(f"store {what}"):
            try:
                result = await self._collection(collection).insert_one(document)
            except DuplicateKeyError:
                raise DuplicateRunError(f"{what} already exists") from None
        return result.inserted_id

    async def replace(self, collection: Collection, document: Document, *, what: str) -> None:
        """Store `document` whole under its `_id`, replacing the one stored there."""
        with self.errors(f"store {what}"):
            await self._collection(collection).replace_one(
                {"_id": document["_id"]}, document, upsert=True
            )

    async def insert_usage(self, documents: Sequence[Document]) -> None:
        """Store the usage records not stored yet (keyed on `usage_id`), unordered."""
        if not documents:
            return
        upserts = [
            UpdateOne({"usage_id": doc["usage_id"]}, {"$setOnInsert": doc}, upsert=True)
            for doc in documents
        ]
        with self.errors("store usage"):
            try:
                await self._collection(USAGE).bulk_write(upserts, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                others = [e for e in errors if e.get("code") != _DUPLICATE_KEY]
                if others:  # validated at the door: only a server's own limits get here
                    raise InvalidDataError(
                        f"the store refused usage: {others[0].get('errmsg')}"
                    ) from None

    async def upsert_points(self, documents: Sequence[Document]) -> None:
        """Store metric points in one unordered bulk write; a point logged again replaces it."""
        if not documents:
            return
        # A point's _id derives from its key (run, metric, split, step): the _id index is
        # the key's unique index. New points are inserted; points already there (a step
        # logged again, a replay) get their new value.
        collection = self._collection(POINTS)
        ids = [doc["_id"] for doc in documents]
        with self.errors("store metric points"):
            found = collection.find({"_id": {"$in": ids}}, {"_id": 1})
            existing = {doc["_id"] for doc in await found.to_list(None)}
            new = [doc for doc in documents if doc["_id"] not in existing]
            if new:
                try:
                    await collection.insert_many(new, ordered=False)
                except BulkWriteError as exc:
                    errors = exc.details.get("writeErrors", [])
                    if not all(e.get("code") == _DUPLICATE_KEY for e in errors):
                        raise InvalidDataError(
                            f"the store refused metric points: {errors[0].get('errmsg')}"
                        ) from None
                    # another writer inserted these first: they get their value below
                    existing |= {new[e["index"]]["_id"] for e in errors}
            if existing:
                await collection.bulk_write(
                    [
                        UpdateOne(
                            {"_id": doc["_id"]},
                            {"$set": {"value": doc["value"], "recorded_at": doc["recorded_at"]}},
                        )
                        for doc in documents
                        if doc["_id"] in existing
                    ],
                    ordered=False,
                )

    async def upsert_run(self, document: Document) -> bool:
        """Store a run document unless stored; True when this call stored it."""
        keys = ("_id", "evaluation_run_id", "last_seen_at")  # the first two come from the filter
        fields = {k: v for k, v in document.items() if k not in keys}
        update: Document = {"$setOnInsert": fields}
        if document.get("last_seen_at") is not None:
            update["$max"] = {"last_seen_at": document["last_seen_at"]}
        with self.errors("store an evaluation run"):
            try:
                result = await self._collection(EVALUATION_RUNS).update_one(
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
                    f"{first_line(exc)}"
                ) from None
        return result.upserted_id is not None

    async def upsert_test_runs(
        self, documents: Sequence[Document], encoded: Sequence[EncodedTestRun | None] | None = None
    ) -> list[RefusedDocument]:
        """Store the test runs not stored yet in one unordered bulk write; the refused ones.

        `encoded` (the documents' JSON text) is of no use to the driver, which writes BSON.
        """
        if not documents:
            return []
        try:
            with self.errors("store test runs"):
                try:
                    await self._collection(TEST_RUNS).bulk_write(_upserts(documents), ordered=False)
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
        with self.errors("update a run's heartbeat"):
            await self._collection(EVALUATION_RUNS).update_one(
                {"_id": run_oid}, {"$max": {"last_seen_at": seen_at}}
            )

    async def update_run(self, query: Filter, fields: Document, *, action: str) -> Document | None:
        """Set `fields` on the first run matching `query`; the updated run, or None if none."""
        with self.errors(action):
            updated: Document | None = await self._collection(EVALUATION_RUNS).find_one_and_update(
                dict(query), {"$set": fields}, return_document=ReturnDocument.AFTER
            )
        return updated

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
        projection: Mapping[str, Any] | None,
        sort: Sort,
    ) -> Document | None:
        """The first document matching `query` in `sort` order, or None."""
        with self.errors(action):
            found: Document | None = await self._collection(collection).find_one(
                dict(query), projection, sort=list(sort) or None
            )
        return found

    async def rows(self, query: Query, *, action: str) -> list[Document]:
        """The rows of the query's pipeline."""
        with self.errors(action):
            cursor = await _maybe_await(
                self._collection(query.collection).aggregate(list(query.pipeline))
            )
            found: list[Document] = await cursor.to_list(None)
        return found

    async def count(self, collection: Collection, query: Filter, *, action: str) -> int:
        """How many documents match `query`."""
        with self.errors(action):
            return int(await self._collection(collection).count_documents(dict(query)))

    async def distinct_values(
        self, collection: Collection, field: str, query: Filter, *, action: str
    ) -> list[Any]:
        """The distinct values of `field` among the documents matching `query`."""
        with self.errors(action):
            values: list[Any] = await self._collection(collection).distinct(field, dict(query))
        return values

    async def delete(self, collection: Collection, query: Filter, *, action: str) -> int:
        """Delete the documents matching `query`; how many were deleted."""
        with self.errors(action):
            result = await self._collection(collection).delete_many(dict(query))
        return int(result.deleted_count)
