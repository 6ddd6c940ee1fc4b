"""Ingest throughput: write-behind vs one write per result, with 2 ms per database round trip.

Records N test results (default 5,000) through the public API
(`evaluation_run(...)`, `record_test`, `finish`) on the embedded backend. A
wrapper around both collections sleeps 2 ms before every round trip (a
simulated network) and counts round trips and the time the backend itself
spends; it is used identically in both modes:

- write-behind: the defaults (batches of EVALSTORE_BATCH_SIZE=500);
- synchronous: batches of 1 and a queue of 1, so every result is its own
  round trip and `record_test` waits for the previous one.

A warm-up run of 100 results comes first (imports, git provenance), and the
write-behind figure is the median of `--rounds` runs (the synchronous one
takes a few seconds and is run once).

Usage: `.venv/bin/python scripts/bench_ingest.py [--results 5000] [--delay-ms 2] [--rounds 3]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.settings import load_settings
from evalstore.storage.mongo import MongoEngine


@dataclass
class Counter:
    """Round trips and time spent inside the backend (excluding the injected delay)."""

    round_trips: int = 0
    backend_s: float = 0.0


class DelayedCursor:
    """A cursor whose `to_list` is one delayed round trip."""

    def __init__(self, cursor: Any, delay_s: float, counter: Counter) -> None:
        self._cursor, self._delay_s, self._counter = cursor, delay_s, counter

    def sort(self, *args: Any, **kwargs: Any) -> DelayedCursor:
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    async def to_list(self, length: int | None) -> Any:
        self._counter.round_trips += 1
        await asyncio.sleep(self._delay_s)
        start = time.perf_counter()
        result = await self._cursor.to_list(length)
        self._counter.backend_s += time.perf_counter() - start
        return result


class DelayedCollection:
    """Wraps a collection: every call is one round trip that first sleeps `delay_s`."""

    def __init__(self, collection: Any, delay_s: float, counter: Counter) -> None:
        self._collection, self._delay_s, self._counter = collection, delay_s, counter

    def find(self, *args: Any, **kwargs: Any) -> DelayedCursor:
        return DelayedCursor(self._collection.find(*args, **kwargs), self._delay_s, self._counter)

    def aggregate(self, *args: Any, **kwargs: Any) -> DelayedCursor:
        # the embedded backend runs a pipeline when aggregate() is called, not when iterated
        start = time.perf_counter()
        cursor = self._collection.aggregate(*args, **kwargs)
        self._counter.backend_s += time.perf_counter() - start
        return DelayedCursor(cursor, self._delay_s, self._counter)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._collection, name)

        async def delayed(*args: Any, **kwargs: Any) -> Any:
            self._counter.round_trips += 1
            await asyncio.sleep(self._delay_s)
            start = time.perf_counter()
            result = await method(*args, **kwargs)
            self._counter.backend_s += time.perf_counter() - start
            return result

        return delayed


class DelayedEngine(MongoEngine):
    """The embedded engine, each collection behind a simulated network."""

    delay_s: float
    counter: Counter

    def _collection(self, name: str) -> Any:
        return DelayedCollection(super()._collection(name), self.delay_s, self.counter)


class DelayedClient(MongoDBClient):
    """The embedded backend behind a simulated network."""

    def __init__(self, database: str, delay_s: float) -> None:
        super().__init__("mongomock://", database)
        self.counter = Counter()
        self._delay_s = delay_s

    @property
    def engine(self) -> Any:
        if self._engine is None:
            engine = DelayedEngine(
                self.connection_string,
                self.database_name,
                timeout_ms=self.timeout_ms,
                redacted_uri=self.redacted_uri,
            )
            engine.delay_s, engine.counter = self._delay_s, self.counter
            self._engine = engine
        return self._engine


async def measure(results: int, delay_s: float) -> tuple[float, Counter]:
    """Record `results` tests; return the wall-clock seconds and the counter."""
    client = DelayedClient(f"bench_{uuid.uuid4().hex[:8]}", delay_s)
    start = time.perf_counter()
    async with evaluation_run(MetricsStorageService(client), environment="dev") as run:
        for i in range(results):
            await run.record_test(f"t{i:05d}", metrics={"wer": float(i % 100)}, passed=True)
    elapsed = time.perf_counter() - start
    assert run.document["num_tests"] == results, run.document
    await client.drop_database()
    return elapsed, client.counter


def configure(batch: str | None, queue: str | None) -> None:
    """Set (or unset, for the defaults) the batch and queue size env vars."""
    for name, value in (("EVALSTORE_BATCH_SIZE", batch), ("EVALSTORE_QUEUE_SIZE", queue)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def main() -> None:
    """Run both modes and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=5000)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    parser.add_argument(
        "--rounds", type=int, default=3, help="write-behind rounds (the median is kept)"
    )
    args = parser.parse_args()
    os.environ.setdefault("EVALSTORE_SPOOL_DIR", tempfile.mkdtemp(prefix="evalstore-bench-"))
    # A short warm-up run first, so neither mode pays for the first imports and git calls.
    configure(None, None)
    asyncio.run(measure(100, args.delay_ms / 1000))
    rows = []
    for mode, batch, queue, rounds in (
        ("write-behind", None, None, args.rounds),
        ("synchronous", "1", "1", 1),
    ):
        configure(batch, queue)
        settings = load_settings()
        measured = sorted(
            (asyncio.run(measure(args.results, args.delay_ms / 1000)) for _ in range(rounds)),
            key=lambda row: row[0],
        )
        elapsed, counter = measured[len(measured) // 2]
        rows.append((mode, settings, elapsed, counter))
    print(
        f"{args.results} results, {args.delay_ms} ms per round trip, embedded backend "
        f"(write-behind: median of {args.rounds} rounds)"
    )
    print(f"{'mode':<14}{'batch':>7}{'results/s':>11}{'round trips':>13}{'s':>8}{'backend s':>11}")
    for mode, settings, elapsed, counter in rows:
        print(
            f"{mode:<14}{settings.evalstore_batch_size:>7}{args.results / elapsed:>11.0f}"
            f"{counter.round_trips:>13}{elapsed:>8.2f}{counter.backend_s:>11.2f}"
        )
    (_, _, fast, fast_counter), (_, _, slow, slow_counter) = rows
    print(f"speed-up: {slow / fast:.1f}x")
    print(
        "speed-up without the embedded backend's own CPU time: "
        f"{(slow - slow_counter.backend_s) / (fast - fast_counter.backend_s):.1f}x"
    )


if __name__ == "__main__":
    main()
