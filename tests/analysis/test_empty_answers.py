"""An empty answer says why in one line (issue 17.6), and a missing local store is an error.

Two finished runs in March 2025, both measuring `bleu` (never `wer`), tagged `baseline`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import Result, at, invoke, record_run
from typer.testing import CliRunner

from evalstore import MetricsStorageService, MongoDBClient
from evalstore.cli import app

MARCH = ("--since", "2025-03-01", "--until", "2025-04-01")


@pytest.fixture
async def history(service: MetricsStorageService) -> None:
    for day in (1, 2):
        await record_run(
            service, at(day), [Result("a", "passed", 80, {"bleu": 30})], tags=["baseline"]
        )


async def test_a_metric_never_recorded_names_the_ones_that_were(
    service: MetricsStorageService, history: None
) -> None:
    result = await invoke(service, "trend", "--metric", "wer", *MARCH)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "note: none of the 2 finished run(s) in 2025-03-01 to 2025-04-01 recorded the metric "
        "'wer'; metrics recorded there: bleu\n"
    )
    # --json stays one JSON document on stdout; the note goes to stderr.
    result = await invoke(service, "trend", "--metric", "wer", "--json", *MARCH)
    assert json.loads(result.stdout) == []
    assert result.stderr.startswith("note: none of the 2 finished run(s)")
    recorded = await invoke(service, "trend", "--metric", "bleu", *MARCH)
    assert recorded.stderr == ""


async def test_an_empty_window_says_so(service: MetricsStorageService, history: None) -> None:
    for command in (["stats"], ["flaky"], ["trend"], ["configs", "list"]):
        result = await invoke(service, *command, "--since", "2024-01-01", "--until", "2024-02-01")
        assert result.exit_code == 0, result.output
        assert result.stderr == (
            "note: no finished evaluation run in 2024-01-01 to 2024-02-01: "
            "widen the window (--days, --since) or drop a filter\n"
        ), command
    result = await invoke(service, "stats", "--env", "prod", "--branch", "main", *MARCH)
    assert result.stderr.startswith(
        "note: no finished evaluation run in 2025-03-01 to 2025-04-01 with environment 'prod' "
        "and branch 'main': "
    )
    result = await invoke(service, "trend", "--test", "nosuch", *MARCH)
    assert result.stderr == "note: test 'nosuch' did not run in 2025-03-01 to 2025-04-01\n"
    # A full answer has no note.
    assert (await invoke(service, "stats", *MARCH)).stderr == ""


async def test_a_tag_that_matches_no_run(service: MetricsStorageService, history: None) -> None:
    args = ("experiments", "compare", "--a", "nosuchtag", "--b", "baseline", *MARCH)
    result = await invoke(service, *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "note: the tags of A (nosuchtag) matched no finished run in 2025-03-01 to 2025-04-01: "
        "check them with `evalstore runs list`\n"
    )
    both = await invoke(service, "experiments", "compare", "--a", "x", "--b", "[y]", *MARCH)
    assert "A (x) and B ([y]) matched no finished run" in both.stderr


async def test_reading_a_local_store_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "store"
    for command in (["stats"], ["runs", "list"], ["flaky"], ["compare", "previous", "latest"]):
        result = await _cli(*command, "--url", f"file://{missing}")
        assert result.exit_code == 1, command
        assert result.stderr.startswith(f"error: no local store at {missing}: check the path")
    assert not missing.exists()  # reading created nothing

    store = f"file://{tmp_path / 'store'}"
    async with MongoDBClient(store, "results") as client:
        await MetricsStorageService(client).get_recent_evaluation_runs()
        await client.upsert_run({"_id": 1, "evaluation_run_id": "r1", "started_at": at(1)})
    result = await _cli("runs", "list", "--url", store, "--db", "other")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: the local store at {tmp_path / 'store'} has no database 'other' (it has: results)"
    )
    assert (await _cli("runs", "list", "--url", store, "--db", "results")).exit_code == 0


async def _cli(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))
