"""A local store written by an older evalstore is brought up to the current schema on open.

Schema 5 made `duration_ms` a column of `test_runs` (and part of the covering index
`test_id_finished_at`), which the durations queries read instead of each row's JSON.
A store of schema 4 is built here with the SQL that evalstore wrote then; opened by
this evalstore, it gets the column, filled from `doc`, in one transaction, and
`evalstore slowest` answers as the embedded backend does with the same documents.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evalstore import MetricsStorageService, MongoDBClient, StorageUnavailableError, evaluation_run
from evalstore.cli.app import app
from evalstore.models import Document
from evalstore.storage.embedded import reset_embedded_backend
from evalstore.storage.sqlite import engine as sqlite_engine
from evalstore.storage.sqlite.documents import encode_document
from evalstore.storage.sqlite.schema import FILE_NAME, SCHEMA_VERSION
from evalstore.storage.sqlite.where import to_ms

runner = CliRunner()
UTC = timezone.utc
DATABASE = "local"
WINDOW = ("--since", "2025-03-01", "--until", "2025-03-20")

SCHEMA_4 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE evaluation_runs (
    _id TEXT PRIMARY KEY, evaluation_run_id TEXT, suite TEXT, environment TEXT,
    git_branch TEXT, status TEXT, started_at INTEGER, finished_at INTEGER,
    last_seen_at INTEGER, score REAL, num_tests INTEGER, system_info_hash TEXT,
    experiment_tags TEXT, doc TEXT NOT NULL
);
CREATE TABLE test_runs (
    _id TEXT PRIMARY KEY, test_run_id TEXT, evaluation_run_id TEXT, test_id TEXT,
    status TEXT, passed INTEGER, score REAL, finished_at INTEGER, doc TEXT NOT NULL
);
CREATE INDEX started_at ON evaluation_runs (started_at DESC);
CREATE UNIQUE INDEX evaluation_run_id_unique ON evaluation_runs (evaluation_run_id);
CREATE INDEX system_info_hash ON evaluation_runs (system_info_hash);
CREATE INDEX run_score ON evaluation_runs (score DESC);
CREATE INDEX git_branch_started_at ON evaluation_runs (git_branch, started_at DESC);
CREATE INDEX suite_started_at ON evaluation_runs (suite, started_at DESC);
CREATE UNIQUE INDEX test_run_id_unique ON test_runs (test_run_id);
CREATE INDEX test_id_finished_at ON test_runs
    (test_id, finished_at, status, passed, score, evaluation_run_id);
CREATE INDEX test_evaluation_run_id ON test_runs (evaluation_run_id);
CREATE INDEX test_finished_at ON test_runs (finished_at);
PRAGMA user_version = 4;
"""
"""The tables of runs and test runs (and their indexes) as evalstore created them at schema 4
(its other tables do not matter here: they are created when missing)."""


def at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def mock_database() -> Iterator[str]:
    yield f"test_{uuid.uuid4().hex[:12]}"
    reset_embedded_backend()


async def _recorded(database: str) -> tuple[list[Document], list[Document]]:
    """Two runs recorded on the embedded backend; their documents as stored there."""
    async with MongoDBClient("mongomock://", database) as client:
        service = MetricsStorageService(client)
        for day, tests in (
            (3, [("a", "passed", 100.0), ("b", "passed", 300.0), ("c", "passed", 1.5)]),
            (4, [("a", "passed", 200.0), ("b", "failed", 100.0), ("c", "passed", 2.5)]),
        ):
            times = iter([at(day), at(day, 11)])
            async with evaluation_run(
                service,
                environment="dev",
                clock=lambda times=times: next(times),  # type: ignore[misc]
                repo_path=".",
                monitor=False,
            ) as run:
                for index, (test_id, status, duration) in enumerate(
                    [*tests, ("d", "passed", 40.0), ("e", "passed", 60.0), ("s", "skipped", 9.0)]
                ):
                    await run.record_test(
                        test_id,
                        status=status,  # type: ignore[arg-type]
                        finished_at=at(day, 10, index + 1),
                        duration_ms=duration,
                    )
        runs = await client.read("evaluation_runs", {}, action="read")
        tests = await client.read("test_runs", {}, action="read")
    return runs, tests


def _odd_durations(tests: list[Document]) -> list[Document]:
    """What other writers may have stored: an integer, a string, no duration at all."""
    changed = []
    for doc in tests:
        doc = dict(doc)
        if doc["test_id"] == "c" and doc["duration_ms"] == 2.5:
            doc["duration_ms"] = 7  # an integer stays one
        elif doc["test_id"] == "d":
            doc["duration_ms"] = "slow"  # no number: left out
        elif doc["test_id"] == "e" and doc["finished_at"] > at(4):
            del doc["duration_ms"]
        changed.append(doc)
    return changed


def _schema_4_store(root: Path, runs: list[Document], tests: list[Document]) -> Path:
    """A local store as evalstore wrote it at schema 4, holding `runs` and `tests`."""
    path = root / DATABASE / FILE_NAME
    path.parent.mkdir(parents=True)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.executescript(SCHEMA_4)
        connection.execute("BEGIN")
        for run in runs:
            connection.execute(
                "INSERT INTO evaluation_runs (_id, evaluation_run_id, environment, status, "
                "started_at, finished_at, score, num_tests, doc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(run["_id"]),
                    run["evaluation_run_id"],
                    run["environment"],
                    run["status"],
                    to_ms(run["started_at"]),
                    to_ms(run["finished_at"]),
                    run["score"],
                    run["num_tests"],
                    encode_document(run),
                ),
            )
        for doc in tests:
            connection.execute(
                "INSERT INTO test_runs (_id, test_run_id, evaluation_run_id, test_id, status, "
                "passed, score, finished_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(doc["_id"]),
                    doc["test_run_id"],
                    str(doc["evaluation_run_id"]),
                    doc["test_id"],
                    doc["status"],
                    int(doc["passed"]),
                    doc["score"],
                    to_ms(doc["finished_at"]),
                    encode_document(doc),
                ),
            )
        connection.execute("COMMIT")
    finally:
        connection.close()
    return path


async def _reference(database: str, runs: list[Document], tests: list[Document]) -> None:
    """The same documents on the embedded backend: what every query must answer."""
    async with MongoDBClient("mongomock://", database) as client:
        await client.drop_database()
    async with MongoDBClient("mongomock://", database) as client:
        service = MetricsStorageService(client)
        for run in runs:
            await service.upsert_evaluation_run(run)
        assert await service.upsert_test_runs(tests) == []


def _cli(url: str, database: str, *args: str) -> Any:
    result = runner.invoke(app, [*args, "--url", url, "--db", database, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _schema(path: Path) -> tuple[int, list[str], list[str]]:
    """The store's schema version, the columns of `test_runs` and of its covering index."""
    with sqlite3.connect(path) as connection:
        [(version,)] = connection.execute("PRAGMA user_version").fetchall()
        columns = [row[1] for row in connection.execute("PRAGMA table_info(test_runs)")]
        indexed = [
            row[2]
            for row in connection.execute("PRAGMA index_xinfo(test_id_finished_at)")
            if row[5]  # key columns only
        ]
    return version, columns, indexed


def test_a_schema_4_store_gets_the_duration_column_and_answers_as_before(
    tmp_path: Path, mock_database: str
) -> None:
    runs, tests = asyncio.run(_recorded(mock_database))
    tests = _odd_durations(tests)
    path = _schema_4_store(tmp_path / "store", runs, tests)
    asyncio.run(_reference(mock_database, runs, tests))
    assert _schema(path) == (
        4,
        [
            "_id",
            "test_run_id",
            "evaluation_run_id",
            "test_id",
            "status",
            "passed",
            "score",
            "finished_at",
            "doc",
        ],
        ["test_id", "finished_at", "status", "passed", "score", "evaluation_run_id"],
    )

    url = f"file://{tmp_path / 'store'}"
    slowest = _cli(url, DATABASE, "slowest", *WINDOW)

    version, columns, indexed = _schema(path)
    assert version == SCHEMA_VERSION == 5
    assert columns[-1] == "duration_ms"  # added at the end, after `doc`
    assert indexed[-1] == "duration_ms"
    with sqlite3.connect(path) as connection:
        filled = connection.execute(
            "SELECT test_id, duration_ms, typeof(duration_ms) FROM test_runs ORDER BY rowid"
        ).fetchall()
    assert [row for row in filled if row[0] == "c"] == [("c", 1.5, "real"), ("c", 7, "integer")]
    assert [row[1] for row in filled if row[0] == "d"] == [None, None]  # "slow" is no number
    assert [row[1] for row in filled if row[0] == "e"] == [60.0, None]  # the second has none

    assert slowest == _cli("mongomock://", mock_database, "slowest", *WINDOW)
    assert [(t["test_id"], t["runs"], t["mean_ms"], t["last_ms"]) for t in slowest] == [
        ("b", 2, 200.0, 100.0),
        ("a", 2, 150.0, 200.0),
        ("e", 1, 60.0, 60.0),
        ("c", 2, 4.25, 7),
    ]
    for test_id in ("c", "d", "e"):
        args = ("trend", "--test", test_id, "--duration", *WINDOW)
        assert _cli(url, DATABASE, *args) == _cli("mongomock://", mock_database, *args)

    # Opened again (by this or another process), the store is left as it is.
    assert _cli(url, DATABASE, "slowest", *WINDOW) == slowest
    assert _schema(path) == (version, columns, indexed)


def test_a_failed_migration_leaves_the_store_at_schema_4(
    tmp_path: Path, mock_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, tests = asyncio.run(_recorded(mock_database))
    path = _schema_4_store(tmp_path / "store", runs, tests)
    before = _schema(path)
    # The fill fails after the column was added: all of it is rolled back.
    monkeypatch.setattr(sqlite_engine, "DURATION_FILL", "UPDATE test_runs SET no_such_column = 1")

    async def open_store() -> None:
        async with MongoDBClient(f"file://{tmp_path / 'store'}", DATABASE) as client:
            await client.ping()

    with pytest.raises(StorageUnavailableError, match="no_such_column"):
        asyncio.run(open_store())
    assert _schema(path) == before

    monkeypatch.undo()
    asyncio.run(open_store())
    assert _schema(path)[0] == SCHEMA_VERSION


def test_a_new_store_fills_the_column_on_every_write_path(tmp_path: Path) -> None:
    """Insert, upsert and replace keep `duration_ms` as the document holds it."""

    async def write() -> None:
        async with MongoDBClient(f"file://{tmp_path / 'store'}", DATABASE) as client:
            service = MetricsStorageService(client)
            async with evaluation_run(service, environment="dev", monitor=False) as run:
                await run.record_test("templated", duration_ms=12.5, score=1.0)
            run_oid = run.document["_id"]
            base = {"evaluation_run_id": run_oid, "status": "passed", "passed": True}
            assert (
                await service.upsert_test_runs(
                    [
                        {**base, "test_run_id": "r/int", "test_id": "int", "duration_ms": 3},
                        {**base, "test_run_id": "r/text", "test_id": "text", "duration_ms": "x"},
                        {**base, "test_run_id": "r/flag", "test_id": "flag", "duration_ms": True},
                    ]
                )
                == []
            )
            oid = await client.insert(
                "test_runs",
                {**base, "test_run_id": "r/ins", "test_id": "ins", "duration_ms": 4.0},
                what="a test run",
            )
            await client.replace(
                "test_runs",
                {**base, "_id": oid, "test_run_id": "r/ins", "test_id": "ins", "duration_ms": 8.0},
                what="a test run",
            )

    asyncio.run(write())
    with sqlite3.connect(tmp_path / "store" / DATABASE / FILE_NAME) as connection:
        rows = dict(connection.execute("SELECT test_id, duration_ms FROM test_runs").fetchall())
    assert rows == {"templated": 12.5, "int": 3, "text": None, "flag": None, "ins": 8.0}
