"""The local store (`file:///dir`): persistence across processes, the lock, torn logs, sync."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError
from typer.testing import CliRunner

from evalstore import (
    ConfigurationError,
    MetricsStorageService,
    MongoDBClient,
    StorageUnavailableError,
    evaluation_run,
)
from evalstore.cli.app import app
from evalstore.storage import localstore
from evalstore.storage.embedded import reset_embedded_backend
from evalstore.storage.localstore import LOG, SNAPSHOT

runner = CliRunner()
EVALSTORE = str(Path(sys.executable).parent / "evalstore")
RECORD = textwrap.dedent(
    """
    import asyncio
    from evalstore import evaluation_run

    async def main():
        async with evaluation_run(environment="dev") as run:
            await run.record_test("t1", score=80.0, passed=True)
            await run.record_test("t2", score=60.0, passed=False)
            await run.record_test("t3", score=100.0, passed=True)

    asyncio.run(main())
    """
)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'store'}"


@pytest.fixture
def mock_database() -> Iterator[str]:
    yield f"test_{uuid.uuid4().hex[:12]}"
    reset_embedded_backend()


def _env(store: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MONGODB_ENABLED="true",
        MONGODB_CONNECTION_STRING=store,
        MONGODB_DATABASE="local",
        EVALSTORE_DEBUG="1",
    )
    return env


def _list_runs(store: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVALSTORE, "runs", "list", "--url", store, "--db", "local", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_record_in_one_process_and_query_from_another(store: str) -> None:
    recorded = subprocess.run(
        [sys.executable, "-c", RECORD], env=_env(store), capture_output=True, text=True
    )
    assert recorded.returncode == 0, recorded.stderr
    listed = _list_runs(store)
    assert listed.returncode == 0, listed.stderr
    [run] = json.loads(listed.stdout)
    assert run["status"] == "completed"
    assert (run["num_tests"], run["num_passed"], run["num_failed"]) == (3, 2, 1)
    assert run["score"] == pytest.approx(80.0)  # (80 + 60 + 100) / 3


HOLD = textwrap.dedent(
    """
    import asyncio, sys
    from evalstore import MetricsStorageService, MongoDBClient, evaluation_run

    async def main():
        async with MongoDBClient(sys.argv[1], "local") as client:
            async with evaluation_run(MetricsStorageService(client), environment="dev") as run:
                await run.record_test("t1", score=40.0, passed=True)
            print("ready", flush=True)
            sys.stdin.readline()

    asyncio.run(main())
    """
)


def test_a_writer_holds_the_store_readers_still_read(store: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, store],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "ready\n"
        listed = _list_runs(store)  # another process reads without the lock
        assert listed.returncode == 0, listed.stderr
        [run] = json.loads(listed.stdout)
        assert (run["status"], run["num_tests"], run["score"]) == ("completed", 1, 40.0)

        async def write() -> None:
            async with MongoDBClient(store, "local") as client:
                await client.test_runs.insert_one({"test_run_id": "x"})

        with pytest.raises(StorageUnavailableError) as error:
            asyncio.run(write())
        path = store.removeprefix("file://")
        assert str(error.value) == (
            f"the local store at {path} is in use by another process (pid {holder.pid}); "
            "close it or use MongoDB for concurrent writers"
        )
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
        assert holder.stdout is not None
        holder.stdout.close()
    asyncio.run(write())  # released when the holder closed
    assert asyncio.run(_counts(store, "local")) == (1, 2)


def test_a_relative_path_is_one_clear_error() -> None:
    with pytest.raises(ConfigurationError) as error:
        MongoDBClient("file://relative/dir")
    assert str(error.value) == (
        "invalid local store 'file://relative/dir': expected file:///absolute/path/to/dir"
    )


async def _save(store: str, database: str, test_ids: list[str]) -> None:
    async with MongoDBClient(store, database) as client:
        service = MetricsStorageService(client)
        async with evaluation_run(service, environment="dev") as run:
            for test_id in test_ids:
                await run.record_test(test_id, score=50.0, passed=True)


async def _counts(store: str, database: str) -> tuple[int, int]:
    async with MongoDBClient(store, database) as client:
        return (
            await client.evaluation_runs.count_documents({}),
            await client.test_runs.count_documents({}),
        )


def test_a_torn_last_line_is_skipped_with_a_warning(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_save(store, "local", ["a", "b"]))
    log_path = Path(store.removeprefix("file://")) / "local" / LOG
    with log_path.open("ab") as handle:
        handle.write(b'{"c": "test_runs", "put": {"_id": {"$oid": "65')
    with caplog.at_level(logging.WARNING, logger="evalstore"):
        assert asyncio.run(_counts(store, "local")) == (1, 2)  # a reader: no warning
    assert caplog.records == []
    with caplog.at_level(logging.WARNING, logger="evalstore"):
        asyncio.run(_save(store, "local", ["c"]))  # a writer warns and cuts the torn tail
    assert any("truncating" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="evalstore"):
        assert asyncio.run(_counts(store, "local")) == (2, 3)
    assert caplog.records == []


def test_a_refused_duplicate_leaves_no_trace(store: str) -> None:
    async def go() -> None:
        async with MongoDBClient(store, "local") as client:
            await client.ensure_indexes()
            await client.test_runs.insert_one({"test_run_id": "same", "test_id": "t"})
            with pytest.raises(DuplicateKeyError):
                await client.test_runs.insert_one({"test_run_id": "same", "test_id": "u"})

    asyncio.run(go())
    log_path = Path(store.removeprefix("file://")) / "local" / LOG
    assert b'"test_id": "u"' not in log_path.read_bytes()
    assert asyncio.run(_counts(store, "local")) == (0, 1)


def test_prune_on_a_local_store_persists(store: str) -> None:
    async def record(started: datetime, tests: int) -> None:
        async with MongoDBClient(store, "local") as client:
            service = MetricsStorageService(client)
            async with evaluation_run(service, environment="dev", clock=lambda: started) as run:
                for i in range(tests):
                    await run.record_test(f"t{i}", score=1.0, passed=True)

    now = datetime.now(timezone.utc)
    asyncio.run(record(now - timedelta(days=40), 3))
    asyncio.run(record(now - timedelta(days=1), 2))

    async def prune() -> Any:
        async with MongoDBClient(store, "local") as client:
            return await MetricsStorageService(client).prune(30)

    result = asyncio.run(prune())
    assert (result["evaluation_runs"], result["test_runs"]) == (1, 3)
    assert asyncio.run(_counts(store, "local")) == (1, 2)


def test_a_long_log_is_compacted_on_open(store: str) -> None:
    async def beat(times: int) -> None:
        async with MongoDBClient(store, "local") as client:
            oid = (await client.evaluation_runs.insert_one({"evaluation_run_id": "r"})).inserted_id
            for i in range(times):
                await client.evaluation_runs.update_one({"_id": oid}, {"$set": {"beat": i}})

    asyncio.run(beat(1200))
    directory = Path(store.removeprefix("file://")) / "local"
    assert len((directory / LOG).read_bytes().splitlines()) == 1 + 1 + 1200

    async def read() -> list[dict[str, Any]]:
        async with MongoDBClient(store, "local") as client:
            found: list[dict[str, Any]] = await client.evaluation_runs.find({}).to_list(None)
            return found

    [run] = asyncio.run(read())  # a reader leaves the files as they are
    assert run["beat"] == 1199
    assert len((directory / LOG).read_bytes().splitlines()) == 1 + 1 + 1200

    async def write() -> None:
        async with MongoDBClient(store, "local") as client:
            await client.evaluation_runs.update_one({}, {"$set": {"beat": 1199}})

    asyncio.run(write())  # the first write compacts, then logs the touched document
    assert len((directory / LOG).read_bytes().splitlines()) == 1 + 1
    assert len((directory / SNAPSHOT).read_bytes().splitlines()) == 1 + 1
    [again] = asyncio.run(read())
    assert again == run


@pytest.mark.parametrize(
    "log",
    [None, b"", b'{"c": "test_runs", "put": {"_id": {"$oid": "65', b"not json\n", "header"],
)
def test_a_writer_always_logs_after_a_header(store: str, log: bytes | str | None) -> None:
    """Missing, empty or headerless: the first write leaves a log that starts with a header."""
    asyncio.run(_save(store, "local", ["a"]))
    directory = Path(store.removeprefix("file://")) / "local"
    generation = json.loads((directory / SNAPSHOT).read_bytes().splitlines()[0])["generation"]
    if log is None:
        (directory / LOG).unlink()
    elif isinstance(log, bytes):
        (directory / LOG).write_bytes(log)
    asyncio.run(_save(store, "local", ["b"]))
    lines = (directory / LOG).read_bytes().splitlines()
    header = json.loads(lines[0])
    assert header["kind"] == "header"
    assert header["generation"] == (generation if log == "header" else generation + 1)
    assert len(lines) > 1
    # The first run lived in the log only (the snapshot of an empty store): replaced, it is gone.
    assert asyncio.run(_counts(store, "local")) == ((2, 2) if log == "header" else (1, 1))


def test_sync_pushes_a_local_store_once(store: str, mock_database: str) -> None:
    asyncio.run(_save(store, mock_database, ["a", "b", "c"]))
    asyncio.run(_save(store, mock_database, ["a", "d"]))
    first = runner.invoke(app, ["sync", "--from", store, "--to", "mongomock://", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["databases"], report["evaluation_runs"], report["test_runs"]) == (
        [mock_database],
        2,
        5,
    )
    second = runner.invoke(app, ["sync", "--from", store, "--to", "mongomock://", "--json"])
    assert second.exit_code == 0, second.output
    assert asyncio.run(_counts("mongomock://", mock_database)) == (2, 5)
    listed = runner.invoke(
        app, ["runs", "list", "--url", "mongomock://", "--db", mock_database, "--json"]
    )
    runs = json.loads(listed.stdout)
    assert sorted((r["status"], r["num_tests"], r["score"]) for r in runs) == [
        ("completed", 2, 50.0),
        ("completed", 3, 50.0),
    ]


def test_sync_finalizes_a_copy_still_running_on_the_target(store: str, mock_database: str) -> None:
    async def go() -> dict[str, Any] | None:
        async with MongoDBClient(store, mock_database) as client:
            service = MetricsStorageService(client)
            run = evaluation_run(service, environment="dev")
            await run.start()
            await run.record_test("a", score=30.0, passed=False)
            # Pushed while still running, then finished locally.
            async with MongoDBClient("mongomock://", mock_database) as target:
                from evalstore.storage.sync import local_clients, push_local_store

                async with local_clients(store, [mock_database]) as local:
                    await push_local_store(local, target)
                await run.finish()
                async with local_clients(store, [mock_database]) as local:
                    report = await push_local_store(local, target)
                assert report.finalized == 1
                return await MetricsStorageService(target).get_evaluation_run(run.evaluation_run_id)

    found = asyncio.run(go())
    assert found is not None
    assert (found["status"], found["num_tests"], found["num_failed"], found["score"]) == (
        "completed",
        1,
        1,
        30.0,
    )


def test_sync_refuses_a_source_that_is_not_a_local_store() -> None:
    result = runner.invoke(app, ["sync", "--from", "mongomock://", "--to", "mongomock://"])
    assert result.exit_code == 1
    assert "--from must be a local store file:///dir, got 'mongomock://'" in result.stderr


def test_a_failed_log_write_is_reported_and_retried(
    store: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_fsync = localstore.os.fsync
    failures = iter([True])

    def fsync(descriptor: int) -> None:
        if next(failures, False):
            raise OSError(28, "No space left on device")
        real_fsync(descriptor)

    async def go() -> None:
        async with MongoDBClient(store, "local") as client:
            await client.test_runs.insert_one({"test_run_id": "first"})  # opened before the fault
            monkeypatch.setattr(localstore.os, "fsync", fsync)
            with pytest.raises(StorageUnavailableError) as error:
                await client.test_runs.insert_one({"test_run_id": "a"})
            assert "No space left on device" in str(error.value)
            await client.test_runs.insert_one({"test_run_id": "b"})

    asyncio.run(go())
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="evalstore"):
        assert asyncio.run(_counts(store, "local")) == (0, 3)
    assert caplog.records == []


def test_a_store_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")

    async def go() -> None:
        async with MongoDBClient(f"file://{tmp_path / 'file' / 'store'}", "local") as client:
            assert await client.test_runs.count_documents({}) == 0  # reading needs no directory
            await client.test_runs.insert_one({"test_run_id": "a"})

    with pytest.raises(StorageUnavailableError) as error:
        asyncio.run(go())
    assert str(error.value).startswith(f"cannot open the local store at {tmp_path}/file/store: ")


def test_a_second_recorder_is_told_and_spools_until_sync(store: str) -> None:
    async def hold() -> subprocess.CompletedProcess[str]:
        async with MongoDBClient(store, "local") as client:
            await client.db["other"].insert_one({})  # the first write takes the lock
            return await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", RECORD],
                env=_env(store),
                capture_output=True,
                text=True,
            )

    recorded = asyncio.run(hold())
    assert recorded.returncode == 0, recorded.stderr
    path = store.removeprefix("file://")
    assert (
        "evalstore: the local store is unavailable "
        f"(the local store at {path} is in use by another process (pid {os.getpid()}); "
        "close it or use MongoDB for concurrent writers)" in recorded.stderr
    )
    assert "MongoDB is unavailable" not in recorded.stderr
    assert asyncio.run(_counts(store, "local")) == (0, 0)
    synced = runner.invoke(app, ["sync", "--to", store, "--json"])
    assert synced.exit_code == 0, synced.output
    assert asyncio.run(_counts(store, "local")) == (1, 3)


def test_collections_reached_as_attributes_are_logged_too(store: str) -> None:
    log_path = Path(store.removeprefix("file://")) / "local" / LOG

    def logged() -> list[str | None]:
        return [json.loads(line).get("c") for line in log_path.read_text().splitlines()]

    async def go() -> None:
        async with MongoDBClient(store, "local") as client:
            await client.db.test_runs.insert_one({"test_run_id": "a"})
            await client.db.get_collection("test_runs").insert_one({"test_run_id": "b"})
            await client._client().local.evaluation_runs.insert_one({"evaluation_run_id": "r"})
            # On disk when each write returned, not only when the client closes.
            assert logged() == [None, "test_runs", "test_runs", "evaluation_runs"]

    asyncio.run(go())
    assert asyncio.run(_counts(store, "local")) == (1, 2)


def test_a_compaction_cut_between_its_renames_keeps_the_snapshot(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    directory = Path(store.removeprefix("file://")) / "local"
    directory.mkdir(parents=True)
    run = {"_id": {"$oid": "65a000000000000000000001"}, "evaluation_run_id": "r", "n": 2}
    stale = dict(run, n=1)
    (directory / SNAPSHOT).write_text(
        json.dumps({"kind": "header", "format": 1, "generation": 2})
        + "\n"
        + json.dumps({"c": "evaluation_runs", "put": run})
        + "\n"
    )
    (directory / LOG).write_text(
        json.dumps({"kind": "header", "format": 1, "generation": 1})
        + "\n"
        + json.dumps({"c": "evaluation_runs", "put": stale})
        + "\n"
    )

    async def read() -> list[dict[str, Any]]:
        async with MongoDBClient(store, "local") as client:
            found: list[dict[str, Any]] = await client.evaluation_runs.find({}).to_list(None)
            return found

    with caplog.at_level(logging.WARNING, logger="evalstore"):
        [found] = asyncio.run(read())  # a reader ignores the stale log
    assert (found["evaluation_run_id"], found["n"]) == ("r", 2)

    async def write() -> None:
        async with MongoDBClient(store, "local") as client:
            await client.db["other"].insert_one({"_id": 1})

    with caplog.at_level(logging.WARNING, logger="evalstore"):
        asyncio.run(write())  # a writer finishes the compaction
    assert caplog.records == []
    assert (directory / LOG).read_text().splitlines()[0] == json.dumps(
        {"kind": "header", "format": 1, "generation": 3}
    )
    [again] = asyncio.run(read())
    assert again["n"] == 2


def test_sync_names_a_missing_store_or_database(store: str, tmp_path: Path) -> None:
    missing = runner.invoke(app, ["sync", "--from", f"file://{tmp_path}/nowhere", "--to", store])
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"error: no local store at {tmp_path}/nowhere: check the path "
        "(a store is created when results are first recorded into it)\n"
    )
    asyncio.run(_save(store, "local", ["a"]))
    unknown = runner.invoke(app, ["sync", "--from", store, "--db", "other", "--to", "mongomock://"])
    assert unknown.exit_code == 1
    path = store.removeprefix("file://")
    assert unknown.stderr == (
        f"error: the local store at {path} has no database 'other' (it has: local); "
        "choose one with --db or MONGODB_DATABASE\n"
    )
    assert not (Path(path) / "other").exists()


def test_a_reader_that_starts_writing_reloads_only_what_changed(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real_read = localstore._read

    def counting_read(directory: Path, *, warn: bool) -> Any:
        reads.append(directory)
        return real_read(directory, warn=warn)

    monkeypatch.setattr(localstore, "_read", counting_read)
    asyncio.run(_save(store, "local", ["a"]))
    reads.clear()

    async def go() -> tuple[int, int]:
        async with MongoDBClient(store, "local") as client:
            assert await client.test_runs.count_documents({}) == 1  # read without the lock
            recorded = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", RECORD],
                env=_env(store),
                capture_output=True,
                text=True,
            )
            assert recorded.returncode == 0, recorded.stderr
            await client.test_runs.insert_one({"test_run_id": "x"})  # takes the lock, reloads
            return (
                await client.evaluation_runs.count_documents({}),
                await client.test_runs.count_documents({}),
            )

    assert asyncio.run(go()) == (2, 5)
    assert len(reads) == 2  # on open, and again because the other process wrote

    async def unchanged() -> None:
        async with MongoDBClient(store, "local") as client:
            assert await client.test_runs.count_documents({}) == 5
            await client.test_runs.insert_one({"test_run_id": "y"})

    reads.clear()
    asyncio.run(unchanged())
    assert len(reads) == 1  # nothing changed on disk: the first read is kept
    assert asyncio.run(_counts(store, "local")) == (2, 6)


def test_spellings_of_one_path_share_the_store_in_a_process(store: str) -> None:
    async def go() -> int:
        async with (
            MongoDBClient(store, "local") as first,
            MongoDBClient(store + "/../store/", "local") as second,
        ):
            await first.test_runs.insert_one({"test_run_id": "a"})
            await second.test_runs.insert_one({"test_run_id": "b"})  # no lock of its own
            return int(await first.test_runs.count_documents({}))

    assert asyncio.run(go()) == 2
    assert asyncio.run(_counts(store, "local")) == (0, 2)


def test_lines_that_are_json_but_not_records_are_skipped(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_save(store, "local", ["a"]))
    log_path = Path(store.removeprefix("file://")) / "local" / LOG
    with log_path.open("ab") as handle:
        handle.write(b'{"c": "test_runs", "put": {"_id": {"$oid": "not-an-id"}}}\n')
        handle.write(b'{"c": "test_runs"}\n')
        handle.write(b"[1, 2]\n")
        handle.write(b'{"c": "test_runs", "del": {"$oid": "65a000000000000000000001"}}\n')

    async def write() -> None:
        async with MongoDBClient(store, "local") as client:
            await client.db["other"].insert_one({"_id": 1})

    with caplog.at_level(logging.WARNING, logger="evalstore"):
        asyncio.run(write())
    skipped = [r.getMessage() for r in caplog.records if "skipping line" in r.getMessage()]
    assert len(skipped) == 3
    assert asyncio.run(_counts(store, "local")) == (1, 1)


def test_sync_reads_the_local_store_once(
    store: str, mock_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count for the progress bar and the push share one read of the files."""

    asyncio.run(_save(store, mock_database, ["a", "b"]))
    asyncio.run(_save(store, "other", ["c"]))
    reads: list[Path] = []
    original = localstore._read

    def counting(directory: Path, *, warn: bool) -> Any:
        reads.append(directory)
        return original(directory, warn=warn)

    monkeypatch.setattr(localstore, "_read", counting)
    result = runner.invoke(app, ["sync", "--from", store, "--to", "mongomock://", "--json"])
    assert result.exit_code == 0, result.output
    assert (json.loads(result.stdout)["test_runs"], sorted(p.name for p in reads)) == (
        3,
        sorted([mock_database, "other"]),
    )
    assert localstore._REGISTRY == {}  # every client of the store closed
    assert asyncio.run(_counts("mongomock://", mock_database)) == (1, 2)
    assert asyncio.run(_counts("mongomock://", "other")) == (1, 1)


def test_sync_pushes_each_runs_test_runs_in_their_order(
    store: str, mock_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interleaved test runs, one of an odd `evaluation_run_id`: what per-run queries found."""
    from evalstore.storage import sync as localsync

    async def record() -> list[Any]:
        async with MongoDBClient(store, mock_database) as client:
            service = MetricsStorageService(client)
            runs = [evaluation_run(service, environment="dev") for _ in range(3)]
            for run in runs:
                await run.start()
            for i in range(12):
                await runs[(i * 7) % 3].record_test(f"t{i}", score=1.0, passed=True)
            for run in runs:
                await run.finish()
            return [run.document["_id"] for run in runs]

    oids = asyncio.run(record())

    async def expected() -> list[str]:
        async with MongoDBClient(store, mock_database) as client:
            found: list[str] = []
            for run in await client.evaluation_runs.find({}).sort("started_at", 1).to_list(None):
                tests = await client.test_runs.find({"evaluation_run_id": run["_id"]}).to_list(None)
                found += [test["test_run_id"] for test in tests]
            return found

    async def push() -> tuple[localsync.LocalSyncReport, list[str]]:
        async with MongoDBClient("mongomock://", mock_database) as target:
            async with localsync.local_clients(store, [mock_database]) as local:
                report = await localsync.push_local_store(local, target)
            tests = await target.test_runs.find({}).to_list(None)
            return report, [test["test_run_id"] for test in tests]

    copies: list[dict[str, Any]] = []
    original = localsync._copy_outcome

    async def counting(target: MongoDBClient, run: dict[str, Any]) -> int:
        copies.append(run)
        return await original(target, run)

    monkeypatch.setattr(localsync, "_copy_outcome", counting)
    order = asyncio.run(expected())
    assert len(order) == 12
    report, pushed = asyncio.run(push())
    assert pushed == order
    assert (report.evaluation_runs, report.test_runs, report.finalized, copies) == (3, 12, 0, [])
    reset_embedded_backend()

    # An array holding a run's `_id` matches that run's query: the push falls back to it.
    async def add_odd() -> None:
        async with MongoDBClient(store, mock_database) as client:
            await client.test_runs.insert_one(
                {"test_run_id": "odd", "evaluation_run_id": [oids[1]], "test_id": "odd"}
            )

    asyncio.run(add_odd())
    order = asyncio.run(expected())
    assert "odd" in order
    assert len(order) == 13
    report, pushed = asyncio.run(push())
    assert pushed == order
    assert (report.evaluation_runs, report.test_runs, report.finalized, copies) == (3, 13, 0, [])


@pytest.mark.parametrize("spelling", ["{root}", "{root}/", "{root}/../store", "{root}/./"])
def test_sync_refuses_one_store_under_two_spellings(tmp_path: Path, spelling: str) -> None:
    root = tmp_path / "store"
    assert runner.invoke(app, ["demo", "--url", f"file://{root}", "--runs", "2"]).exit_code == 0
    target = "file://" + spelling.format(root=root)
    result = runner.invoke(app, ["sync", "--from", f"file://{root}", "--to", target])
    assert result.exit_code == 1
    assert result.stderr == "error: --from and --to are the same local store\n"


def test_a_log_line_whose_id_cannot_be_a_key_is_skipped(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    asyncio.run(_save(store, "local", ["a", "b"]))
    log_path = Path(store.removeprefix("file://")) / "local" / LOG
    with log_path.open("ab") as handle:
        handle.write(b'{"c": "test_runs", "put": {"_id": [1, 2]}}\n')
    caplog.set_level(logging.WARNING, logger="evalstore")
    assert asyncio.run(_counts(store, "local")) == (1, 2)
    assert "(an _id that cannot be a key ([1, 2]))" in caplog.text


def test_a_damaged_or_missing_snapshot_reads_what_is_left(
    store: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A new store's snapshot holds just its header; the results are in the log, which
    # is of the snapshot's generation.
    asyncio.run(_save(store, "local", ["a", "b"]))
    snapshot = Path(store.removeprefix("file://")) / "local" / SNAPSHOT
    damaged = bytearray(snapshot.read_bytes())
    damaged[2] ^= 0xFF  # one corrupted byte in the header line
    snapshot.write_bytes(bytes(damaged))
    caplog.set_level(logging.WARNING, logger="evalstore")
    assert asyncio.run(_counts(store, "local")) == (1, 2)  # it was "kept changing" forever
    assert f"the snapshot {snapshot} of the local store is missing or damaged" in caplog.text
    snapshot.unlink()
    assert asyncio.run(_counts(store, "local")) == (1, 2)
