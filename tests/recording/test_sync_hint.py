"""The outage warning names the exact `evalstore sync` command for the run's store (issue 17.9)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.cli import app
from evalstore.recording.replay import sync_command


async def offline_run(url: str, database: str) -> None:
    async with MongoDBClient(url, database, timeout_ms=100) as client:
        service = MetricsStorageService(client)
        async with evaluation_run(service, environment="dev") as run:
            await run.record_test("t", passed=True)


def test_sync_command() -> None:
    assert sync_command("mongodb://db:27017", "mongodb://db:27017") == "evalstore sync"
    assert sync_command("mongodb://ci:27017", "mongodb://localhost:27017") == (
        "evalstore sync --to 'mongodb://ci:27017'"
    )
    assert sync_command("mongodb://u:S3cret@ci:27017/", None) == (
        "evalstore sync --to 'mongodb://u:***@ci:27017/' (with the password in place of ***)"
    )


async def test_the_warning_names_the_store_the_results_were_meant_for(
    database: str,
    journals: Callable[[], list[Path]],
    clean_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = "mongodb://127.0.0.1:1/?appname=ci"
    caplog.set_level(logging.WARNING, logger="evalstore")
    await offline_run(dead, database)
    [warning] = [r.getMessage() for r in caplog.records if r.name == "evalstore"]
    assert warning.endswith(f"(or run `evalstore sync --to '{dead}'`)")
    # The same shell with MONGODB_CONNECTION_STRING set to that store: the bare command.
    clean_env.setenv("MONGODB_CONNECTION_STRING", dead)
    caplog.clear()
    await offline_run(dead, database)
    [warning] = [r.getMessage() for r in caplog.records if r.name == "evalstore"]
    assert warning.endswith("(or run `evalstore sync`)")
    assert len(journals()) == 2


def test_sync_takes_url_like_every_command(spool_dir: Path) -> None:
    result = CliRunner().invoke(app, ["sync", "--url", "mongomock://", "--json"])
    assert result.exit_code == 0, result.output
    assert '"journals": 0' in result.stdout
