"""Record `legacy_store/` with the OLD local store (mongomock persisted as ndjson files).

This made the fixture `tests/storage/test_legacy_reader.py` reads. It must run
with the old code, evalstore at commit 5384faf2e842b183b65f923a90e9d76ec586a370
(the last one with `evalstore.storage.localstore`), not the tree it sits in:

    git clone /path/to/evalstore /tmp/legacy-gen
    git -C /tmp/legacy-gen checkout 5384faf2e842b183b65f923a90e9d76ec586a370
    PYTHONPATH=/tmp/legacy-gen/src .venv/bin/python tests/storage/data/make_legacy_store.py

It replaces `legacy_store/` and `legacy_store_expected.ndjson` beside it.

What it records, through the public API only (`evaluation_run`,
`MetricsStorageService`, `MongoDBClient`):

- database `evalstore`, process phase 1 (the store is new, so the old code writes an
  empty snapshot and log of generation 1): run `main`/dev with 5 tests, one failed;
  then a throwaway run of 600 tests dated 2020, pruned: over 1000 log records for
  7 documents;
- phase 2 (a new open: the old code compacts on its first write, so the snapshot of
  generation 2 holds the phase 1 run and its tests, the log starts empty): run
  `feature/retrieval`/stage with tags and 5 tests; a run dated 2021 with 2 tests,
  pruned (so the log holds `del` records); run `main`/lab with 4 tests, finished
  as `interrupted`;
- database `other`: one run with 3 tests (its snapshot holds only its header).

Then it reads every document of both collections of both databases back with the
old code (a fresh open of the files) and writes them, in store order, to
`legacy_store_expected.ndjson` as `{"db": ..., "c": ..., "doc": ...}` lines
(`evalstore.codec.encode`). The lock files `.lock` and `.owner` (a pid) are removed:
they are not data.

Times are fixed (a clock per run) and the git repositories the runs read their
provenance from are made with fixed dates, so only ObjectIds, `last_seen_at`
heartbeats and the Python version vary between two generations.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import evalstore
from evalstore import MetricData, MetricsStorageService, MongoDBClient, Settings, evaluation_run
from evalstore.codec import encode

HERE = Path(__file__).resolve().parent
STORE = HERE / "legacy_store"
EXPECTED = HERE / "legacy_store_expected.ndjson"
URL = f"file://{STORE}"
COLLECTIONS = ("evaluation_runs", "test_runs")
DATABASES = ("evalstore", "other")


def check_old_code() -> None:
    """Refuse to run with a tree that no longer has the old local store."""
    try:
        from evalstore.storage import localstore  # noqa: F401
    except ImportError:
        sys.exit(
            f"evalstore at {evalstore.__file__} has no storage.localstore: run this with the "
            "old code (PYTHONPATH=<clone at 5384faf>/src), see the docstring"
        )
    print(f"old code: {evalstore.__file__}")


def make_repo(root: Path, branch: str) -> Path:
    """A git repository on `branch` with one commit of fixed date (a stable hash)."""
    repo = root / branch.replace("/", "-")
    repo.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "fixture",
        "GIT_AUTHOR_EMAIL": "fixture@example.com",
        "GIT_COMMITTER_NAME": "fixture",
        "GIT_COMMITTER_EMAIL": "fixture@example.com",
        "GIT_AUTHOR_DATE": "2025-11-01T12:00:00+00:00",
        "GIT_COMMITTER_DATE": "2025-11-01T12:00:00+00:00",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", branch)
    (repo / "README").write_text(f"{branch}\n")
    git("add", "README")
    git("commit", "-q", "-m", "fixture")
    return repo


def clock_from(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at `start` and moves a minute per reading (the run's tests take 15 s)."""
    ticks: Iterator[int] = iter(range(10**9))
    return lambda: start + timedelta(minutes=next(ticks))


async def record_run(
    service: MetricsStorageService,
    settings: Settings,
    *,
    repo: Path,
    start: datetime,
    environment: str,
    tags: list[str],
    suite: str | None,
    config: dict[str, object],
    tests: list[dict[str, object]],
    status: str = "completed",
) -> str:
    """Record one run with `tests` (record_test keyword arguments); return its `_id` as hex."""
    run = evaluation_run(
        service,
        config=config,
        tags=tags,
        environment=environment,
        suite=suite,
        repo_path=repo,
        settings=settings,
        clock=clock_from(start),
    )
    document = await run.start()
    for offset, test in enumerate(tests):
        await run.record_test(
            **test,
            started_at=start + timedelta(seconds=10 + offset),
            duration_ms=250.0 + offset,
        )
    await run.finish(status)
    return str(document["_id"])


def five_tests(failing: str | None = None) -> list[dict[str, object]]:
    """Five tests with metrics; `failing` names one that fails its threshold."""
    tests: list[dict[str, object]] = []
    for index, name in enumerate(("parse", "retrieve", "rank", "answer", "cite")):
        accuracy = 95.0 - 5 * index
        if name == failing:
            accuracy = 42.5
        tests.append(
            {
                "test_id": f"suite::test_{name}",
                "test_name": f"test {name}",
                "metrics": {
                    "accuracy": MetricData(
                        score=accuracy, passed=accuracy >= 60.0, threshold=60.0, unit="%"
                    ),
                    "latency": {
                        "score": 80.0 + index,
                        "unit": "ms",
                        "details": {"p95": 120 + index},
                    },
                    "recall": 70.0 + index,
                },
                "tags": ["smoke"] if index % 2 == 0 else [],
                "participants": ["model-a"],
                "message": "accuracy below threshold" if name == failing else None,
                "details": {
                    "attempt": 1,
                    "seen_at": datetime(2025, 11, 2, 8, 0, tzinfo=timezone.utc),
                },
            }
        )
    return tests


async def phase_one(settings: Settings, repos: dict[str, Path]) -> None:
    service = MetricsStorageService(MongoDBClient(URL, "evalstore"))
    try:
        await record_run(
            service,
            settings,
            repo=repos["main"],
            start=datetime(2025, 11, 3, 9, 0, tzinfo=timezone.utc),
            environment="dev",
            tags=["baseline"],
            suite="qa",
            config={"model": "model-a", "temperature": 0.0, "top_k": 5},
            tests=five_tests(failing="rank"),
        )
        bulk = [
            {"test_id": f"bulk::case_{index:03d}", "score": float(index % 100), "passed": True}
            for index in range(600)
        ]
        await record_run(
            service,
            settings,
            repo=repos["main"],
            start=datetime(2020, 1, 6, 9, 0, tzinfo=timezone.utc),
            environment="dev",
            tags=["bulk"],
            suite="qa",
            config={"model": "model-0"},
            tests=bulk,
        )
        result = await service.prune(older_than_days=days_since(datetime(2024, 1, 1)))
        print(f"phase 1 pruned {result['evaluation_runs']} run, {result['test_runs']} tests")
    finally:
        await service.client.close()


async def phase_two(settings: Settings, repos: dict[str, Path]) -> None:
    service = MetricsStorageService(MongoDBClient(URL, "evalstore"))
    try:
        await record_run(
            service,
            settings,
            repo=repos["feature/retrieval"],
            start=datetime(2025, 11, 10, 14, 30, tzinfo=timezone.utc),
            environment="stage",
            tags=["exp-rerank", "model=b"],
            suite="qa",
            config={"model": "model-b", "temperature": 0.2, "top_k": 10, "reranker": True},
            tests=five_tests(),
        )
        await record_run(
            service,
            settings,
            repo=repos["main"],
            start=datetime(2021, 3, 1, 7, 0, tzinfo=timezone.utc),
            environment="dev",
            tags=["old"],
            suite="qa",
            config={"model": "model-0"},
            tests=five_tests()[:2],
        )
        result = await service.prune(older_than_days=days_since(datetime(2024, 1, 1)))
        print(f"phase 2 pruned {result['evaluation_runs']} run, {result['test_runs']} tests")
        interrupted = five_tests()[:4]
        interrupted[3] = {**interrupted[3], "status": "skipped", "passed": False, "metrics": None}
        await record_run(
            service,
            settings,
            repo=repos["main"],
            start=datetime(2025, 11, 20, 23, 59, 58, 123456, tzinfo=timezone.utc),
            environment="lab",
            tags=[],
            suite=None,
            config={"model": "model-a", "notes": "naïve — ünïcode ✓"},
            tests=interrupted,
            status="interrupted",
        )
    finally:
        await service.client.close()


async def phase_other(settings: Settings, repos: dict[str, Path]) -> None:
    service = MetricsStorageService(MongoDBClient(URL, "other"))
    try:
        await record_run(
            service,
            settings,
            repo=repos["release/1.0"],
            start=datetime(2025, 11, 15, 6, 0, tzinfo=timezone.utc),
            environment="prod",
            tags=["release"],
            suite="smoke",
            config={"model": "model-a"},
            tests=five_tests()[:3],
        )
    finally:
        await service.client.close()


def days_since(moment: datetime) -> float:
    """Days from `moment` (UTC) to now: prune's cutoff that keeps the runs after it."""
    return (datetime.now(timezone.utc) - moment.replace(tzinfo=timezone.utc)).days + 0.0


async def read_back() -> list[bytes]:
    """Every document of both collections of both databases, as the old code returns them."""
    lines: list[bytes] = []
    for database in DATABASES:
        client = MongoDBClient(URL, database)
        try:
            for collection in COLLECTIONS:
                documents = await client.read(collection, {}, action="export the fixture")
                lines += [
                    encode({"db": database, "c": collection, "doc": doc}) for doc in documents
                ]
        finally:
            await client.close()
    return lines


def log_records(database: str) -> int:
    with (STORE / database / "log.ndjson").open("rb") as handle:
        return sum(1 for _ in handle) - 1


async def main() -> None:
    check_old_code()
    if STORE.exists():
        shutil.rmtree(STORE)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        repos = {
            name: make_repo(root, name) for name in ("main", "feature/retrieval", "release/1.0")
        }
        settings = Settings(
            evalstore_spool_dir=root / "spool", evalstore_spool_fsync="never", _env_file=None
        )
        await phase_one(settings, repos)
        print(f"after phase 1: {log_records('evalstore')} log records")
        await phase_two(settings, repos)
        await phase_other(settings, repos)
    for name in (".lock", ".owner"):
        (STORE / name).unlink(missing_ok=True)
    EXPECTED.write_bytes(b"".join(await read_back()))
    for database in DATABASES:
        for name in ("snapshot.ndjson", "log.ndjson"):
            path = STORE / database / name
            with path.open("rb") as handle:
                header = handle.readline().decode().strip()
                rest = sum(1 for _ in handle)
            print(f"{database}/{name}: {header} + {rest} records")


if __name__ == "__main__":
    asyncio.run(main())
