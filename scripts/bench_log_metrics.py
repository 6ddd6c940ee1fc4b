"""What a logged training point costs: `log_metrics` write-behind, against hand-written SQLite.

Logs `--steps` steps of `--metrics` metrics each (default 10,000 x 10 = 100,000
points) through the public API (`evaluation_run`, `log_metrics`, the end of the
run) in a fresh process per store, and prints side by side, per point:

- the time `log_metrics` calls take (journal line, validation, batch stores on
  the way), and the end of the run (the last batch, the run's aggregates);
- the same points inserted with hand-written `sqlite3` (`executemany` into a
  table keyed on run, metric, split and step, one transaction per 1,000
  points, WAL, synchronous=FULL), the yardstick for the local store.

Usage: `.venv/bin/python scripts/bench_log_metrics.py [--steps 10000] [--metrics 10]`
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import asyncio, json, os, sys, time
from evalstore import evaluation_run

async def main(steps, metrics):
    async with evaluation_run(config={"bench": 1}, monitor=False) as run:
        names = [f"m{i}" for i in range(metrics)]
        start = time.perf_counter()
        for step in range(steps):
            await run.log_metrics({name: step * 0.001 + i for i, name in enumerate(names)}, step)
        logged = time.perf_counter() - start
        finish_start = time.perf_counter()
    finished = time.perf_counter() - finish_start
    print(json.dumps({"logged": logged, "finished": finished}))

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def run_child(store: str, steps: int, metrics: int, spool: Path) -> dict[str, float]:
    env = dict(
        os.environ,
        MONGODB_ENABLED="true",
        MONGODB_CONNECTION_STRING=store,
        MONGODB_DATABASE="bench",
        EVALSTORE_SPOOL_DIR=str(spool),
    )
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(steps), str(metrics)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def hand_written_sqlite(path: Path, steps: int, metrics: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(
        "CREATE TABLE points (run TEXT, metric TEXT, split TEXT, step INTEGER, value REAL, "
        "PRIMARY KEY (run, metric, split, step)) WITHOUT ROWID"
    )
    rows = [
        ("run", f"m{i}", "train", step, step * 0.001 + i)
        for step in range(steps)
        for i in range(metrics)
    ]
    start = time.perf_counter()
    for offset in range(0, len(rows), 1000):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO points VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET value = "
            "excluded.value",
            rows[offset : offset + 1000],
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=10)
    args = parser.parse_args()
    points = args.steps * args.metrics
    with tempfile.TemporaryDirectory(prefix="evalstore-bench-") as tmp:
        root = Path(tmp)
        results = {
            "mongomock://": run_child("mongomock://", args.steps, args.metrics, root / "s1"),
            "file://": run_child(f"file://{root / 'store'}", args.steps, args.metrics, root / "s2"),
        }
        direct = hand_written_sqlite(root / "direct.sqlite3", args.steps, args.metrics)
    print(f"points: {points:,} ({args.steps:,} steps x {args.metrics} metrics)")
    print(f"{'store':<22}{'log_metrics':>14}{'end of run':>12}{'µs/point':>10}{'ratio':>8}")
    for name, result in results.items():
        total = result["logged"] + result["finished"]
        ratio = f"{total / direct:.1f}x" if name == "file://" else ""
        print(
            f"{name:<22}{result['logged']:>12.2f} s{result['finished']:>10.2f} s"
            f"{total / points * 1e6:>10.1f}{ratio:>8}"
        )
    print(f"{'hand-written sqlite3':<22}{direct:>12.2f} s{'':>12}{direct / points * 1e6:>10.1f}")


if __name__ == "__main__":
    main()
