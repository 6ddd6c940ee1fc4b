"""How pytest's thread hands test results to the storage thread: in batches, each taken at once.

The pytest thread waits while the storage loop takes a batch (validated,
journaled, queued) when the loop is free, and with an in-process store also
while the store write the batch completes runs: the threads then do not compete
for the GIL, and a batch is in the journal before the next tests run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from evalstore import MongoDBClient
from evalstore.pytest_plugin.writer import HANDOFF_BATCH, StorageSession
from evalstore.settings import load_settings


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[StorageSession, list[str]]]:
    """A storage session whose recorder only notes the test ids it is given, on its loop."""
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    monkeypatch.setattr("evalstore.pytest_plugin.writer.HANDOFF_INTERVAL_S", 3600.0)
    storage = StorageSession(load_settings())
    recorded: list[str] = []

    async def start() -> dict[str, Any]:
        return {}

    async def record_tests(
        results: list[dict[str, Any]], copy: bool = True
    ) -> list[dict[str, Any]]:
        recorded.extend(result["test_id"] for result in results)
        return results

    monkeypatch.setattr(storage.recorder, "start", start)
    monkeypatch.setattr(storage.recorder, "record_tests", record_tests)
    try:
        yield storage, recorded
    finally:
        storage.close()


def test_each_full_batch_is_recorded_before_add_returns(
    session: tuple[StorageSession, list[str]],
) -> None:
    storage, recorded = session
    storage.start().result(10)

    for number in range(1, 2 * HANDOFF_BATCH + 51):
        storage.add({"test_id": f"t{number}"})
        if number % HANDOFF_BATCH == 0:
            assert len(recorded) == number
        else:
            assert len(recorded) == number - number % HANDOFF_BATCH

    storage.finish("completed")  # hands over the rest first
    assert recorded == [f"t{number}" for number in range(1, 2 * HANDOFF_BATCH + 51)]


@pytest.mark.parametrize("store", ["mongomock://", "file"])
def test_a_smaller_write_batch_makes_the_handoff_smaller(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_name: str, store: str
) -> None:
    # EVALSTORE_BATCH_SIZE below the handoff's 500: each handoff is one store write.
    url = f"file://{tmp_path / 'store'}" if store == "file" else store
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", url)
    monkeypatch.setenv("EVALSTORE_BATCH_SIZE", "40")
    monkeypatch.setattr("evalstore.pytest_plugin.writer.HANDOFF_INTERVAL_S", 3600.0)
    storage = StorageSession(load_settings())
    try:
        storage.start().result(30)
        for number in range(99):
            storage.add(_result(number))
            if number in (38, 39, 79):
                stored = asyncio.run(_count_test_runs(url, db_name))
                assert stored == {38: 0, 39: 40, 79: 80}[number]
        storage.finish("completed")
    finally:
        storage.close()
    assert storage.problems == []
    assert asyncio.run(_count_test_runs(url, db_name)) == 99


@pytest.mark.parametrize("store", ["mongomock://", "file"])
def test_a_batch_that_fills_a_write_is_stored_before_add_returns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_name: str, store: str
) -> None:
    # In-process stores: the handoff also waits for the store write its batch completes.
    url = f"file://{tmp_path / 'store'}" if store == "file" else store
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", url)
    monkeypatch.setenv("EVALSTORE_BATCH_SIZE", str(HANDOFF_BATCH))
    monkeypatch.setattr("evalstore.pytest_plugin.writer.HANDOFF_INTERVAL_S", 3600.0)
    storage = StorageSession(load_settings())
    try:
        storage.start().result(30)
        for number in range(HANDOFF_BATCH):
            storage.add(_result(number))

        assert asyncio.run(_count_test_runs(url, db_name)) == HANDOFF_BATCH
        storage.finish("completed")
    finally:
        storage.close()
    assert storage.problems == []
    assert asyncio.run(_count_test_runs(url, db_name)) == HANDOFF_BATCH


def _result(number: int) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "test_id": f"test_handoff.py::test_{number}",
        "test_name": f"test_{number}",
        "status": "passed",
        "message": None,
        "details": None,
        "tags": [],
        "metrics": {},
        "duration_ms": 0.5,
        "started_at": now,
        "finished_at": now,
    }


async def _count_test_runs(url: str, database: str) -> int:
    async with MongoDBClient(url, database) as client:
        return await client.count("test_runs", {}, action="count the test runs")
