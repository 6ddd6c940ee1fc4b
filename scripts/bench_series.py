"""Reading metric series: a 100,000-point series written, read, downsampled and summarised.

On the embedded backend (`mongomock://`) and the local store (`file://`, a fresh
temporary directory), side by side in one run, through the public service:

- write: the points through `service.store_points` in batches of `--batch`
  (default 1,000), as the write-behind writer stores them; µs per point;
- read + downsample: `get_series(run, max_points=500)` (min/max per step bucket on
  the server), the median of `--rounds` reads; it checks that the global min and
  max (a single spike) are kept;
- read all: `get_series(run, max_points=None)`, every point;
- summary: `get_series_summary(run)` (what `finalize_evaluation_run` stores on the run).

Usage: `.venv/bin/python scripts/bench_series.py [--points 100000] [--max-points 500]
[--batch 1000] [--rounds 3]`
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from bson import ObjectId

from evalstore import MetricsStorageService, MongoDBClient
from evalstore.ids import point_id

UTC = timezone.utc
RUN_ID = "bench-series"


def points(run_oid: ObjectId, count: int) -> list[dict[str, Any]]:
    """A decreasing noisy loss with one spike (the global max) at two thirds."""
    rng = random.Random(14)
    start = datetime(2025, 3, 3, tzinfo=UTC)
    spike = 2 * count // 3
    return [
        {
            "_id": point_id(run_oid, "loss", "train", step),
            "evaluation_run_id": run_oid,
            "metric": "loss",
            "split": "train",
            "step": step,
            "value": 100.0 if step == spike else 2.0 * math.exp(-step / count) + rng.random() * 0.1,
            "recorded_at": start + timedelta(milliseconds=step),
        }
        for step in range(count)
    ]


async def timed(call: Callable[[], Awaitable[Any]], rounds: int) -> tuple[float, Any]:
    """The median seconds of `rounds` calls, and the last answer."""
    times, answer = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        answer = await call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), answer


async def bench(uri: str, args: argparse.Namespace) -> dict[str, Any]:
    client = MongoDBClient(uri, f"bench_series_{uuid.uuid4().hex[:8]}")
    service = MetricsStorageService(client)
    try:
        await client.create_indexes()
        run_oid = ObjectId()
        await service.upsert_evaluation_run(
            {
                "_id": run_oid,
                "evaluation_run_id": RUN_ID,
                "status": "running",
                "started_at": datetime.now(UTC),
            }
        )
        docs = points(run_oid, args.points)
        start = time.perf_counter()
        for index in range(0, len(docs), args.batch):
            await service.store_points(docs[index : index + args.batch])
        write_s = time.perf_counter() - start

        def series(max_points: int | None) -> Callable[[], Awaitable[Any]]:
            return lambda: service.get_series(RUN_ID, max_points=max_points)

        down_s, [down] = await timed(series(args.max_points), args.rounds)
        all_s, [whole] = await timed(series(None), args.rounds)
        summary_s, _ = await timed(lambda: service.get_series_summary(RUN_ID), args.rounds)
        values = [doc["value"] for doc in docs]
        kept = [point["value"] for point in down["points"]]
        assert whole["total"] == len(whole["points"]) == args.points
        assert min(kept) == min(values), "the global min was lost"
        assert max(kept) == max(values), "the global max was lost"
        return {
            "write_us": write_s / args.points * 1e6,
            "down_ms": down_s * 1e3,
            "kept": len(down["points"]),
            "all_ms": all_s * 1e3,
            "summary_ms": summary_s * 1e3,
        }
    finally:
        await client.drop_database()
        await client.close()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        engines = {
            "embedded (mongomock://)": "mongomock://",
            "local store (file://)": f"file://{directory}/store",
        }
        results = {name: await bench(uri, args) for name, uri in engines.items()}
    print(
        f"{args.points:,} points of one series (one spike), batches of {args.batch:,}; "
        f"reads: median of {args.rounds}"
    )
    print()
    names = list(results)
    print(f"| | {' | '.join(names)} |")
    print(f"|---|{'---:|' * len(names)}")
    rows = (
        ("write (`store_points`), µs/point", "write_us", "{:.1f}"),
        (f"read + downsample to {args.max_points} (ms)", "down_ms", "{:.0f}"),
        ("points kept (global min and max among them)", "kept", "{}"),
        ("read all points (ms)", "all_ms", "{:.0f}"),
        ("summary (ms)", "summary_ms", "{:.0f}"),
    )
    for label, key, form in rows:
        cells = " | ".join(form.format(results[name][key]) for name in names)
        print(f"| {label} | {cells} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--max-points", type=int, default=500)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
