"""The issue's fault tests: SIGKILL, a server down for a whole run, failing writes, replays."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.recording.journal import JournalContents, read_journal
from evalstore.recording.replay import ReplayReport

Sync = Callable[[], Any]
DEAD = "mongodb://127.0.0.1:1"

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from evalstore import MetricsStorageService, MongoDBClient, evaluation_run

    async def main() -> None:
        service = MetricsStorageService(MongoDBClient({dead!r}, {db!r}, timeout_ms=100))
        run = evaluation_run(service, environment="dev")
        await run.start()
        for i in range(1000):
            doc = await run.record_test(f"t{{i:04d}}", score=float(i % 100), passed=True)
            print(doc["test_run_id"], flush=True)
            if i == 599:
                print("PAUSED", flush=True)
                await asyncio.to_thread(sys.stdin.readline)

    asyncio.run(main())
    """
)


async def test_sigkill_partway_loses_no_acknowledged_result(
    database: str, spool_dir: Path, embedded: MetricsStorageService, sync: Sync
) -> None:
    code = CHILD.format(dead=DEAD, db=database)
    acknowledged: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={"EVALSTORE_SPOOL_DIR": str(spool_dir), "PATH": "/usr/bin:/bin"},
        text=True,
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "PAUSED":
                break
            acknowledged.append(line.strip())
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) == 600

    report: ReplayReport = await sync()
    assert (report.journals, report.test_runs, report.finalized) == (1, 600, 0)
    stored = await embedded.client.test_runs.find({}, {"test_run_id": 1}).to_list(None)
    assert sorted(doc["test_run_id"] for doc in stored) == sorted(acknowledged)
    run = await embedded.client.evaluation_runs.find_one({})
    assert run["status"] == "running"  # until `runs reap` interrupts it


async def test_server_down_for_a_whole_run(
    database: str,
    embedded: MetricsStorageService,
    sync: Sync,
    journals: Callable[[], list[Path]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="evalstore")
    async with MongoDBClient(DEAD, database, timeout_ms=200) as client:
        run = evaluation_run(MetricsStorageService(client), environment="dev")
        async with run:
            for i in range(20):
                await run.record_test(f"t{i:02d}", metrics={"wer": float(i)}, passed=i % 4 != 0)
    assert run.document["status"] == "completed"
    warnings = [r for r in caplog.records if r.name == "evalstore" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "MongoDB is unavailable" in warnings[0].getMessage()
    assert len(journals()) == 1

    report = await sync()
    assert (report.journals, report.test_runs, report.finalized) == (1, 20, 1)
    assert journals() == []
    stored = await embedded.get_evaluation_run(run.evaluation_run_id)
    assert stored is not None
    assert stored["status"] == "completed"
    assert (stored["num_tests"], stored["num_passed"], stored["num_failed"]) == (20, 15, 5)
    assert stored["metrics"] == {"wer": 9.5}  # mean of 0..19
    assert stored["score"] == 9.5  # the average of one metric is that metric
    assert await embedded.client.test_runs.count_documents({}) == 20


@pytest.mark.parametrize("after_write", [False, True], ids=["before-write", "ack-lost"])
async def test_every_third_write_failing_loses_and_duplicates_nothing(
    after_write: bool,
    faulty_client: Callable[..., Any],
    embedded: MetricsStorageService,
    journals: Callable[[], list[Path]],
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("EVALSTORE_BATCH_SIZE", "10")
    client = faulty_client(after_write, lambda call: call % 3 == 0)
    service = MetricsStorageService(client)
    async with evaluation_run(service, environment="dev") as run:
        for i in range(100):
            await run.record_test(f"t{i:03d}", score=float(i), passed=True)
    assert client.faulty.calls >= 13  # at least 10 batches and 3 injected faults
    ids = await embedded.client.test_runs.distinct("test_run_id")
    assert len(ids) == 100
    assert await embedded.client.test_runs.count_documents({}) == 100
    assert (run.document["num_tests"], run.document["score"]) == (100, 49.5)
    assert journals() == []


async def test_server_gone_mid_run_then_back(
    faulty_client: Callable[..., Any],
    embedded: MetricsStorageService,
    journals: Callable[[], list[Path]],
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clean_env.setenv("EVALSTORE_BATCH_SIZE", "10")
    # the second batch fails twice (both attempts): the writer backs off, later batches stay
    # in the journal, and finalization replays them once the server answers again
    client = faulty_client(False, lambda call: call in (2, 3))
    caplog.set_level(logging.WARNING, logger="evalstore")
    async with evaluation_run(MetricsStorageService(client), environment="dev") as run:
        for i in range(50):
            await run.record_test(f"t{i:02d}", score=float(i), passed=True)
    assert len([r for r in caplog.records if r.name == "evalstore"]) == 1
    assert await embedded.client.test_runs.count_documents({}) == 50
    assert len(await embedded.client.test_runs.distinct("test_run_id")) == 50
    assert (run.document["status"], run.document["num_tests"], run.document["score"]) == (
        "completed",
        50,
        24.5,
    )
    assert journals() == []


async def _offline_run(database: str, tests: int) -> str:
    async with MongoDBClient(DEAD, database, timeout_ms=100) as client:
        run = evaluation_run(MetricsStorageService(client), environment="dev")
        async with run:
            for i in range(tests):
                await run.record_test(f"t{i:02d}", score=50.0, passed=True)
    return run.evaluation_run_id


async def test_replaying_the_same_journal_three_times_changes_no_count(
    database: str,
    embedded: MetricsStorageService,
    sync: Sync,
    journals: Callable[[], list[Path]],
    tmp_path: Path,
) -> None:
    await _offline_run(database, 30)
    [journal] = journals()
    copy = tmp_path / "journal-copy"
    shutil.copy(journal, copy)
    counts = []
    for _ in range(3):
        shutil.copy(copy, journal)
        await sync()
        counts.append(
            (
                await embedded.client.evaluation_runs.count_documents({}),
                await embedded.client.test_runs.count_documents({}),
            )
        )
    assert counts == [(1, 30)] * 3


async def test_a_torn_last_line_is_skipped_with_a_warning(
    database: str,
    embedded: MetricsStorageService,
    sync: Sync,
    journals: Callable[[], list[Path]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _offline_run(database, 10)
    [journal] = journals()
    lines = journal.read_bytes().splitlines(keepends=True)
    # header, 10 tests, finish: tear a copy of a test line in half at the end
    assert len(lines) == 12
    with journal.open("ab") as handle:
        handle.write(lines[1][: len(lines[1]) // 2])
    caplog.set_level(logging.WARNING, logger="evalstore")
    report = await sync()
    assert (report.test_runs, report.finalized, report.skipped_lines) == (10, 1, 1)
    assert f"skipping line 13 of journal {journal}" in caplog.text
    assert await embedded.client.test_runs.count_documents({}) == 10


TERM_CHILD = textwrap.dedent(
    """
    import asyncio
    from evalstore import MetricsStorageService, MongoDBClient, evaluation_run

    async def main() -> None:
        service = MetricsStorageService(MongoDBClient({dead!r}, {db!r}, timeout_ms=100))
        async with evaluation_run(service, environment="dev") as run:
            for i in range(100):
                await run.record_test(f"t{{i:03d}}", score=50.0, passed=True)
            print("READY", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_sigterm_finalizes_the_run_before_the_process_dies(
    database: str, spool_dir: Path, embedded: MetricsStorageService, sync: Sync
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", TERM_CHILD.format(dead=DEAD, db=database)],
        stdout=subprocess.PIPE,
        env={"EVALSTORE_SPOOL_DIR": str(spool_dir), "PATH": "/usr/bin:/bin"},
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
        child.send_signal(signal.SIGTERM)
        child.wait()
    assert child.returncode == -signal.SIGTERM
    report: ReplayReport = await sync()
    assert (report.journals, report.test_runs, report.finalized) == (1, 100, 1)
    run = await embedded.client.evaluation_runs.find_one({})
    assert (run["status"], run["num_tests"]) == ("interrupted", 100)  # SIGTERM cut it short


async def test_a_journal_for_another_server_is_read_no_further_than_its_header(
    database: str,
    journals: Callable[[], list[Path]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _offline_run(database, 10)
    [journal] = journals()
    with journal.open("ab") as handle:
        handle.write(b'{"kind": "test", "doc": {"torn')
    caplog.set_level(logging.WARNING, logger="evalstore")
    seen: list[str] = []

    def elsewhere(contents: JournalContents) -> bool:
        seen.append(contents.database)
        return False

    assert read_journal(journal, elsewhere) is None
    assert seen == [database]
    assert "skipping line" not in caplog.text  # the torn line was never reached
    contents = read_journal(journal)
    assert contents is not None
    assert len(contents.tests) == 10
    assert "skipping line 13" in caplog.text
