"""Reading the local store's former format (snapshot.ndjson + log.ndjson) to import it.

`data/legacy_store/` was recorded by the old code and `data/legacy_store_expected.ndjson`
is what the old code returned for it (see `data/make_legacy_store.py`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from bson import ObjectId

from evalstore.codec import decode, encode
from evalstore.errors import ConfigurationError
from evalstore.models import Document
from evalstore.storage.sqlite import legacy
from evalstore.storage.sqlite.legacy import (
    LEGACY_FILES,
    LegacyDatabase,
    has_legacy_files,
    read_legacy_database,
    retire_legacy_files,
)

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "legacy_store"
EXPECTED = DATA / "legacy_store_expected.ndjson"
HEADER_1 = {"kind": "header", "format": 1, "generation": 1}
HEADER_2 = {"kind": "header", "format": 1, "generation": 2}
OID_A = ObjectId("0123456789abcdef01234567")
OID_B = ObjectId("0123456789abcdef01234568")
OID_C = ObjectId("0123456789abcdef01234569")
STARTED = datetime(2025, 11, 3, 9, 0, tzinfo=timezone.utc)


def expected(database: str, collection: str) -> list[Document]:
    """What the old code returned for one collection, in store order."""
    found = []
    for line in EXPECTED.read_bytes().splitlines(keepends=True):
        entry = decode(line)
        if entry["db"] == database and entry["c"] == collection:
            found.append(entry["doc"])
    return found


def copy_database(tmp_path: Path, database: str = "evalstore") -> Path:
    target = tmp_path / "store" / database
    shutil.copytree(FIXTURE / database, target)
    return target


def write(path: Path, entries: Iterable[Document]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(encode(entry) for entry in entries))


def run(oid: ObjectId, name: str) -> Document:
    return {"_id": oid, "evaluation_run_id": name, "started_at": STARTED, "status": "completed"}


def records(path: Path, kind: str) -> list[Document]:
    return [entry for entry in map(decode, path.read_bytes().splitlines()) if kind in entry]


# -- the fixture the old code recorded ---------------------------------------------------


@pytest.mark.parametrize(("database", "runs", "tests"), [("evalstore", 3, 14), ("other", 1, 3)])
def test_the_fixture_reads_as_the_old_store_returned_it(
    database: str, runs: int, tests: int
) -> None:
    found = read_legacy_database(FIXTURE / database)

    assert found == LegacyDatabase(
        evaluation_runs=expected(database, "evaluation_runs"),
        test_runs=expected(database, "test_runs"),
        skipped_lines=0,
    )
    assert (len(found.evaluation_runs), len(found.test_runs)) == (runs, tests)


def test_the_fixture_holds_a_compacted_snapshot_and_a_log_with_deletions() -> None:
    snapshot, log = FIXTURE / "evalstore" / "snapshot.ndjson", FIXTURE / "evalstore" / "log.ndjson"
    assert decode(snapshot.read_bytes().splitlines()[0]) == HEADER_2
    assert decode(log.read_bytes().splitlines()[0]) == HEADER_2
    assert len(records(snapshot, "put")) == 6
    assert len(records(log, "put")) == 17
    deleted = {entry["del"] for entry in records(log, "del")}
    assert len(deleted) == 3

    found = read_legacy_database(FIXTURE / "evalstore")

    kept = {doc["_id"] for doc in found.evaluation_runs + found.test_runs}
    assert deleted & kept == set()
    assert [doc["git_branch"] for doc in found.evaluation_runs] == [
        "main",
        "feature/retrieval",
        "main",
    ]
    assert [doc["status"] for doc in found.evaluation_runs] == [
        "completed",
        "completed",
        "interrupted",
    ]
    assert found.evaluation_runs[0]["started_at"] == STARTED
    assert found.evaluation_runs[0]["started_at"].tzinfo is timezone.utc
    assert isinstance(found.test_runs[0]["evaluation_run_id"], ObjectId)


# -- lines and records ----------------------------------------------------------------


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    directory = copy_database(tmp_path)
    line = encode({"c": "test_runs", "put": {"_id": OID_A, "test_id": "torn"}})
    with (directory / "log.ndjson").open("ab") as handle:
        handle.write(line[: len(line) // 2])

    found = read_legacy_database(directory)

    assert found == LegacyDatabase(
        evaluation_runs=expected("evalstore", "evaluation_runs"),
        test_runs=expected("evalstore", "test_runs"),
        skipped_lines=1,
    )


def test_a_damaged_line_is_skipped_and_the_lines_after_it_are_read(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    write(
        directory / "snapshot.ndjson", [HEADER_1, {"c": "evaluation_runs", "put": run(OID_A, "a")}]
    )
    with (directory / "snapshot.ndjson").open("ab") as handle:
        handle.write(b'{"c": "evaluation_runs", "put": {"_id": [1]}}\n')  # not a key
        handle.write(b"\xff not utf-8\n")
        handle.write(b'{"c": "evaluation_runs", "put": {"_id": {"$oid": "zz"}}}\n')
        handle.write(encode({"c": "evaluation_runs", "put": run(OID_B, "b")}))

    found = read_legacy_database(directory)

    assert found == LegacyDatabase([run(OID_A, "a"), run(OID_B, "b")], [], skipped_lines=3)


def test_a_del_record_removes_the_document(tmp_path: Path) -> None:
    directory = copy_database(tmp_path)
    tests = expected("evalstore", "test_runs")
    with (directory / "log.ndjson").open("ab") as handle:
        handle.write(encode({"c": "test_runs", "del": tests[1]["_id"]}))

    found = read_legacy_database(directory)

    assert found.test_runs == [tests[0], *tests[2:]]
    assert found.evaluation_runs == expected("evalstore", "evaluation_runs")


def test_a_put_replaces_in_place_and_a_deleted_document_put_again_goes_last(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "db"
    a, b, c = run(OID_A, "a"), run(OID_B, "b"), run(OID_C, "c")
    write(
        directory / "snapshot.ndjson",
        [HEADER_1, *({"c": "evaluation_runs", "put": doc} for doc in (a, b, c))],
    )
    a2 = {**a, "status": "failed"}
    write(
        directory / "log.ndjson",
        [
            HEADER_1,
            {"c": "evaluation_runs", "put": a2},
            {"c": "evaluation_runs", "del": OID_B},
            {"c": "evaluation_runs", "put": b},
            {"c": "evaluation_runs", "del": OID_C},
            {"c": "other_collection", "put": {"_id": OID_A}},
            {"c": "test_runs", "del": OID_A},
        ],
    )

    assert read_legacy_database(directory) == LegacyDatabase([a2, b], [], skipped_lines=0)


# -- generations -------------------------------------------------------------------------


def test_a_log_older_than_the_snapshot_is_ignored(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    write(
        directory / "snapshot.ndjson", [HEADER_2, {"c": "evaluation_runs", "put": run(OID_A, "a")}]
    )
    write(directory / "log.ndjson", [HEADER_1, {"c": "evaluation_runs", "put": run(OID_B, "b")}])
    with (directory / "log.ndjson").open("ab") as handle:
        handle.write(b"torn")

    assert read_legacy_database(directory) == LegacyDatabase([run(OID_A, "a")], [], 0)


def test_a_missing_snapshot_leaves_what_the_log_holds(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    write(directory / "log.ndjson", [HEADER_2, {"c": "test_runs", "put": {"_id": OID_A}}])

    assert read_legacy_database(directory) == LegacyDatabase([], [{"_id": OID_A}], 0)


def test_a_compaction_while_reading_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "db"
    a, b = run(OID_A, "a"), run(OID_B, "b")
    write(directory / "snapshot.ndjson", [HEADER_1, {"c": "evaluation_runs", "put": a}])
    write(directory / "log.ndjson", [HEADER_1, {"c": "evaluation_runs", "put": b}])
    original = legacy._read_file
    compactions = []

    def compact_before_the_first_log_read(path: Path) -> legacy._File:
        if path.name == "log.ndjson" and not compactions:
            compactions.append(path)
            puts = [{"c": "evaluation_runs", "put": doc} for doc in (a, b)]
            write(directory / "snapshot.ndjson", [HEADER_2, *puts])
            write(directory / "log.ndjson", [HEADER_2])
        return original(path)

    monkeypatch.setattr(legacy, "_read_file", compact_before_the_first_log_read)

    assert read_legacy_database(directory) == LegacyDatabase([a, b], [], 0)
    assert len(compactions) == 1


@pytest.mark.parametrize("name", LEGACY_FILES)
def test_an_unknown_format_is_a_configuration_error_naming_the_directory(
    tmp_path: Path, name: str
) -> None:
    directory = tmp_path / "store" / "evalstore"
    write(directory / name, [{"kind": "header", "format": 2, "generation": 1}])

    with pytest.raises(ConfigurationError) as caught:
        read_legacy_database(directory)

    assert str(caught.value) == (
        f"cannot import the local store database at {directory}: {name} has format 2, "
        "this evalstore reads format 1; upgrade evalstore or move the directory away"
    )


# -- retiring the files ----------------------------------------------------------------


def test_retire_renames_the_files_and_they_are_no_longer_legacy(tmp_path: Path) -> None:
    directory = copy_database(tmp_path)
    contents = [(directory / name).read_bytes() for name in LEGACY_FILES]
    assert has_legacy_files(directory) is True

    retired = retire_legacy_files(directory)

    assert retired == [
        directory / "snapshot.ndjson.imported",
        directory / "log.ndjson.imported",
    ]
    assert [path.read_bytes() for path in retired] == contents
    assert has_legacy_files(directory) is False
    assert sorted(path.name for path in directory.iterdir()) == [
        "log.ndjson.imported",
        "snapshot.ndjson.imported",
    ]
    assert retire_legacy_files(directory) == []


def test_retire_keeps_an_earlier_import(tmp_path: Path) -> None:
    directory = tmp_path / "db"
    write(directory / "log.ndjson.imported", [HEADER_1])
    write(directory / "log.ndjson", [HEADER_2])

    assert retire_legacy_files(directory) == [directory / "log.ndjson.imported.2"]
    assert decode((directory / "log.ndjson.imported").read_bytes()) == HEADER_1
    assert decode((directory / "log.ndjson.imported.2").read_bytes()) == HEADER_2


def test_a_directory_without_the_files_has_no_legacy_store(tmp_path: Path) -> None:
    assert has_legacy_files(tmp_path) is False
    assert has_legacy_files(tmp_path / "missing") is False
