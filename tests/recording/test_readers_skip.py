"""Readers skip, never stall (issue 18.7): one bad line of a journal never holds back the rest."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.cli import app
from evalstore.recording.replay import replay_spool

DEAD = "mongodb://127.0.0.1:1"


async def offline_run(database: str, tests: int = 5) -> Any:
    async with MongoDBClient(DEAD, database, timeout_ms=100) as client:
        run = evaluation_run(MetricsStorageService(client), environment="dev")
        async with run:
            for i in range(tests):
                await run.record_test(f"t{i}", passed=True)
    return run


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"kind": "test"}', "a test line without its document"),
        (b'{"kind": "acked", "ids": 5}', "acknowledgements that are not a list of test run ids"),
        (
            b'{"kind": "test", "doc": {"test_run_id": "x", "evaluation_run_id": {"$oid": '
            b'"0123456789abcdef01234567"}, "score": 1e999}}',
            "a score that is no finite number (inf)",
        ),
        (b'{"kind": "finish"}', "a finish line without its status or time"),
        (
            b'{"kind": "acked", "ids": [{"$oid": "0123456789abcdef0123456g"}]}',
            "'0123456789abcdef0123456g' is not a valid ObjectId",
        ),
        (b'{"kind": "finish", "finished_at": {"$date": 1e300}}', ""),
        (b'["not", "an", "object"]', "not an object"),
    ],
)
async def test_a_malformed_line_is_skipped_and_the_rest_replayed(
    database: str,
    embedded: MetricsStorageService,
    sync: Callable[..., Any],
    journals: Callable[[], list[Path]],
    caplog: pytest.LogCaptureFixture,
    line: bytes,
    reason: str,
) -> None:
    run = await offline_run(database)
    [journal] = journals()
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([lines[0], line + b"\n", *lines[1:]]))
    caplog.set_level(logging.WARNING, logger="evalstore")
    report = await sync()
    assert (report.journals, report.failed, report.skipped_lines) == (1, [], 1)
    assert f"skipping line 2 of journal {journal} ({reason}" in caplog.text
    stored = await embedded.get_evaluation_run(run.evaluation_run_id)
    assert (stored["status"], stored["num_tests"]) == ("completed", 5)
    assert journals() == []


async def test_a_corrupt_header_still_lets_the_results_reach_their_run(
    database: str,
    embedded: MetricsStorageService,
    journals: Callable[[], list[Path]],
    spool_dir: Path,
) -> None:
    # The run document reached the server (it was up at start); the results did not.
    run = await offline_run(database)
    await embedded.upsert_evaluation_run({**run.document, "status": "running"})
    [journal] = journals()
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b'{"kind": "header", "versi\xffon\n' + b"".join(lines[1:]))
    report = await replay_spool(spool_dir, lambda db: embedded, default_database=database)
    assert (report.journals, report.failed, report.test_runs) == (1, [], 5)
    stored = await embedded.get_evaluation_run(run.evaluation_run_id)
    assert (stored["status"], stored["num_tests"]) == ("completed", 5)
    assert journals() == []


async def test_a_corrupt_header_whose_run_is_nowhere_is_left_and_reported(
    database: str, journals: Callable[[], list[Path]], spool_dir: Path
) -> None:
    await offline_run(database)
    [journal] = journals()
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"garbage\n" + b"".join(lines[1:]))
    argv = ["sync", "--url", "mongomock://", "--db", database]
    result = await asyncio.to_thread(CliRunner().invoke, app, argv)  # the CLI runs its own loop
    assert result.exit_code == 1
    assert "1 journal(s) could not be replayed" in result.stderr
    assert journals() == [journal]  # nothing is lost: it stays for a later sync


def test_an_empty_journal_is_removed_and_an_unreadable_one_fails_the_sync(
    spool_dir: Path, journals: Callable[[], list[Path]]
) -> None:
    spool_dir.mkdir(parents=True)
    (spool_dir / "empty.ndjson").write_bytes(b"")
    result = CliRunner().invoke(app, ["sync", "--url", "mongomock://"])
    assert result.exit_code == 0, result.output
    assert journals() == []
    (spool_dir / "unreadable.ndjson").write_bytes(b"\x00\x01 not json\n")
    result = CliRunner().invoke(app, ["sync", "--url", "mongomock://"])
    assert result.exit_code == 1
    assert "1 journal(s) could not be replayed" in result.stderr
    assert journals() == [spool_dir / "unreadable.ndjson"]
