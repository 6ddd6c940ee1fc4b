"""MongoDBClient: the connection to MongoDB or to the embedded backend.

This is the only module that imports Motor, so that a later move to PyMongo's
own async client changes one file. The embedded backend (mongomock and
mongomock-motor) lives in `evalstore.storage.embedded`, imported only for `mongomock://`,
and its persisted form in `evalstore.storage.localstore`, imported only for `file://`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import IndexModel
from pymongo.errors import (
    ConfigurationError as PyMongoConfigurationError,
)
from pymongo.errors import (
    ConnectionFailure,
    OperationFailure,
    PyMongoError,
)

from evalstore.errors import (
    ConfigurationError,
    EvalstoreError,
    IndexConflictError,
    StorageUnavailableError,
)
from evalstore.redaction import redact_uri
from evalstore.settings import CONNECTION_SCHEMES, DEFAULT_DATABASE, Settings
from evalstore.storage.indexes import EVALUATION_RUNS, INDEXES, TEST_RUNS

log = logging.getLogger("evalstore")

EMBEDDED_SCHEME = "mongomock://"
LOCAL_SCHEME = "file://"
_START_HINT = (
    "start MongoDB with `docker compose up -d`, or set MONGODB_CONNECTION_STRING "
    "(use mongomock:// for the embedded backend)"
)
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


class MongoDBClient:
    """An async connection to one MongoDB database holding evalstore's two collections.

    Args:
        connection_string: `mongodb://…`, `mongodb+srv://…`, `mongomock://` for the
            embedded in-process backend, or `file:///absolute/dir` for the local store
            (the embedded backend persisted in a directory, one process at a time).
        database: the database name.
        timeout_ms: how long to wait for a server before giving up.

    The connection opens lazily on first use; indexes are created on first use too.
    Usable as `async with MongoDBClient(...) as client:`.
    """

    def __init__(
        self,
        connection_string: str = EMBEDDED_SCHEME,
        database: str = DEFAULT_DATABASE,
        *,
        timeout_ms: int = 5000,
    ) -> None:
        if not connection_string.startswith(CONNECTION_SCHEMES):
            raise ConfigurationError(
                f"invalid connection string {redact_uri(connection_string)!r}: "
                "it must start with " + ", ".join(CONNECTION_SCHEMES)
            )
        if connection_string.startswith(LOCAL_SCHEME):
            from evalstore.storage import localstore

            localstore.store_path(connection_string)  # a relative path is refused here
        self.connection_string = connection_string
        self.database_name = database
        self.timeout_ms = timeout_ms
        self._motor: Any = None
        self._indexes_ready = False
        self._index_lock: asyncio.Lock | None = None

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
        return redact_uri(self.connection_string)

    @property
    def is_embedded(self) -> bool:
        """True for the in-process `mongomock://` backend."""
        return self.connection_string.startswith(EMBEDDED_SCHEME)

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
        """Create the indexes once per client, on first use."""
        if self._indexes_ready:
            return
        if self._index_lock is None:
            self._index_lock = asyncio.Lock()
        async with self._index_lock:
            if not self._indexes_ready:
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
