"""A local store in the format before SQLite is imported when it is first opened.

`data/legacy_store/` was recorded by the old code (`snapshot.ndjson` and `log.ndjson`
per database) and `data/legacy_store_expected.ndjson` is what the old code read back
from it (see `data/make_legacy_store.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalstore import MongoDBClient
from evalstore.cli.app import app
from evalstore.codec import decode
from evalstore.models import Document
from evalstore.storage.embedded import reset_embedded_backend

runner = CliRunner()
DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "legacy_store"
EXPECTED = DATA / "legacy_store_expected.ndjson"
READ = "read the local store"
LEGACY_FILES = ("snapshot.ndjson", "log.ndjson")
COUNTS = {"evalstore": (3, 14), "other": (1, 3)}


def expected(database: str, collection: str) -> list[Document]:
    """What the old code returned for one collection, in store order."""
    found = []
    for line in EXPECTED.read_bytes().splitlines():
        entry = decode(line)
        if entry["db"] == database and entry["c"] == collection:
            found.append(entry["doc"])
    return found


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A copy of the old code's store: two databases in the former format."""
    root = tmp_path / "store"
    shutil.copytree(FIXTURE, root)
    return root


async def _read_all(root: Path, database: str) -> tuple[list[Document], list[Document]]:
    async with MongoDBClient(f"file://{root}", database) as client:
        return (
            await client.read("evaluation_runs", {}, action=READ),
            await client.read("test_runs", {}, action=READ),
        )


async def _counts(url: str, database: str) -> tuple[int, int]:
    async with MongoDBClient(url, database) as client:
        return (
            await client.count("evaluation_runs", {}, action=READ),
            await client.count("test_runs", {}, action=READ),
        )


def _imports(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "from the former local store" in r.message]


@pytest.mark.parametrize("database", ["evalstore", "other"])
def test_a_store_in_the_old_format_is_imported_on_first_open(
    legacy: Path, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evalstore")

    runs, tests = asyncio.run(_read_all(legacy, database))

    assert runs == expected(database, "evaluation_runs")
    assert tests == expected(database, "test_runs")
    assert (len(runs), len(tests)) == COUNTS[database]
    directory = legacy / database
    assert _imports(caplog) == [
        f"evalstore: imported {len(runs)} evaluation runs and {len(tests)} test runs of "
        f"{directory} from the former local store format"
    ]
    for name in LEGACY_FILES:  # kept for the user, under a name that is not imported again
        assert not (directory / name).exists()
        assert (directory / f"{name}.imported").read_bytes() == (
            FIXTURE / database / name
        ).read_bytes()
    assert (directory / "evalstore.sqlite3").is_file()
    [other] = {"evalstore", "other"} - {database}  # not opened: left as it was
    assert sorted(path.name for path in (legacy / other).iterdir()) == sorted(LEGACY_FILES)


def test_opening_an_imported_store_again_imports_nothing(
    legacy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evalstore")
    runs, tests = asyncio.run(_read_all(legacy, "evalstore"))
    caplog.clear()

    assert asyncio.run(_read_all(legacy, "evalstore")) == (runs, tests)
    assert _imports(caplog) == []

    # A run deleted since, then the old files put back (a copy restored, or a crash
    # between the import's commit and its renames): the import is not done twice.
    async def delete_first_run() -> int:
        async with MongoDBClient(f"file://{legacy}", "evalstore") as client:
            await client.delete("test_runs", {"evaluation_run_id": runs[0]["_id"]}, action="x")
            return await client.delete("evaluation_runs", {"_id": runs[0]["_id"]}, action="x")

    assert asyncio.run(delete_first_run()) == 1
    for name in LEGACY_FILES:
        shutil.copy(FIXTURE / "evalstore" / name, legacy / "evalstore" / name)

    left_runs, left_tests = asyncio.run(_read_all(legacy, "evalstore"))

    assert left_runs == runs[1:]
    assert left_tests == [test for test in tests if test["evaluation_run_id"] != runs[0]["_id"]]
    assert _imports(caplog) == []
    assert sorted(p.name for p in (legacy / "evalstore").iterdir() if "ndjson" in p.name) == [
        "log.ndjson.imported",
        "log.ndjson.imported.2",
        "snapshot.ndjson.imported",
        "snapshot.ndjson.imported.2",
    ]


def test_runs_list_lists_the_runs_of_a_store_in_the_old_format(legacy: Path) -> None:
    result = runner.invoke(
        app, ["runs", "list", "--url", f"file://{legacy}", "--db", "evalstore", "--json"]
    )

    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    newest_first = sorted(
        expected("evalstore", "evaluation_runs"), key=lambda run: run["started_at"], reverse=True
    )
    assert [(r["evaluation_run_id"], r["status"], r["num_tests"]) for r in runs] == [
        (run["evaluation_run_id"], run["status"], run["num_tests"]) for run in newest_first
    ]
    assert (legacy / "evalstore" / "snapshot.ndjson.imported").is_file()


@pytest.fixture
def mock_target() -> Iterator[None]:
    """The embedded backend, empty, as the sync's target (its databases: the store's)."""
    reset_embedded_backend()
    yield
    reset_embedded_backend()


def test_sync_pushes_a_store_in_the_old_format(legacy: Path, mock_target: None) -> None:
    result = runner.invoke(app, ["sync", "--from", f"file://{legacy}", "--to", "mongomock://"])

    assert result.exit_code == 0, result.output
    for database, counts in COUNTS.items():
        assert asyncio.run(_counts("mongomock://", database)) == counts
