"""Build small, hand-computable histories through evalstore's public recording API.

Each run starts at a given time; its tests finish one minute apart after the
start (the first at +1 min), and the run finishes one hour after its start.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from typer.testing import CliRunner

from evalstore import (
    EvaluationRun,
    MetricsStorageService,
    RunRecorder,
    evaluation_run,
    system_info_hash,
    system_information,
)
from evalstore.cli.app import app
from evalstore.ids import new_evaluation_run_id

UTC = timezone.utc
runner = CliRunner()


def at(day: int, hour: int = 10, minute: int = 0, second: int = 0, month: int = 3) -> datetime:
    """A UTC time in 2025 (March by default)."""
    return datetime(2025, month, day, hour, minute, second, tzinfo=UTC)


class Result(NamedTuple):
    """One test's outcome in a run: a status, a score (None when skipped), metric scores."""

    test_id: str
    status: str
    score: float | None = None
    metrics: Mapping[str, float] | None = None


def finished(started_at: datetime, index: int) -> datetime:
    """When the `index`-th (0-based) test of a run started at `started_at` finished."""
    return started_at + timedelta(minutes=index + 1)


class RunClock:
    """The run's clock: its start time first, then one hour later (for `finish()`)."""

    def __init__(self, started_at: datetime) -> None:
        self.started_at = started_at
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.started_at if self.calls == 1 else self.started_at + timedelta(hours=1)


class _Abort(Exception):
    """Raised inside a run to have it finalised as `failed`."""


async def _record_tests(run: RunRecorder, started_at: datetime, results: Sequence[Result]) -> None:
    for index, result in enumerate(results):
        end = finished(started_at, index)
        await run.record_test(
            result.test_id,
            metrics=dict(result.metrics) if result.metrics else None,
            status=result.status,  # type: ignore[arg-type]
            score=result.score,
            started_at=end - timedelta(seconds=30),
            finished_at=end,
        )


async def record_run(
    service: MetricsStorageService,
    started_at: datetime,
    results: Sequence[Result],
    *,
    tags: Sequence[str] = (),
    environment: str = "dev",
    config: Mapping[str, Any] | None = None,
    repo: Path | str = ".",
    status: str = "completed",
) -> dict[str, Any]:
    """Record one evaluation run; return its document as stored at the end.

    `status="failed"` finalises it as failed (the block raises).
    """
    recorder = evaluation_run(
        service,
        config=config or {"model": "default"},
        tags=list(tags),
        environment=environment,
        clock=RunClock(started_at),
        repo_path=repo,
    )
    try:
        async with recorder:
            await _record_tests(recorder, started_at, results)
            if status == "failed":
                raise _Abort
    except _Abort:
        pass
    return recorder.document


async def record_running_run(
    service: MetricsStorageService,
    started_at: datetime,
    *,
    tags: Sequence[str] = (),
    environment: str = "dev",
    config: Mapping[str, Any] | None = None,
    branch: str | None = None,
) -> dict[str, Any]:
    """Store an evaluation run that is still running (no test stored yet, no aggregates)."""
    info = system_information(config or {"model": "default"})
    run = EvaluationRun(
        evaluation_run_id=new_evaluation_run_id(started_at, branch),
        started_at=started_at,
        git_branch=branch,
        environment=environment,
        experiment_tags=list(tags),
        system_information=info,
        system_info_hash=system_info_hash(info),
    )
    return await service.create_evaluation_run(run)


def git_repo(path: Path, branch: str) -> Path:
    """A git repository at `path` with one empty commit on `branch`."""
    path.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=evalstore", "-c", "user.email=evalstore@example.com"]
    subprocess.run([*git, "init", "-q", "-b", branch, str(path)], check=True)
    subprocess.run(
        [*git, "-C", str(path), "commit", "-q", "--allow-empty", "-m", "init"], check=True
    )
    return path


async def invoke(service: MetricsStorageService, *args: str, stdin: str | None = None) -> Any:
    """Run the CLI (in a thread: it calls asyncio.run) against the test's database."""
    client = service.client
    argv = [*args, "--url", client.connection_string, "--db", client.database_name]
    return await asyncio.to_thread(runner.invoke, app, argv, input=stdin)


async def orphaned_test_runs(service: MetricsStorageService) -> int:
    """How many test runs point to an evaluation run that does not exist."""
    run_ids = set(await service.client.distinct_values("evaluation_runs", "_id", {}, action="read"))
    parents = await service.client.distinct_values(
        "test_runs", "evaluation_run_id", {}, action="read"
    )
    orphans = [oid for oid in parents if oid not in run_ids]
    return await service.client.count(
        "test_runs", action="count", query={"evaluation_run_id": {"$in": orphans}}
    )
