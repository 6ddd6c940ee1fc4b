"""Stale runs are reaped as `interrupted`; `evalstore sync` and `runs reap` on the command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bson import ObjectId
from typer.testing import CliRunner

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.cli.app import app
from evalstore.recording.journal import Journal
from evalstore.recording.reaper import reap_stale_runs
from evalstore.recording.writer import BatchWriter

NOW = datetime(2025, 12, 5, 12, 0, tzinfo=timezone.utc)
runner = CliRunner()


async def _running(service: MetricsStorageService, name: str, seen: datetime) -> ObjectId:
    oid = ObjectId()
    await service.upsert_evaluation_run(
        {
            "_id": oid,
            "evaluation_run_id": name,
            "started_at": seen - timedelta(minutes=5),
            "status": "running",
            "system_info_hash": "h",
            "last_seen_at": seen,
        }
    )
    await service.upsert_test_runs(
        [
            {
                "evaluation_run_id": oid,
                "test_run_id": f"{name}/t{n}",
                "test_id": f"t{n}",
                "status": "passed" if n else "failed",
                "score": 20.0 * n,
                "metrics": {},
            }
            for n in range(3)
        ]
    )
    return oid


async def test_reap_interrupts_runs_with_an_old_heartbeat_only(
    embedded: MetricsStorageService,
) -> None:
    stale_seen = NOW - timedelta(hours=2)
    await _running(embedded, "stale", stale_seen)
    await _running(embedded, "alive", NOW - timedelta(minutes=10))
    reaped = await reap_stale_runs(embedded, timedelta(hours=1), now=NOW)
    assert [r["evaluation_run_id"] for r in reaped] == ["stale"]
    stale = await embedded.get_evaluation_run("stale")
    assert stale is not None
    assert (stale["status"], stale["finished_at"]) == ("interrupted", stale_seen)
    assert (stale["num_tests"], stale["num_passed"], stale["num_failed"], stale["score"]) == (
        3,
        2,
        1,
        20.0,
    )
    alive = await embedded.get_evaluation_run("alive")
    assert alive is not None
    assert alive["status"] == "running"
    assert await reap_stale_runs(embedded, timedelta(hours=1), now=NOW) == []


async def test_a_recording_run_carries_a_heartbeat(embedded: MetricsStorageService) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    async with evaluation_run(embedded, environment="dev") as run:
        stored = await embedded.get_evaluation_run(run.evaluation_run_id)
        assert stored is not None
        assert stored["status"] == "running"
        assert stored["last_seen_at"] >= before


def test_cli_runs_reap(database: str) -> None:
    service = MetricsStorageService(MongoDBClient("mongomock://", database))
    asyncio.run(_running(service, "stale-cli", datetime.now(timezone.utc) - timedelta(hours=3)))
    result = runner.invoke(
        app,
        [
            "runs",
            "reap",
            "--stale-after",
            "1h",
            "--url",
            "mongomock://",
            "--db",
            database,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in json.loads(result.stdout)] == ["interrupted"]
    listed = runner.invoke(
        app, ["runs", "list", "--url", "mongomock://", "--db", database, "--json"]
    )
    assert [r["status"] for r in json.loads(listed.stdout)] == ["interrupted"]


def test_cli_reap_refuses_a_bad_duration() -> None:
    result = runner.invoke(app, ["runs", "reap", "--stale-after", "soon", "--url", "mongomock://"])
    assert result.exit_code == 2  # a bad option value, as for every command
    assert result.stderr == (
        "error: --stale-after: expected a positive duration such as 90s, 30m, 36h, 2d or 12w, "
        "got 'soon'\n"
    )


async def _record_offline(database: str, tests: int) -> str:
    async with MongoDBClient("mongodb://127.0.0.1:1", database, timeout_ms=100) as dead:
        run = evaluation_run(MetricsStorageService(dead), environment="dev")
        async with run:
            for i in range(tests):
                await run.record_test(f"t{i}", score=10.0, passed=True)
    return run.evaluation_run_id


def test_cli_sync_replays_the_spool_once(database: str, journals: Callable[[], list[Path]]) -> None:
    run_id = asyncio.run(_record_offline(database, 7))
    assert len(journals()) == 1
    first = runner.invoke(app, ["sync", "--to", "mongomock://", "--json"])
    assert first.exit_code == 0, first.output
    report: dict[str, Any] = json.loads(first.stdout)
    assert (report["journals"], report["test_runs"], report["finalized"]) == (1, 7, 1)
    assert journals() == []
    second = runner.invoke(app, ["sync", "--to", "mongomock://"])
    assert second.exit_code == 0
    assert "Replayed 0 journal(s)" in second.stdout
    shown = runner.invoke(
        app, ["runs", "show", run_id, "--url", "mongomock://", "--db", database, "--json"]
    )
    found = json.loads(shown.stdout)
    assert (found["evaluation_run"]["status"], found["evaluation_run"]["num_tests"]) == (
        "completed",
        7,
    )
    assert len(found["test_runs"]) == 7


async def test_the_writer_moves_the_heartbeat_forward(
    embedded: MetricsStorageService, spool_dir: Path
) -> None:
    old = datetime(2025, 1, 1, tzinfo=timezone.utc)
    run = {
        "_id": ObjectId(),
        "evaluation_run_id": "beating",
        "started_at": old,
        "status": "running",
        "system_info_hash": "h",
        "last_seen_at": old,
    }
    await embedded.upsert_evaluation_run(run)
    journal = Journal.create(spool_dir, run, database="db", target="t", fsync="never")
    writer = BatchWriter(
        embedded,
        journal,
        run,
        run_stored=True,
        batch_size=10,
        flush_interval_s=0.001,
        queue_size=10,
        heartbeat_s=0.0,
    )
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    writer.start()
    await writer.close()
    journal.close(remove=True)
    stored = await embedded.get_evaluation_run("beating")
    assert stored is not None
    assert stored["last_seen_at"] >= before
