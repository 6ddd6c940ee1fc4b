"""Two processes recording into one local store at the same time lose nothing.

Each writer is its own Python process with its own `MongoDBClient` on the same
`file://` store and database. Both start, say they are ready, and begin
writing only when told to, so that their writes interleave: each stores
`RUNS` evaluation runs, every test run in a write of its own, and finalises
each run. Afterwards a third client finds exactly all of them: every run, its
test runs and the aggregates finalisation computed from them.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from evalstore import MetricsStorageService, MongoDBClient

WRITERS = 2
RUNS = 8
TESTS = 10
DATABASE = "shared"
GUARD_SECONDS = 120
"""Only so that a writer that hangs fails the test instead of the whole session."""

WRITER = """
import asyncio
import sys
from datetime import datetime, timedelta, timezone

from bson import ObjectId

from evalstore import EvaluationRun, MetricsStorageService, MongoDBClient, TestRun

url, database, writer, runs, tests = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])
started = datetime(2025, 3, 3, tzinfo=timezone.utc)


async def main() -> None:
    async with MongoDBClient(url, database) as client:
        service = MetricsStorageService(client)
        await client.ping()
        print("ready", flush=True)
        sys.stdin.readline()  # the test says go to every writer at once
        for r in range(runs):
            run_id = f"2025-03-03T00-00-00Z-{writer}-{r:03d}"
            oid = ObjectId()
            run = EvaluationRun(
                evaluation_run_id=run_id,
                started_at=started + timedelta(minutes=r),
                system_info_hash="0" * 64,
            )
            await service.upsert_evaluation_run({"_id": oid, **run.to_document()})
            for t in range(tests):
                finished = started + timedelta(minutes=r, seconds=t + 1)
                test_run = TestRun(
                    evaluation_run_id=oid,
                    test_run_id=f"{run_id}/test-{t}",
                    test_id=f"test-{t}",
                    test_name=f"test {t}",
                    started_at=finished,
                    finished_at=finished,
                    duration_ms=0.0,
                    score=float(t * 10),
                    score_method="manual",
                    passed=t % 3 != 0,
                    status="passed" if t % 3 else "failed",
                )
                refused = await service.upsert_test_runs([test_run.to_document()])
                assert not refused, refused
            await service.finalize_evaluation_run(oid, "completed")


asyncio.run(main())
"""


async def start_writer(url: str, name: str) -> asyncio.subprocess.Process:
    """A writer process, started and ready (connected), waiting for the word to write."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        url,
        DATABASE,
        name,
        str(RUNS),
        str(TESTS),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), GUARD_SECONDS)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    if line != b"ready\n":
        _, stderr = await process.communicate()
        raise AssertionError(f"writer {name} did not start: {stderr.decode()}")
    return process


async def test_two_processes_write_one_local_store_at_once(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    names = [f"writer{n}" for n in range(WRITERS)]
    writers: list[asyncio.subprocess.Process] = []
    try:
        for name in names:
            writers.append(await start_writer(url, name))
        results = await asyncio.wait_for(
            asyncio.gather(*(writer.communicate(b"go\n") for writer in writers)), GUARD_SECONDS
        )
    finally:
        for writer in writers:
            if writer.returncode is None:  # only after a failure above
                writer.kill()
                await writer.wait()
    for name, writer, (_, stderr) in zip(names, writers, results, strict=True):
        assert writer.returncode == 0, f"{name} failed:\n{stderr.decode()}"

    async with MongoDBClient(url, DATABASE) as client:
        service = MetricsStorageService(client)
        runs = await service.get_recent_evaluation_runs(limit=1000)
        expected_runs = {
            f"2025-03-03T00-00-00Z-{name}-{r:03d}" for name in names for r in range(RUNS)
        }
        assert sorted(run["evaluation_run_id"] for run in runs) == sorted(expected_runs)
        for run in runs:
            tests = await service.get_test_runs(run["evaluation_run_id"])
            assert [t["test_run_id"] for t in tests] == [
                f"{run['evaluation_run_id']}/test-{t}" for t in range(TESTS)
            ]
            assert all(t["evaluation_run_id"] == run["_id"] for t in tests)
            assert (run["status"], run["num_tests"], run["num_passed"]) == (
                "completed",
                TESTS,
                sum(1 for t in range(TESTS) if t % 3),
            )
