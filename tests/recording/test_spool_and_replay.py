"""Journals: BSON round trip, write-behind, replay on connect, live journals left alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from engine_wrappers import WrappedCollections

from evalstore import DuplicateRunError, MetricsStorageService, evaluation_run
from evalstore.recording.journal import Journal, read_journal, target_fingerprint

T0 = datetime(2025, 12, 5, 10, 30, 0, 123000, tzinfo=timezone.utc)
Sync = Callable[[], Any]


def _run_document(evaluation_run_id: str) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "evaluation_run_id": evaluation_run_id,
        "started_at": T0,
        "status": "running",
        "system_info_hash": "abc",
        "last_seen_at": T0,
    }


def _test_document(run: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "evaluation_run_id": run["_id"],
        "test_run_id": f"{run['evaluation_run_id']}/t{n}/x",
        "test_id": f"t{n}",
        "finished_at": T0,
        "score": 1.0,
        "duration_ms": 0.0,
        "status": "passed",
    }


def test_journal_round_trips_bson_types(spool_dir: Path) -> None:
    run = _run_document("r1")
    test = _test_document(run, 1)
    journal = Journal.create(spool_dir, run, database="db", target="t", fsync="always")
    journal.append({"kind": "test", "doc": test})
    journal.append({"kind": "acked", "ids": [test["test_run_id"]]})
    journal.close()
    contents = read_journal(journal.path)
    assert contents is not None
    assert (contents.database, contents.target, contents.run) == ("db", "t", run)
    assert contents.tests == {test["test_run_id"]: test}
    assert isinstance(contents.tests[test["test_run_id"]]["score"], float)
    assert contents.pending_tests == []
    # acknowledgements count only on the server that gave them
    assert contents.tests_to_replay("another server") == [test]


def test_the_connection_string_is_not_in_the_journal(spool_dir: Path) -> None:
    uri = "mongodb://bob:hunter2@db.example:27017"
    journal = Journal.create(
        spool_dir, _run_document("r2"), database="db", target=target_fingerprint(uri), fsync="never"
    )
    journal.close()
    text = journal.path.read_text()
    assert "hunter2" not in text
    assert json.loads(text.splitlines()[0])["target"] == target_fingerprint(uri)


async def test_record_test_returns_once_journaled_and_finish_drains(
    embedded: MetricsStorageService,
    journals: Callable[[], list[Path]],
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("EVALSTORE_BATCH_SIZE", "1000")
    clean_env.setenv("EVALSTORE_FLUSH_INTERVAL_MS", "3600000")
    async with evaluation_run(embedded, environment="dev") as run:
        document = await run.record_test("t1", score=80.0, passed=True)
        assert await embedded.client.test_runs.count_documents({}) == 0
        [journal] = journals()
        last = json.loads(journal.read_text().splitlines()[-1])
        assert (last["kind"], last["doc"]["test_run_id"]) == ("test", document["test_run_id"])
    assert await embedded.client.test_runs.find_one({}) == document
    assert (run.document["status"], run.document["num_tests"], run.document["score"]) == (
        "completed",
        1,
        80.0,
    )
    assert journals() == []


class _Gate:
    """Wraps a collection: `bulk_write` waits until the gate opens."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.open = asyncio.Event()

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any:
        await self.open.wait()
        return await self._collection.bulk_write(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


class _GatedClient(WrappedCollections):
    """A client on the embedded backend whose test-run writes wait for `gate`."""

    def __init__(self, database: str) -> None:
        super().__init__("mongomock://", database)
        self.gate = _Gate(None)

    def wrap(self, name: str, collection: Any) -> Any:
        if name != "test_runs":
            return collection
        self.gate._collection = collection
        return self.gate


async def test_a_full_queue_makes_record_test_wait(
    embedded: MetricsStorageService,
    journals: Callable[[], list[Path]],
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("EVALSTORE_BATCH_SIZE", "1")
    clean_env.setenv("EVALSTORE_QUEUE_SIZE", "2")
    client = _GatedClient(embedded.client.database_name)
    run = evaluation_run(MetricsStorageService(client), environment="dev")
    await run.start()

    async def record_five() -> None:
        for i in range(5):
            await run.record_test(f"t{i}", score=1.0, passed=True)

    recording = asyncio.create_task(record_five())
    for _ in range(50):
        await asyncio.sleep(0)
    # one batch held by the writer, two queued, the fourth journaled and waiting
    assert not recording.done()
    [journal] = journals()
    assert sum('"kind": "test"' in line for line in journal.read_text().splitlines()) == 4
    client.gate.open.set()
    await recording
    await run.finish()
    assert await embedded.client.test_runs.count_documents({}) == 5


async def test_pending_journals_of_the_same_server_replay_when_a_run_starts(
    embedded: MetricsStorageService, spool_dir: Path, journals: Callable[[], list[Path]]
) -> None:
    old = _run_document("old-run")
    journal = Journal.create(
        spool_dir,
        old,
        database=embedded.client.database_name,
        target=target_fingerprint("mongomock://"),
        fsync="never",
    )
    for n in range(3):
        journal.append({"kind": "test", "doc": _test_document(old, n)})
    journal.close()
    async with evaluation_run(embedded, environment="dev") as run:
        await run.record_test("new", score=1.0, passed=True)
    assert await embedded.client.test_runs.count_documents({"evaluation_run_id": old["_id"]}) == 3
    assert await embedded.client.evaluation_runs.count_documents({}) == 2
    assert journals() == []


async def test_journals_of_other_servers_are_left_for_sync(
    embedded: MetricsStorageService, spool_dir: Path, journals: Callable[[], list[Path]]
) -> None:
    other = Journal.create(
        spool_dir,
        _run_document("elsewhere"),
        database=embedded.client.database_name,
        target=target_fingerprint("mongodb://elsewhere"),
        fsync="never",
    )
    other.close()
    async with evaluation_run(embedded, environment="dev"):
        pass
    assert journals() == [other.path]
    assert await embedded.client.evaluation_runs.count_documents({}) == 1


async def test_sync_skips_a_journal_still_being_recorded(
    embedded: MetricsStorageService,
    spool_dir: Path,
    sync: Sync,
    journals: Callable[[], list[Path]],
) -> None:
    live = Journal.create(
        spool_dir,
        _run_document("live"),
        database=embedded.client.database_name,
        target="t",
        fsync="never",
    )
    report = await sync()
    assert (report.locked, report.journals) == (1, 0)
    assert journals() == [live.path]
    assert await embedded.client.evaluation_runs.count_documents({}) == 0
    live.close()
    report = await sync()
    assert (report.locked, report.journals) == (0, 1)
    assert await embedded.client.evaluation_runs.count_documents({}) == 1


@pytest.mark.parametrize(
    ("policy", "after_appends", "after_close"),
    [("always", 4, 4), ("interval", 0, 1), ("never", 0, 0)],
)
def test_fsync_policy(
    policy: Any,
    after_appends: int,
    after_close: int,
    spool_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    synced: list[int] = []
    monkeypatch.setattr("evalstore.recording.journal.os.fsync", synced.append)
    run = _run_document(f"fsync-{policy}")
    journal = Journal.create(spool_dir, run, database="db", target="t", fsync=policy)
    for n in range(3):
        journal.append({"kind": "test", "doc": _test_document(run, n)})
    assert len(synced) == after_appends  # header + 3 tests, within the first second
    journal.close()
    assert len(synced) == after_close


async def test_upserting_a_run_is_idempotent_and_refuses_a_clashing_id(
    embedded: MetricsStorageService,
) -> None:
    run = _run_document("same-id")
    await embedded.upsert_evaluation_run(run)
    await embedded.upsert_evaluation_run({**run, "status": "completed"})
    stored = await embedded.client.evaluation_runs.find({}).to_list(None)
    assert stored == [run]  # $setOnInsert: the second write changed nothing
    with pytest.raises(DuplicateRunError, match="'same-id' already exists"):
        await embedded.upsert_evaluation_run({**run, "_id": ObjectId()})
