"""Recorded text is shown literally: brackets in ids, messages, tags and config are no markup."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.cli.app import app
from evalstore.cli.demo import DemoClock

runner = CliRunner()
WER_ID = "tests/a.py::test_wer[es-en]"
TUPLE_ID = "t[namedtuple]"
MESSAGE = "AssertionError: [bold]x[/bold] is not [red]y"
TAG = "[gpu]"


def _record(database: str) -> list[str]:
    """Two runs: WER_ID passes in the first (config `[es-en]`), fails in the second (`[de-en]`)."""

    async def record() -> list[str]:
        ids = []
        clock = DemoClock(datetime.now(timezone.utc) - timedelta(hours=2))
        async with MongoDBClient("mongomock://", database) as client:
            service = MetricsStorageService(client)
            for lang, passed in (("[es-en]", True), ("[de-en]", False)):
                clock.advance(60)
                async with evaluation_run(
                    service, config={"lang": lang}, tags=[TAG], clock=clock
                ) as run:
                    await run.record_test(
                        WER_ID,
                        metrics={"wer": 90.0 if passed else 40.0},
                        passed=passed,
                        message=None if passed else MESSAGE,
                    )
                    await run.record_test(TUPLE_ID, passed=True)
                ids.append(run.evaluation_run_id)
        return ids

    return asyncio.run(record())


@pytest.fixture
def recorded() -> tuple[str, list[str]]:
    """A database on the embedded backend with the two runs, and their ids."""
    database = f"literal_{uuid.uuid4().hex[:8]}"
    return database, _record(database)


def invoke(database: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--db", database, "--url", "mongomock://"])
    return result.exit_code, result.stdout, result.stderr


def test_runs_show_prints_ids_messages_and_tags_verbatim(recorded: tuple[str, list[str]]) -> None:
    database, [_first, second] = recorded

    code, out, err = invoke(database, "runs", "show", second)

    assert (code, err) == (0, "")
    assert WER_ID in out
    assert TUPLE_ID in out
    assert MESSAGE in out
    assert f"tags={TAG}" in out
    [row] = [line for line in out.splitlines() if WER_ID in line]
    assert [cell.strip() for cell in row.split("│")[1:7]] == [
        WER_ID,
        "failed",
        "40.0",
        "wer=40.0",
        "0.0",
        MESSAGE,
    ]


def test_tables_of_every_kind_keep_brackets(recorded: tuple[str, list[str]]) -> None:
    database, [first, second] = recorded

    code, out, _ = invoke(database, "runs", "list")
    assert code == 0
    assert out.count(TAG) == 2

    code, out, _ = invoke(database, "tests", "history", WER_ID)
    assert code == 0
    assert f"History of {WER_ID} (newest first)" in out
    assert MESSAGE in out

    code, out, _ = invoke(database, "stats")
    assert code == 0
    assert WER_ID in out
    assert TUPLE_ID in out

    code, out, _ = invoke(database, "flaky", "--min-runs", "2")
    assert code == 0
    assert "Changed once, not flaky (1, last 30 days)" in out
    assert WER_ID in out

    code, out, _ = invoke(database, "compare", first, second, "--all")
    assert code == 0
    assert f"newly failing: {WER_ID}" in out
    assert f"regressed: {WER_ID} (tolerance 0.0 points)" in out
    assert [line for line in out.splitlines() if TUPLE_ID in line]


def test_config_values_in_a_diff_are_shown_verbatim(recorded: tuple[str, list[str]]) -> None:
    database, _ids = recorded
    code, out, _ = invoke(database, "configs", "list", "--json")
    assert code == 0
    hashes = [row["system_info_hash"] for row in json.loads(out)]

    code, out, _ = invoke(database, "configs", "diff", *hashes)

    assert code == 0
    [row] = [line for line in out.splitlines() if "config.lang" in line]
    assert sorted(cell.strip() for cell in row.split("│")[2:4]) == ["[de-en]", "[es-en]"]
