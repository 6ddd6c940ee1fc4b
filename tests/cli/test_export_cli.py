"""`evalstore export`: exit codes, stdout, files written whole or not at all, the summary line."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evalstore import MetricsStorageService
from evalstore.analysis import export
from evalstore.cli.app import app

sys.path.insert(0, str(Path(__file__).parent.parent / "analysis"))
from analysis_helpers import Result, at, record_run

runner = CliRunner()


async def invoke(service: MetricsStorageService, *args: str) -> Any:
    """Run the CLI (in a thread: it calls asyncio.run) against the test's database."""
    client = service.client
    argv = ["export", *args, "--url", client.connection_string, "--db", client.database_name]
    return await asyncio.to_thread(runner.invoke, app, argv)


async def history(service: MetricsStorageService) -> list[dict[str, Any]]:
    return [
        await record_run(service, at(1), [Result("a", "passed", 80.0, {"wer": 70.0})]),
        await record_run(service, at(2), [Result("a", "failed", 20.0, {"wer": 10.0})]),
    ]


async def test_csv_to_stdout(service: MetricsStorageService) -> None:
    runs = await history(service)
    result = await invoke(service, "runs")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["evaluation_run_id"] for r in rows] == [r["evaluation_run_id"] for r in runs]
    assert [r["metrics.wer"] for r in rows] == ["70.0", "10.0"]
    assert result.stderr.strip() == "wrote 2 rows to stdout"
    quiet = await invoke(service, "tests", "--format", "ndjson", "-o", "-", "--quiet")
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    docs = [json.loads(line) for line in quiet.stdout.splitlines()]
    assert [(d["run"], d["metrics"]["wer"]["score"]) for d in docs] == [
        (runs[0]["evaluation_run_id"], 70.0),
        (runs[1]["evaluation_run_id"], 10.0),
    ]


async def test_a_file_and_the_summary_line(service: MetricsStorageService, tmp_path: Path) -> None:
    runs = await history(service)
    target = tmp_path / "tests.json"
    result = await invoke(service, "tests", "-o", str(target), "--run", "latest")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr.strip() == f"wrote 1 row to {target}"
    [doc] = json.loads(target.read_text())  # the format from the suffix
    assert doc["run"] == runs[1]["evaluation_run_id"]
    assert doc["metrics"]["wer"] == {
        "score": 10.0,
        "passed": None,
        "threshold": None,
        "unit": None,
        "details": None,
    }
    since = await invoke(
        service, "runs", "--since", "2025-03-02", "-f", "csv", "-o", str(tmp_path / "r.txt")
    )
    assert since.exit_code == 0, since.output
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.txt").read_text())))
    assert [r["evaluation_run_id"] for r in rows] == [runs[1]["evaluation_run_id"]]
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["flakes"], "KIND: expected one of runs, tests, series, alerts, usage, got 'flakes'"),
        (["runs", "--format", "xlsx"], "--format: expected one of csv, json, ndjson, got 'xlsx'"),
        (["runs", "--run", "latest"], "--run: selects tests, series or usage, not runs"),
        (["alerts", "--tag", "x"], "--tag: alerts carry no tags"),
        (["runs", "--since", "yesterday"], "--since: expected a date"),
        (["tests", "--match", "some"], "--match: expected one of any, all"),
    ],
)
async def test_bad_options_exit_2(
    service: MetricsStorageService, args: list[str], message: str
) -> None:
    result = await invoke(service, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_unwritable_path_exits_1_and_leaves_nothing(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    await history(service)
    missing = tmp_path / "nowhere" / "runs.csv"
    result = await invoke(service, "runs", "-o", str(missing))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot write {missing}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not missing.parent.exists()
    directory = await invoke(service, "runs", "-o", str(tmp_path))
    assert directory.exit_code == 1
    assert "it is a directory" in directory.stderr


async def test_a_failure_midway_leaves_no_partial_file(
    service: MetricsStorageService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await history(service)
    target = tmp_path / "tests.csv"
    target.write_text("the previous export\n")
    written = 0
    original = export._CsvWriter.write

    def full_disk(self: Any, document: dict[str, Any]) -> None:
        nonlocal written
        written += 1
        if written == 2:
            raise OSError(28, "No space left on device")
        original(self, document)

    monkeypatch.setattr(export._CsvWriter, "write", full_disk)
    result = await invoke(service, "tests", "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: cannot write {target}: No space left on device"
    assert target.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("tests")) == ["tests.csv"]


async def test_a_missing_run_exits_1(service: MetricsStorageService) -> None:
    await history(service)
    result = await invoke(service, "usage", "--run", "no-such-run")
    assert result.exit_code == 1
    assert "no evaluation run 'no-such-run'" in result.stderr
