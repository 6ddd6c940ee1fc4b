"""Faults of the recording machine itself: a full disk under the spool, an unusable spool folder.

The journal is a safety net, not a gate (issue 16): when it cannot be written the
results still go to the store, the caller is never raised at, and one warning
counts what is stored, what waits in the journal and what was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from bson import ObjectId
from typer.testing import CliRunner

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.cli import app
from evalstore.recording.journal import Journal, read_journal
from evalstore.recording.replay import replay_spool

DEAD = "mongodb://127.0.0.1:1"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "evalstore"]


async def test_a_full_spool_disk_loses_nothing_when_the_store_answers(
    tiny_disk: Path,
    embedded: MetricsStorageService,
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clean_env.setenv("EVALSTORE_SPOOL_DIR", str(tiny_disk / "spool"))
    caplog.set_level(logging.WARNING, logger="evalstore")
    async with evaluation_run(embedded, environment="dev") as run:
        for i in range(3000):
            await run.record_test(f"test_{i:04d}", passed=True)
    assert run.document["status"] == "completed"
    assert run.document["num_tests"] == 3000
    assert await embedded.client.test_runs.count_documents({}) == 3000
    [warning] = warnings_of(caplog)
    assert warning == (
        f"evalstore: cannot write the journal {tiny_disk / 'spool' / run.evaluation_run_id}"
        f".ndjson (No space left on device); all 3000 results of run {run.evaluation_run_id} "
        "are stored"
    )
    assert list((tiny_disk / "spool").glob("*.ndjson")) == []  # all stored: journal removed


async def test_a_full_disk_and_a_dead_server_count_what_is_lost(
    tiny_disk: Path,
    database: str,
    embedded: MetricsStorageService,
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool = tiny_disk / "spool"
    clean_env.setenv("EVALSTORE_SPOOL_DIR", str(spool))
    caplog.set_level(logging.WARNING, logger="evalstore")
    async with MongoDBClient(DEAD, database, timeout_ms=100) as client:
        run = evaluation_run(MetricsStorageService(client), environment="dev")
        async with run:
            for i in range(1000):
                await run.record_test(f"test_{i:04d}", passed=True)
    # The server failed first, while the journal still took results; the disk filled later.
    unavailable, summary = warnings_of(caplog)
    assert unavailable.startswith("evalstore: MongoDB is unavailable (cannot reach MongoDB")
    prefix = (
        f"evalstore: cannot write the journal {spool / run.evaluation_run_id}.ndjson "
        f"(No space left on device); run {run.evaluation_run_id}: 0 of 1000 results stored, "
    )
    assert summary.startswith(prefix)
    kept_text, lost_text = summary.removeprefix(prefix).split(" kept in the journal ")
    kept, lost = int(kept_text), int(lost_text.split(", ")[-1].removesuffix(" lost"))
    assert kept + lost == 1000
    assert kept > 0
    assert lost > 0
    # What the warning says is in the journal is what `evalstore sync` stores.
    report = await replay_spool(spool, lambda db: MetricsStorageService(embedded.client))
    assert (report.journals, report.failed) == (1, [])
    assert await embedded.client.test_runs.count_documents({}) == kept


async def test_an_unusable_spool_folder_is_a_warning_and_results_go_to_the_store(
    tmp_path: Path,
    embedded: MetricsStorageService,
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    clean_env.setenv("EVALSTORE_SPOOL_DIR", str(a_file / "spool"))
    caplog.set_level(logging.WARNING, logger="evalstore")
    async with evaluation_run(embedded, environment="dev") as run:
        for i in range(10):
            await run.record_test(f"t{i}", passed=True)
    assert run.document["num_tests"] == 10
    assert await embedded.client.test_runs.count_documents({}) == 10
    [warning] = warnings_of(caplog)
    assert warning == (
        f"evalstore: cannot write the journal {a_file / 'spool' / run.evaluation_run_id}.ndjson "
        f"(Not a directory); all 10 results of run {run.evaluation_run_id} are stored"
    )


async def test_a_local_store_on_a_full_disk_never_raises_from_the_block(
    tiny_disk: Path,
    journals: Callable[[], list[Path]],
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = tiny_disk / "store"
    clean_env.setenv("MONGODB_ENABLED", "true")
    clean_env.setenv("MONGODB_CONNECTION_STRING", f"file://{store}")
    caplog.set_level(logging.WARNING, logger="evalstore")
    async with evaluation_run(environment="dev") as run:  # evalstore owns the client
        for i in range(2000):
            await run.record_test(f"t{i:04d}", passed=True)
    assert run.document["num_tests"] == 2000
    messages = warnings_of(caplog)
    assert messages[0].startswith(
        f"evalstore: the local store is unavailable (cannot open the local store: "
        f"the disk of the local store at {store / 'vt_metrics'} is full); "
    )
    assert "results are kept in " in messages[0]
    assert "(or run `evalstore sync`)" in messages[0]
    [journal] = journals()  # every result is safe in the journal, for `evalstore sync`
    assert journal.read_text().count('"kind": "test"') == 2000


def test_sync_names_an_unusable_spool_folder_in_one_line(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for spool, reason in (
        (a_file, "it is a file"),
        (a_file / "spool", f"it goes through the file {a_file}"),
    ):
        clean_env.setenv("EVALSTORE_SPOOL_DIR", str(spool))
        result = CliRunner().invoke(app, ["sync", "--url", "mongomock://"])
        assert result.exit_code == 1
        assert result.stderr == (
            f"error: EVALSTORE_SPOOL_DIR={spool} is not a usable folder: {reason}; "
            "point it at a folder (or unset it for the default)\n"
        )


def test_a_failed_append_leaves_no_half_line_and_the_journal_goes_on_when_space_is_back(
    tiny_disk: Path,
) -> None:
    run = {"_id": ObjectId(), "evaluation_run_id": "run-1", "status": "running"}
    journal = Journal.create(tiny_disk, run, database="db", target="t", fsync="never")
    filler = tiny_disk / "filler"
    filler.write_bytes(b"x" * 40_000)  # leave a little room
    doc = {"test_run_id": "", "evaluation_run_id": run["_id"], "score": 50.0}
    accepted = []
    for i in range(10_000):
        try:
            journal.append({"kind": "test", "doc": {**doc, "test_run_id": f"t{i:05d}"}})
        except OSError:
            break
        accepted.append(f"t{i:05d}")
    else:
        pytest.fail("the disk never filled")
    assert journal.path.read_bytes().endswith(b"\n")  # the failed line was cut off whole
    filler.unlink()  # space is back
    for i in range(10_000, 10_010):
        journal.append({"kind": "test", "doc": {**doc, "test_run_id": f"t{i:05d}"}})
        accepted.append(f"t{i:05d}")
    journal.close()
    contents = read_journal(journal.path)
    assert contents is not None
    assert contents.skipped_lines == 0
    assert list(contents.tests) == accepted  # every accepted line, none merged or lost
