"""The local store under faults: a writer killed mid-write, a file that is not a store,
a store kept busy by another process beyond the timeout."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalstore import (
    MetricsStorageService,
    MongoDBClient,
    RunRecorder,
    StorageUnavailableError,
    evaluation_run,
)
from evalstore.cli.app import app
from evalstore.storage.sqlite.engine import SqliteEngine

runner = CliRunner()
EVALSTORE = str(Path(sys.executable).parent / "evalstore")
READ = "read the local store"
BATCH = 10


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'store'}"


def _file(store: str, database: str = "local") -> Path:
    return Path(store.removeprefix("file://")) / database / "evalstore.sqlite3"


async def _counts(store: str) -> tuple[int, int]:
    async with MongoDBClient(store, "local") as client:
        return (
            await client.count("evaluation_runs", {}, action=READ),
            await client.count("test_runs", {}, action=READ),
        )


async def _test_run_ids(store: str) -> list[str]:
    async with MongoDBClient(store, "local") as client:
        return [doc["test_run_id"] for doc in await client.read("test_runs", {}, action=READ)]


async def _run_status(store: str) -> str:
    async with MongoDBClient(store, "local") as client:
        run = await client.read_one("evaluation_runs", {}, action=READ)
        assert run is not None
        return str(run["status"])


def _journals(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.ndjson")) if spool.is_dir() else []


# -- a writer killed ----------------------------------------------------------------

WRITE_UNTIL_KILLED = textwrap.dedent(
    f"""
    import asyncio, sys
    from datetime import datetime, timezone
    from bson import ObjectId
    from evalstore import MetricsStorageService, MongoDBClient

    async def main():
        async with MongoDBClient(sys.argv[1], "local") as client:
            service = MetricsStorageService(client)
            now = datetime.now(timezone.utc)
            run = {{"_id": ObjectId(), "evaluation_run_id": "killed", "started_at": now,
                   "status": "running", "last_seen_at": now}}
            await service.upsert_evaluation_run(run)
            n = 0
            while True:  # until killed
                batch = []
                for _ in range({BATCH}):
                    batch.append({{"_id": ObjectId(), "evaluation_run_id": run["_id"],
                                  "test_run_id": f"killed/t{{n:06d}}", "test_id": f"t{{n}}",
                                  "finished_at": now, "status": "passed", "passed": True,
                                  "score": 1.0}})
                    n += 1
                await service.upsert_test_runs(batch)  # one transaction
                print(" ".join(doc["test_run_id"] for doc in batch), flush=True)

    asyncio.run(main())
    """
)


def test_a_writer_killed_mid_write_leaves_a_store_holding_every_acknowledged_write(
    store: str,
) -> None:
    """Each line the writer printed is a batch whose write returned: all of them are kept."""
    with subprocess.Popen(
        [sys.executable, "-c", WRITE_UNTIL_KILLED, store], stdout=subprocess.PIPE, text=True
    ) as writer:
        assert writer.stdout is not None
        lines = [writer.stdout.readline() for _ in range(30)]
        writer.send_signal(signal.SIGKILL)  # writing its next batches meanwhile
        writer.wait()
        lines += writer.stdout.readlines()
    assert writer.returncode == -signal.SIGKILL
    acknowledged = [test_run_id for line in lines for test_run_id in line.split()]
    assert len(acknowledged) >= 300
    assert all(line.endswith("\n") for line in lines)

    stored = asyncio.run(_test_run_ids(store))

    assert stored[: len(acknowledged)] == acknowledged
    # A batch is one transaction: the one in flight is all there (written, not yet
    # printed) or not at all.
    assert len(stored) - len(acknowledged) in (0, BATCH)
    assert asyncio.run(_run_status(store)) == "running"
    with sqlite3.connect(_file(store)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


RECORD_UNTIL_KILLED = textwrap.dedent(
    """
    import asyncio, sys
    from evalstore import MetricsStorageService, MongoDBClient, evaluation_run

    async def main():
        service = MetricsStorageService(MongoDBClient(sys.argv[1], "local"))
        run = evaluation_run(service, environment="dev")
        await run.start()
        for i in range(1000):
            doc = await run.record_test(f"t{i:04d}", score=float(i % 100), passed=True)
            print(doc["test_run_id"], flush=True)
            if i == 599:
                print("PAUSED", flush=True)
                await asyncio.to_thread(sys.stdin.readline)

    asyncio.run(main())
    """
)


def test_a_recorder_killed_mid_run_loses_no_acknowledged_result(store: str, tmp_path: Path) -> None:
    """What the store does not hold yet is in the run's journal, for `evalstore sync`."""
    env = dict(os.environ, EVALSTORE_BATCH_SIZE="7")
    acknowledged: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", RECORD_UNTIL_KILLED, store],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    ) as recorder:
        assert recorder.stdout is not None
        for line in recorder.stdout:
            if line == "PAUSED\n":
                break
            acknowledged.append(line.strip())
        recorder.send_signal(signal.SIGKILL)
        recorder.wait()
    assert recorder.returncode == -signal.SIGKILL
    assert len(acknowledged) == 600

    stored = asyncio.run(_test_run_ids(store))  # the store opens, holding a part of them
    assert set(stored) <= set(acknowledged)
    assert asyncio.run(_run_status(store)) == "running"  # until `runs reap` interrupts it
    assert len(_journals(tmp_path / "spool")) == 1

    synced = runner.invoke(app, ["sync", "--to", store, "--json"])

    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout)["journals"] == 1
    assert sorted(asyncio.run(_test_run_ids(store))) == sorted(acknowledged)
    assert asyncio.run(_counts(store)) == (1, 600)


# -- a file that is not a store -----------------------------------------------------


def test_a_file_that_is_not_a_sqlite_database_is_one_clear_error(store: str) -> None:
    path = _file(store)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database\n" * 100)
    message = (
        f"cannot open the local store: {path} is not a readable evalstore store "
        "(file is not a database)"
    )

    async def read() -> int:
        async with MongoDBClient(store, "local") as client:
            return await client.count("test_runs", {}, action=READ)

    with pytest.raises(StorageUnavailableError) as error:
        asyncio.run(read())
    assert str(error.value) == message

    listed = subprocess.run(
        [EVALSTORE, "runs", "list"],
        env=dict(os.environ, MONGODB_CONNECTION_STRING=store, MONGODB_DATABASE="local"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (listed.returncode, listed.stdout, listed.stderr) == (1, "", f"error: {message}\n")
    assert path.read_bytes() == b"not a database\n" * 100  # left as it was


# -- a store kept busy by another process -------------------------------------------


class Holder:
    """Another process's write transaction, held open on the store's file until `release()`."""

    def __init__(self, store: str) -> None:
        self.connection = sqlite3.connect(_file(store), isolation_level=None)
        self.connection.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


def _busy(store: str) -> Holder:
    """A store whose file exists, and a write transaction held open on it."""

    async def create() -> None:
        async with MongoDBClient(store, "local") as client:
            await client.ping()

    asyncio.run(create())
    return Holder(store)


def test_a_store_busy_beyond_the_timeout_is_one_clear_error(store: str) -> None:
    holder = _busy(store)

    async def go() -> tuple[int, int]:
        async with MongoDBClient(store, "local", timeout_ms=200) as client:
            with pytest.raises(StorageUnavailableError) as error:
                await client.insert("test_runs", {"test_run_id": "a"}, what="test run 'a'")
            directory = _file(store).parent
            assert str(error.value) == (
                f"cannot store test run 'a': the local store at {directory} stayed busy for "
                "200 ms (another process is writing); try again, or raise MONGODB_TIMEOUT_MS"
            )
            readable = await client.count("test_runs", {}, action=READ)  # reads do not wait
            holder.release()
            await client.insert("test_runs", {"test_run_id": "a"}, what="test run 'a'")
            return readable, await client.count("test_runs", {}, action=READ)

    try:
        assert asyncio.run(go()) == (0, 1)
    finally:
        holder.connection.close()


def test_openers_of_a_new_store_all_get_in(tmp_path: Path) -> None:
    """Switching a new file to WAL takes it whole and SQLite does not wait for that by
    itself: CI jobs or xdist workers opening a new store at once must all get in."""
    openers = 6

    def open_and_write(store: str, ready: threading.Barrier, name: str) -> None:
        async def go() -> None:
            async with MongoDBClient(store, "local", timeout_ms=5000) as client:
                ready.wait()
                await client.insert("test_runs", {"test_run_id": name}, what=name)

        asyncio.run(go())

    failures: list[str] = []
    for attempt in range(15):  # each a new store; without waiting, most attempts fail
        store = f"file://{tmp_path / str(attempt)}"
        ready = threading.Barrier(openers)
        with ThreadPoolExecutor(openers) as pool:
            done = [pool.submit(open_and_write, store, ready, f"t{i}") for i in range(openers)]
        failures += [str(f.exception()) for f in done if f.exception() is not None]
        if not failures:
            assert asyncio.run(_counts(store)) == (0, openers)
    assert failures == []


def test_a_new_store_held_beyond_the_timeout_is_one_clear_error(store: str) -> None:
    path = _file(store)
    path.parent.mkdir(parents=True)
    creator = sqlite3.connect(path, isolation_level=None)
    creator.execute("BEGIN EXCLUSIVE")
    creator.execute("CREATE TABLE creating (x)")

    async def ping() -> None:
        async with MongoDBClient(store, "local", timeout_ms=200) as client:
            await client.count("test_runs", {}, action=READ)

    try:
        with pytest.raises(StorageUnavailableError) as error:
            asyncio.run(ping())
    finally:
        creator.close()
    assert str(error.value) == (
        f"cannot open the local store: the local store at {path.parent} stayed busy for "
        "200 ms (another process is writing); try again, or raise MONGODB_TIMEOUT_MS"
    )


def _unavailable(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "is unavailable" in r.getMessage()]


def test_a_recorder_on_a_store_busy_for_the_whole_run_keeps_its_results_for_sync(
    store: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evalstore")
    holder = _busy(store)

    async def record() -> dict[str, object]:
        async with MongoDBClient(store, "local", timeout_ms=200) as client:
            async with evaluation_run(MetricsStorageService(client), environment="dev") as run:
                for i in range(3):
                    await run.record_test(f"t{i}", score=50.0, passed=i != 1)
            return run.document

    try:
        run = asyncio.run(record())
    finally:
        holder.release()
    assert (run["status"], run["num_tests"], run["num_failed"]) == ("completed", 3, 1)
    [journal] = _journals(tmp_path / "spool")
    [warning] = _unavailable(caplog)
    assert warning.startswith(
        "evalstore: the local store is unavailable (cannot store an evaluation run: "
        f"the local store at {_file(store).parent} stayed busy for 200 ms"
    )
    assert f"results are kept in {journal} and will be stored when it is back" in warning
    assert asyncio.run(_counts(store)) == (0, 0)

    synced = runner.invoke(app, ["sync", "--to", store, "--json"])

    assert synced.exit_code == 0, synced.output
    report = json.loads(synced.stdout)
    assert (report["journals"], report["test_runs"], report["finalized"]) == (1, 3, 1)
    assert asyncio.run(_counts(store)) == (1, 3)
    assert asyncio.run(_run_status(store)) == "completed"
    assert _journals(tmp_path / "spool") == []


def test_a_recorder_stores_everything_once_the_store_is_free_again(
    store: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evalstore")
    holder = _busy(store)

    async def record() -> dict[str, object]:
        async with MongoDBClient(store, "local", timeout_ms=200) as client:
            async with evaluation_run(MetricsStorageService(client), environment="dev") as run:
                for i in range(3):
                    await run.record_test(f"t{i}", score=50.0, passed=True)
                holder.release()  # before the run finishes
            return run.document

    try:
        run = asyncio.run(record())
    finally:
        holder.connection.close()
    assert (run["status"], run["num_tests"]) == ("completed", 3)
    assert len(_unavailable(caplog)) == 1
    assert asyncio.run(_counts(store)) == (1, 3)
    assert asyncio.run(_run_status(store)) == "completed"
    assert _journals(tmp_path / "spool") == []  # nothing left for `evalstore sync`


async def test_a_store_deleted_while_open_refuses_writes_instead_of_losing_them(
    store: str,
) -> None:
    async with MongoDBClient(store, "local") as client:
        service = MetricsStorageService(client)
        async with evaluation_run(service, environment="dev") as run:
            await run.record_test("t1", passed=True)
        shutil.rmtree(_file(store).parent)
        with pytest.raises(
            StorageUnavailableError,
            match=r"was deleted or replaced while open: nothing was written",
        ):
            await client.upsert_test_runs([{"test_run_id": "late", "test_id": "t2"}])


async def test_a_full_disk_mid_transaction_says_the_disk_is_full(store: str) -> None:
    async with MongoDBClient(store, "local") as client:
        await client.create_indexes()
        engine = client.engine
        assert isinstance(engine, SqliteEngine)
        pages = engine._connect().execute("PRAGMA page_count").fetchone()["page_count"]
        engine._connect().execute(f"PRAGMA max_page_count = {pages}")  # no room to grow
        documents = [
            {"test_run_id": f"r{i}", "test_id": f"t{i}", "message": "x" * 2000} for i in range(50)
        ]
        with pytest.raises(StorageUnavailableError, match=r"^cannot store test runs: the disk"):
            await client.upsert_test_runs(documents)
        assert await client.count("test_runs", {}, action="count") == 0  # all or nothing


async def test_finalize_returns_the_run_as_stored(store: str) -> None:
    async with MongoDBClient(store, "local") as client:
        service = MetricsStorageService(client)
        run = RunRecorder(service, environment="dev")
        await run.start()
        await run.record_test("t1", passed=True)
        naive = datetime(2025, 1, 1, 12, 0, 0, 123456)  # naive is UTC; stored to the millisecond
        returned = await service.finalize_evaluation_run(run.document["_id"], finished_at=naive)
        stored = await service.get_evaluation_run(run.document["_id"])
        assert stored is not None
        assert returned["finished_at"] == stored["finished_at"]
        assert returned["finished_at"] == datetime(2025, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
        await run.finish()
