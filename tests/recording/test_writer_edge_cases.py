"""Edge cases of recording: idle writers, a record_test racing finish, concurrent replays."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from evalstore import EvalstoreError, MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.recording.journal import remove_journal, target_fingerprint
from evalstore.recording.replay import replay_spool


async def test_the_writer_survives_an_idle_flush_interval(
    embedded: MetricsStorageService,
    journals: Callable[[], list[Path]],
    clean_env: pytest.MonkeyPatch,
) -> None:
    # A slow test leaves the queue empty for longer than the flush interval: the writer's
    # wait times out, and it must go on writing the results that come after.
    clean_env.setenv("EVALSTORE_FLUSH_INTERVAL_MS", "20")
    clean_env.setenv("EVALSTORE_QUEUE_SIZE", "4")
    async with evaluation_run(embedded, environment="dev") as run:
        await run.record_test("before", score=10.0)
        await asyncio.sleep(0.1)  # five flush intervals with nothing queued
        for n in range(12):  # three times the queue size: blocks forever if the writer died
            await asyncio.wait_for(run.record_test(f"after-{n}", score=40.0), timeout=5)
    assert await embedded.client.test_runs.count_documents({}) == 13
    assert (run.document["num_tests"], run.document["score"]) == (13, (10 + 12 * 40) / 13)
    assert journals() == []


async def test_record_test_racing_finish_is_refused_not_lost(
    embedded: MetricsStorageService,
    journals: Callable[[], list[Path]],
) -> None:
    run = evaluation_run(embedded, environment="dev")
    await run.start()
    await run.record_test("t1", score=50.0)
    finishing = asyncio.create_task(run.finish())
    await asyncio.sleep(0)  # finish() has begun and is waiting for the writer
    with pytest.raises(EvalstoreError, match="the evaluation run is finished"):
        await run.record_test("t2", score=50.0)
    final = await finishing
    assert final["num_tests"] == 1
    assert [t["test_id"] for t in await embedded.get_test_runs(run.evaluation_run_id)] == ["t1"]
    assert journals() == []


async def test_a_journal_replayed_by_someone_else_meanwhile_is_skipped(
    journals: Callable[[], list[Path]],
    spool_dir: Path,
    database: str,
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("MONGODB_TIMEOUT_MS", "100")
    # Leave one journal behind: a run whose server was unreachable.
    async with (
        MongoDBClient("mongodb://127.0.0.1:1", database, timeout_ms=100) as dead,
        evaluation_run(MetricsStorageService(dead), environment="dev") as run,
    ):
        await run.record_test("t1", score=70.0)
    [journal] = journals()
    # Another replayer lists the spool, then this one finishes and removes the journal
    # before the other claims it.
    clean_env.setattr("evalstore.recording.replay.journal_paths", lambda spool: [journal])
    remove_journal(journal)
    report = await replay_spool(
        spool_dir, lambda db: MetricsStorageService(MongoDBClient("mongomock://", db))
    )
    assert (report.journals, report.failed) == (0, [])
    assert sorted(p.name for p in spool_dir.iterdir()) == []


def test_the_fingerprint_does_not_depend_on_the_password() -> None:
    with_password = target_fingerprint("mongodb://ci:hunter2@db:27017/?authSource=admin")
    other_password = target_fingerprint("mongodb://ci:letmein@db:27017/?authSource=admin")
    other_server = target_fingerprint("mongodb://ci:hunter2@db2:27017/?authSource=admin")
    assert with_password == other_password != other_server
