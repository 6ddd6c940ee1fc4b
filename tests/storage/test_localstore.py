"""The local store (`file:///dir`): SQLite files that any number of processes share.

Each database is `<dir>/<database>/evalstore.sqlite3`. Processes record and read
at once; what one stored, the others see; `evalstore sync --from` pushes it all
to MongoDB. The store's files in the former format are in `test_localstore_import.py`,
crashes, damaged files and a busy store in `test_localstore_faults.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evalstore import (
    ConfigurationError,
    DuplicateRunError,
    MetricsStorageService,
    MongoDBClient,
    StorageUnavailableError,
    evaluation_run,
)
from evalstore.cli.app import app
from evalstore.codec import decode
from evalstore.storage.embedded import reset_embedded_backend
from evalstore.storage.sqlite.engine import SqliteEngine
from evalstore.storage.sqlite.where import Where

runner = CliRunner()
EVALSTORE = str(Path(sys.executable).parent / "evalstore")
READ = "read the local store"
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


def _path(store: str) -> Path:
    return Path(store.removeprefix("file://"))


def _env(store: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MONGODB_ENABLED="true",
        MONGODB_CONNECTION_STRING=store,
        MONGODB_DATABASE="local",
        EVALSTORE_DEBUG="1",
        **extra,
    )
    return env


def _list_runs(store: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVALSTORE, "runs", "list", "--url", store, "--db", "local", "--json"],
        capture_output=True,
        text=True,
        check=False,
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
            await client.count("evaluation_runs", {}, action=READ),
            await client.count("test_runs", {}, action=READ),
        )


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _journals(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.ndjson")) if spool.is_dir() else []


# -- one store, many processes -------------------------------------------------------


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


RECORD_AFTER_GO = textwrap.dedent(
    """
    import asyncio, sys
    from evalstore import evaluation_run

    async def main():
        async with evaluation_run(environment="dev", suite=sys.argv[1]) as run:
            print("started", flush=True)
            sys.stdin.readline()  # "go": both processes record from here on
            for i in range(200):
                await run.record_test(f"t{i:03d}", score=float(i % 100), passed=i % 5 != 0)

    asyncio.run(main())
    """
)


def test_two_processes_recording_into_one_store_at_once_both_store_everything(
    store: str, tmp_path: Path
) -> None:
    """No lock to wait for, no spool, no warning: each run holds its 200 results."""
    env = _env(store, EVALSTORE_BATCH_SIZE="5")  # many small write transactions
    recorders = [
        subprocess.Popen(
            [sys.executable, "-c", RECORD_AFTER_GO, suite],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for suite in ("first", "second")
    ]
    for recorder in recorders:
        assert recorder.stdout is not None
        assert recorder.stdout.readline() == "started\n"  # both runs are open
    outputs = [recorder.communicate("go\n", timeout=120) for recorder in recorders]
    exits = [recorder.returncode for recorder in recorders]
    assert (exits, [err for _, err in outputs]) == ([0, 0], ["", ""])

    assert asyncio.run(_counts(store, "local")) == (2, 400)
    listed = _list_runs(store)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert sorted((r["suite"], r["status"], r["num_tests"], r["num_passed"]) for r in runs) == [
        ("first", "completed", 200, 160),
        ("second", "completed", 200, 160),
    ]
    assert _journals(tmp_path / "spool") == []  # nothing waits for `evalstore sync`


MID_RUN = textwrap.dedent(
    """
    import asyncio, sys
    from evalstore import MetricsStorageService, MongoDBClient, evaluation_run

    async def main():
        async with MongoDBClient(sys.argv[1], "local") as client:
            async with evaluation_run(MetricsStorageService(client), environment="dev") as run:
                await run.record_test("t1", score=40.0, passed=True)
                print(run.evaluation_run_id, flush=True)
                sys.stdin.readline()

    asyncio.run(main())
    """
)


def test_a_reader_reads_while_a_writer_is_mid_run(store: str) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", MID_RUN, store],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        run_id = writer.stdout.readline().strip()
        listed = _list_runs(store)  # another process, while the run is open
        assert listed.returncode == 0, listed.stderr
        [run] = json.loads(listed.stdout)
        assert (run["evaluation_run_id"], run["status"]) == (run_id, "running")

        # A write transaction held open does not hold readers back either.
        holder = sqlite3.connect(_path(store) / "local" / "evalstore.sqlite3", isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            listed = _list_runs(store)
            assert listed.returncode == 0, listed.stderr
            [run] = json.loads(listed.stdout)
            assert (run["evaluation_run_id"], run["status"]) == (run_id, "running")
        finally:
            holder.close()  # rolls back
    finally:
        writer.communicate("\n", timeout=120)
    assert writer.returncode == 0
    listed = _list_runs(store)
    [run] = json.loads(listed.stdout)
    assert (run["evaluation_run_id"], run["status"], run["num_tests"], run["score"]) == (
        run_id,
        "completed",
        1,
        40.0,
    )


def test_spellings_of_one_path_share_the_store(store: str) -> None:
    async def go() -> tuple[int, int]:
        async with (
            MongoDBClient(store, "local") as first,
            MongoDBClient(store + "/../store/", "local") as second,
        ):
            await first.insert("test_runs", {"test_run_id": "a"}, what="test run 'a'")
            await second.insert("test_runs", {"test_run_id": "b"}, what="test run 'b'")
            return (
                await first.count("test_runs", {}, action=READ),
                await second.count("test_runs", {}, action=READ),
            )

    assert asyncio.run(go()) == (2, 2)
    assert asyncio.run(_counts(store, "local")) == (0, 2)
    assert [path.name for path in _path(store).iterdir()] == ["local"]


# -- what one write does -------------------------------------------------------------


def test_a_relative_path_is_one_clear_error() -> None:
    with pytest.raises(ConfigurationError) as error:
        MongoDBClient("file://relative/dir")
    assert str(error.value) == (
        "invalid local store 'file://relative/dir': expected file:///absolute/path/to/dir"
    )


def test_a_store_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")

    async def go() -> None:
        async with MongoDBClient(f"file://{tmp_path / 'file' / 'store'}", "local") as client:
            await client.insert("test_runs", {"test_run_id": "a"}, what="test run 'a'")

    with pytest.raises(StorageUnavailableError) as error:
        asyncio.run(go())
    assert str(error.value) == (
        f"cannot open the local store: the local store at {tmp_path}/file/store/local: "
        "Not a directory"
    )


def test_a_refused_duplicate_leaves_no_trace(store: str) -> None:
    async def go() -> None:
        async with MongoDBClient(store, "local") as client:
            await client.insert(
                "test_runs", {"test_run_id": "same", "test_id": "t"}, what="test run 'same'"
            )
            with pytest.raises(DuplicateRunError) as error:
                await client.insert(
                    "test_runs", {"test_run_id": "same", "test_id": "u"}, what="test run 'same'"
                )
            assert str(error.value) == "test run 'same' already exists"

    asyncio.run(go())
    assert asyncio.run(_counts(store, "local")) == (0, 1)
    with sqlite3.connect(_path(store) / "local" / "evalstore.sqlite3") as connection:
        rows = connection.execute("SELECT test_run_id, test_id FROM test_runs").fetchall()
    assert rows == [("same", "t")]


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


T0 = datetime(2025, 12, 5, 10, 30, 0, 123000, tzinfo=timezone.utc)
T0_MS = 1764930600123  # T0 in milliseconds since the Unix epoch
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def test_the_columns_hold_what_the_schema_says(store: str) -> None:
    """ObjectIds as hex, datetimes as milliseconds, `passed` 0/1, tags JSON; `doc` is the rest."""

    async def record() -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
        async with MongoDBClient(store, "local") as client:
            service = MetricsStorageService(client)
            async with evaluation_run(
                service, environment="dev", tags=["baseline", "model=b"], clock=lambda: T0
            ) as run:
                tests = [
                    await run.record_test("t-pass", score=75.0, passed=True),
                    await run.record_test("t-fail", score=25.0, passed=False),
                ]
            stored = await client.read_one("evaluation_runs", {}, action=READ)
            assert stored is not None
            return run.document, tests, stored

    run, tests, stored_run = asyncio.run(record())
    assert stored_run == run
    with sqlite3.connect(_path(store) / "local" / "evalstore.sqlite3") as connection:
        connection.row_factory = _dict_row
        [run_row] = connection.execute("SELECT * FROM evaluation_runs").fetchall()
        test_rows = connection.execute("SELECT * FROM test_runs ORDER BY rowid").fetchall()
        [pragma] = connection.execute("PRAGMA journal_mode").fetchall()

    assert pragma == {"journal_mode": "wal"}
    assert {name: value for name, value in run_row.items() if name != "doc"} == {
        "_id": str(run["_id"]),
        "evaluation_run_id": run["evaluation_run_id"],
        "suite": None,
        "environment": "dev",
        "git_branch": None,
        "status": "completed",
        "started_at": T0_MS,
        "finished_at": T0_MS,
        "last_seen_at": (run["last_seen_at"] - EPOCH) // timedelta(milliseconds=1),
        "score": 50.0,
        "num_tests": 2,
        "system_info_hash": run["system_info_hash"],
        "experiment_tags": '["baseline", "model=b"]',
    }
    assert decode(run_row["doc"]) == run
    assert [{name: value for name, value in row.items() if name != "doc"} for row in test_rows] == [
        {
            "_id": str(test["_id"]),
            "test_run_id": test["test_run_id"],
            "evaluation_run_id": str(run["_id"]),
            "test_id": test["test_id"],
            "status": status,
            "passed": passed,
            "score": score,
            "finished_at": T0_MS,
            "duration_ms": test["duration_ms"],
        }
        for test, status, passed, score in zip(
            tests, ["passed", "failed"], [1, 0], [75.0, 25.0], strict=True
        )
    ]
    assert [decode(row["doc"]) for row in test_rows] == tests


# -- sync: a local store into MongoDB -------------------------------------------------


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
    from evalstore.storage.sync import local_clients, push_local_store

    async def go() -> dict[str, Any] | None:
        async with MongoDBClient(store, mock_database) as client:
            service = MetricsStorageService(client)
            run = evaluation_run(service, environment="dev")
            await run.start()
            await run.record_test("a", score=30.0, passed=False)
            # Pushed while still running, then finished locally.
            async with MongoDBClient("mongomock://", mock_database) as target:
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
    path = _path(store)
    assert unknown.stderr == (
        f"error: the local store at {path} has no database 'other' (it has: local); "
        "choose one with --db or MONGODB_DATABASE\n"
    )
    assert not (path / "other").exists()


def test_sync_opens_each_local_database_once_and_closes_it(
    store: str, mock_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count for the progress bar and the push share one connection per database."""
    asyncio.run(_save(store, mock_database, ["a", "b"]))
    asyncio.run(_save(store, "other", ["c"]))
    engines: list[SqliteEngine] = []
    original = SqliteEngine.__init__

    def tracking(self: SqliteEngine, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        engines.append(self)

    monkeypatch.setattr(SqliteEngine, "__init__", tracking)
    result = runner.invoke(app, ["sync", "--from", store, "--to", "mongomock://", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["test_runs"] == 3
    assert sorted(engine.directory.name for engine in engines) == sorted([mock_database, "other"])
    assert [engine._connection for engine in engines] == [None, None]  # both closed
    assert asyncio.run(_counts("mongomock://", mock_database)) == (1, 2)
    assert asyncio.run(_counts("mongomock://", "other")) == (1, 1)


def test_sync_pushes_each_runs_test_runs_in_their_order(
    store: str, mock_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interleaved test runs, and one of an odd `evaluation_run_id`: what per-run reads find."""
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
            for run in await client.read(
                "evaluation_runs", {}, sort=[("started_at", 1)], action=READ
            ):
                tests = await client.read(
                    "test_runs", {"evaluation_run_id": run["_id"]}, action=READ
                )
                found += [test["test_run_id"] for test in tests]
            return found

    async def push() -> tuple[localsync.LocalSyncReport, list[str]]:
        async with MongoDBClient("mongomock://", mock_database) as target:
            async with localsync.local_clients(store, [mock_database]) as local:
                report = await localsync.push_local_store(local, target)
            tests = await target.read("test_runs", {}, action=READ)
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

    # A test run whose `evaluation_run_id` is an array holding a run's `_id` (MongoDB's
    # query for that run would match it): the push no longer groups test runs by run but
    # reads each run's own. The local store keeps a field of another type than its column's
    # as NULL (see `storage.sqlite.schema`), so no run's query finds this one: it is not
    # pushed, and stays in the local store.
    async def add_odd() -> int:
        async with MongoDBClient(store, mock_database) as client:
            await client.insert(
                "test_runs",
                {"test_run_id": "odd", "evaluation_run_id": [oids[1]], "test_id": "odd"},
                what="test run 'odd'",
            )
            return await client.count("test_runs", {}, action=READ)

    assert asyncio.run(add_odd()) == 13
    assert asyncio.run(expected()) == order
    report, pushed = asyncio.run(push())
    assert pushed == order
    assert (report.evaluation_runs, report.test_runs, report.finalized, copies) == (3, 12, 0, [])


@pytest.mark.parametrize("spelling", ["{root}", "{root}/", "{root}/../store", "{root}/./"])
def test_sync_refuses_one_store_under_two_spellings(tmp_path: Path, spelling: str) -> None:
    root = tmp_path / "store"
    assert runner.invoke(app, ["demo", "--url", f"file://{root}", "--runs", "2"]).exit_code == 0
    target = "file://" + spelling.format(root=root)
    result = runner.invoke(app, ["sync", "--from", f"file://{root}", "--to", target])
    assert result.exit_code == 1
    assert result.stderr == "error: --from and --to are the same local store\n"


def test_only_literal_prefix_patterns_compile() -> None:
    where = Where("evaluation_runs")
    assert where.compile({"evaluation_run_id": {"$regex": "^a\\.c"}}) == (
        "((substr(evaluation_run_id, 1, :w0) = :w1))"
    )
    assert where.params == {"w0": 3, "w1": "a.c"}
    with pytest.raises(ValueError, match="only literal prefix patterns"):
        Where("evaluation_runs").compile({"evaluation_run_id": {"$regex": "^a.c"}})
