"""How long opening a local store (`file:///dir`) takes: client open + first query.

Writes a local store holding R evaluation runs of T test runs each (default
100 x 1,000 = 100,000 test runs) straight in the store's format (once as a
snapshot, as after a compaction, once as a log with an empty snapshot),
then times, in a fresh process each, opening it and answering the first
query (`runs list`: the indexes are built, then the 10 newest runs read), a
second query (one run's test runs through the `evaluation_run_id` index) and
the first write (a heartbeat: it takes the lock; the files are not read again
since nobody changed them).

Usage: `.venv/bin/python scripts/bench_localstore.py [--runs 100] [--tests 1000]`
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bson import ObjectId

from evalstore.codec import encode
from evalstore.storage.localstore import LOG, SNAPSHOT, _header

DATABASE = "bench"
MEASURE = """
import asyncio, sys, time
start = time.perf_counter()
from evalstore import MetricsStorageService, MongoDBClient

async def main():
    async with MongoDBClient(sys.argv[1], "bench") as client:
        service = MetricsStorageService(client)
        runs = await service.get_recent_evaluation_runs(10)
        first = time.perf_counter() - start
        tests = await service.get_test_runs(runs[0]["_id"])
        second = time.perf_counter() - start - first
        mark = time.perf_counter()
        await service.touch_evaluation_run(runs[0]["_id"], runs[0]["last_seen_at"])
        write = time.perf_counter() - mark
        print(first, second, write, len(runs), len(tests))

asyncio.run(main())
"""


def _documents(runs: int, tests: int) -> list[tuple[str, dict[str, Any]]]:
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    records: list[tuple[str, dict[str, Any]]] = []
    for r in range(runs):
        started = base + timedelta(hours=r)
        run_oid = ObjectId()
        records.append(
            (
                "evaluation_runs",
                {
                    "_id": run_oid,
                    "evaluation_run_id": f"{started:%Y-%m-%dT%H-%M-%SZ}-main-{r:06x}",
                    "started_at": started,
                    "finished_at": started + timedelta(minutes=30),
                    "git_commit": f"{r:040x}",
                    "git_branch": "main",
                    "git_dirty": False,
                    "environment": "dev",
                    "experiment_tags": ["bench"],
                    "system_information": {"config": {"model": "m", "temperature": 0.2}},
                    "system_info_hash": f"{r % 4:064x}",
                    "metrics": {"accuracy": 80.0},
                    "num_tests": tests,
                    "num_passed": tests,
                    "num_failed": 0,
                    "num_skipped": 0,
                    "num_errors": 0,
                    "status": "completed",
                    "score": 80.0,
                    "last_seen_at": started + timedelta(minutes=30),
                },
            )
        )
        for t in range(tests):
            finished = started + timedelta(seconds=t)
            records.append(
                (
                    "test_runs",
                    {
                        "_id": ObjectId(),
                        "evaluation_run_id": run_oid,
                        "test_run_id": f"{run_oid}-{t}",
                        "test_id": f"tests/test_suite.py::test_case_{t}",
                        "test_name": f"test_case_{t}",
                        "started_at": finished - timedelta(milliseconds=120),
                        "finished_at": finished,
                        "duration_ms": 120.0,
                        "metrics": {"accuracy": {"score": 80.0, "passed": True}},
                        "score": 80.0,
                        "score_method": "mean",
                        "passed": True,
                        "status": "passed",
                        "tags": [],
                        "participants": [],
                        "message": None,
                        "details": None,
                    },
                )
            )
    return records


def _write(directory: Path, records: list[tuple[str, dict[str, Any]]], *, as_log: bool) -> None:
    directory.mkdir(parents=True)
    lines = [_header(1)] + [encode({"c": name, "put": doc}) for name, doc in records]
    if as_log:
        (directory / SNAPSHOT).write_bytes(_header(1))
        (directory / LOG).write_bytes(b"".join(lines))
    else:
        (directory / SNAPSHOT).write_bytes(b"".join(lines))
        (directory / LOG).write_bytes(_header(1))


def _measure(root: Path) -> tuple[float, float, float, int]:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, f"file://{root}"],
        capture_output=True,
        text=True,
        check=True,
    )
    first, second, write, runs, _tests = result.stdout.split()
    return float(first), float(second), float(write), int(runs)


def main() -> None:
    """Build the stores, time opening each, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--tests", type=int, default=1000, help="test runs per evaluation run")
    args = parser.parse_args()
    records = _documents(args.runs, args.tests)
    total = args.runs * args.tests
    with tempfile.TemporaryDirectory() as tmp:
        for label, as_log in (("snapshot", False), ("log only", True)):
            root = Path(tmp) / label.split()[0]
            started = time.perf_counter()
            _write(root / DATABASE, records, as_log=as_log)
            size = sum(p.stat().st_size for p in (root / DATABASE).iterdir()) / 1e6
            written = time.perf_counter() - started
            first, second, write, runs = _measure(root)
            again, _, _, _ = _measure(root)
            print(
                json.dumps(
                    {
                        "layout": label,
                        "test_runs": total,
                        "evaluation_runs": args.runs,
                        "listed": runs,
                        "store_mb": round(size, 1),
                        "write_s": round(written, 2),
                        "open_and_first_query_s": round(first, 2),
                        "then_one_runs_tests_s": round(second, 3),
                        "then_first_write_s": round(write, 3),
                        "reopen_and_first_query_s": round(again, 2),
                    }
                )
            )


if __name__ == "__main__":
    main()
