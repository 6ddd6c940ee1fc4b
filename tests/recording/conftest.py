"""Helpers for the durability tests: a collection proxy that fails on purpose, spool access."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from engine_wrappers import WrappedCollections
from pymongo.errors import AutoReconnect

from evalstore import MetricsStorageService, MongoDBClient
from evalstore.recording.replay import ReplayReport, replay_spool

EMBEDDED = "mongomock://"


class FailingBulkWrite:
    """Wraps a collection: the `bulk_write` calls numbered in `fails(n)` raise AutoReconnect.

    With `after_write=True` the write is applied first and only the
    acknowledgement is lost (the harder case for idempotency).
    """

    def __init__(self, collection: Any, *, after_write: bool, fails: Callable[[int], bool]) -> None:
        self._collection = collection
        self._after_write = after_write
        self._fails = fails
        self.calls = 0

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if not self._fails(self.calls):
            return await self._collection.bulk_write(*args, **kwargs)
        if self._after_write:
            await self._collection.bulk_write(*args, **kwargs)
        raise AutoReconnect("injected fault: connection lost")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


class FaultyClient(WrappedCollections):
    """An embedded-backend client whose `test_runs` bulk writes fail when `fails(call)`."""

    def __init__(self, database: str, *, after_write: bool, fails: Callable[[int], bool]) -> None:
        super().__init__(EMBEDDED, database)
        self.faulty = FailingBulkWrite(None, after_write=after_write, fails=fails)

    def wrap(self, name: str, collection: Any) -> Any:
        if name != "test_runs":
            return collection
        self.faulty._collection = collection
        return self.faulty


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    """The spool directory the root conftest points EVALSTORE_SPOOL_DIR at."""
    return tmp_path / "spool"


@pytest.fixture
def database() -> str:
    """A fresh database name on the embedded backend."""
    return f"evalstore_dur_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def embedded(database: str) -> AsyncIterator[MetricsStorageService]:
    """A service on the embedded backend, database dropped afterwards."""
    client = MongoDBClient(EMBEDDED, database)
    try:
        yield MetricsStorageService(client)
    finally:
        await client.drop_database()
        await client.close()


Sync = Callable[[], Awaitable[ReplayReport]]


@pytest.fixture
def sync(spool_dir: Path) -> Sync:
    """What `evalstore sync --to mongomock://` does: every journal into its database."""

    async def replay() -> ReplayReport:
        return await replay_spool(
            spool_dir, lambda db: MetricsStorageService(MongoDBClient(EMBEDDED, db))
        )

    return replay


@pytest.fixture
def journals(spool_dir: Path) -> Callable[[], list[Path]]:
    """The journals now in the spool (not their lock files)."""
    return lambda: sorted(spool_dir.glob("*.ndjson")) if spool_dir.is_dir() else []


@pytest.fixture
def faulty_client(database: str) -> Callable[..., FaultyClient]:
    """Make a client on `database` whose bulk writes fail: `(after_write, fails)`."""
    return lambda after_write, fails: FaultyClient(database, after_write=after_write, fails=fails)
