"""Issue 12, item 6: durations as a metric — the slowest tests, one test's duration over time.

The history (March 2025; durations in ms; each run's tests finish 1, 2, 3... minutes
after its start, in the order listed):

| run | started        | env  | tags         | tests                                   |
|-----|----------------|------|--------------|-----------------------------------------|
| R1  | Mon 3rd 10:00  | dev  | baseline     | slow 1000, fast 10, skip 5000 (skipped) |
| R2  | Tue 4th 10:00  | dev  | baseline     | slow 1500 (failed), fast 30,            |
|     |                |      |              | skip 7000 (skipped), tie-b 500,         |
|     |                |      |              | tie-a 500                               |
| R3  | Mon 10th 09:00 | prod | config-tweak | slow 3500, fast 8, zero 0 (error)       |
| R4  | Mon 10th 15:00 | prod | -            | slow 4500                               |

Over March: slow runs 4, mean (1000 + 1500 + 3500 + 4500) / 4 = 2625, max 4500,
last 4500, change (4500 - 2625) / 2625; tie-a and tie-b 500 each (the tie goes
by test id); fast (10 + 30 + 8) / 3 = 16, last 8, change -0.5; zero 0 (no
change: the mean is 0); skip only ever skipped (not listed). 3rd-9th March is
ISO week 2025-W10, the 10th W11.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from index_coverage import coverage_problems, covering_index, pipeline_shape

from evalstore import InvalidDataError, MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.analysis.filters import RunFilters
from evalstore.analysis.pipelines import slowest_tests_pipeline
from evalstore.storage.indexes import TEST_RUNS
from evalstore.storage.sqlite.engine import SqliteEngine

UTC = timezone.utc
MARCH = {"since": datetime(2025, 3, 1, tzinfo=UTC), "until": datetime(2025, 4, 1, tzinfo=UTC)}
Test = tuple[str, str, float]  # test id, status, duration_ms


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


async def record(
    service: MetricsStorageService,
    started_at: datetime,
    tests: Sequence[Test],
    *,
    environment: str,
    tags: Sequence[str] = (),
) -> None:
    times = iter([started_at, started_at + timedelta(hours=1)])
    async with evaluation_run(
        service,
        config={"model": "m"},
        tags=list(tags),
        environment=environment,
        clock=lambda: next(times),
        repo_path=".",
    ) as run:
        for index, (test_id, status, duration) in enumerate(tests):
            await run.record_test(
                test_id,
                status=status,  # type: ignore[arg-type]
                score=None if status == "skipped" else 50.0,
                finished_at=started_at + timedelta(minutes=index + 1),
                duration_ms=duration,
            )


@pytest.fixture
async def history(service: MetricsStorageService) -> MetricsStorageService:
    baseline = ["baseline"]
    await record(
        service,
        at(3, 10),
        [("slow", "passed", 1000.0), ("fast", "passed", 10.0), ("skip", "skipped", 5000.0)],
        environment="dev",
        tags=baseline,
    )
    await record(
        service,
        at(4, 10),
        [
            ("slow", "failed", 1500.0),
            ("fast", "passed", 30.0),
            ("skip", "skipped", 7000.0),
            ("tie-b", "passed", 500.0),
            ("tie-a", "passed", 500.0),
        ],
        environment="dev",
        tags=baseline,
    )
    await record(
        service,
        at(10, 9),
        [("slow", "passed", 3500.0), ("fast", "passed", 8.0), ("zero", "error", 0.0)],
        environment="prod",
        tags=["config-tweak"],
    )
    await record(service, at(10, 15), [("slow", "passed", 4500.0)], environment="prod")
    return service


def slow(
    test_id: str, runs: int, mean: float, max_: float, last: float, change: Any, seen: datetime
) -> dict[str, Any]:
    return {
        "test_id": test_id,
        "runs": runs,
        "mean_ms": mean,
        "max_ms": max_,
        "last_ms": last,
        "change": change,
        "last_seen": seen,
    }


SLOW = slow("slow", 4, 2625.0, 4500.0, 4500.0, 1875 / 2625, at(10, 15, 1))
TIE_A = slow("tie-a", 1, 500.0, 500.0, 500.0, 0.0, at(4, 10, 5))
TIE_B = slow("tie-b", 1, 500.0, 500.0, 500.0, 0.0, at(4, 10, 4))
FAST = slow("fast", 3, 16.0, 30.0, 8.0, -0.5, at(10, 9, 2))
ZERO = slow("zero", 1, 0.0, 0.0, 0.0, None, at(10, 9, 3))


async def test_slowest_tests_over_the_window(history: MetricsStorageService) -> None:
    everything = await history.get_slowest_tests(limit=None, **MARCH)
    assert everything == [SLOW, TIE_A, TIE_B, FAST, ZERO]
    assert await history.get_slowest_tests(**MARCH) == everything  # the default 10 holds all
    assert await history.get_slowest_tests(limit=2, **MARCH) == [SLOW, TIE_A]
    assert await history.get_slowest_tests(limit=1, **MARCH) == [SLOW]


async def test_slowest_tests_with_filters(history: MetricsStorageService) -> None:
    dev = await history.get_slowest_tests(environment="dev", **MARCH)
    assert dev == [
        slow("slow", 2, 1250.0, 1500.0, 1500.0, 0.2, at(4, 10, 1)),
        TIE_A,
        TIE_B,
        slow("fast", 2, 20.0, 30.0, 30.0, 0.5, at(4, 10, 2)),
    ]
    tweak = await history.get_slowest_tests(tags=["config-tweak"], **MARCH)
    assert tweak == [
        slow("slow", 1, 3500.0, 3500.0, 3500.0, 0.0, at(10, 9, 1)),
        slow("fast", 1, 8.0, 8.0, 8.0, 0.0, at(10, 9, 2)),
        ZERO,
    ]
    # From the 10th on (test runs by finish time): R3 and R4.
    tenth = await history.get_slowest_tests(since=at(10, 0), until=MARCH["until"])
    assert tenth == [
        slow("slow", 2, 4000.0, 4500.0, 4500.0, 0.125, at(10, 15, 1)),
        slow("fast", 1, 8.0, 8.0, 8.0, 0.0, at(10, 9, 2)),
        ZERO,
    ]
    # `until` is exclusive: R4's test finished at 15:01.
    before = await history.get_slowest_tests(since=at(10, 0), until=at(10, 15, 1))
    assert before[0] == slow("slow", 1, 3500.0, 3500.0, 3500.0, 0.0, at(10, 9, 1))
    assert await history.get_slowest_tests(environment="lab", **MARCH) == []
    assert await history.get_slowest_tests(since=at(20, 0)) == []


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "3"])
async def test_a_bad_limit_is_refused(history: MetricsStorageService, limit: Any) -> None:
    with pytest.raises(InvalidDataError, match=r"^limit must be a positive integer, got"):
        await history.get_slowest_tests(limit=limit, **MARCH)


async def test_one_tests_duration_in_each_run(history: MetricsStorageService) -> None:
    points = await history.get_test_trend("slow", value="duration", **MARCH)
    assert [(p["finished_at"], p["status"], p["passed"], p["duration_ms"]) for p in points] == [
        (at(3, 10, 1), "passed", True, 1000.0),
        (at(4, 10, 1), "failed", False, 1500.0),
        (at(10, 9, 1), "passed", True, 3500.0),
        (at(10, 15, 1), "passed", True, 4500.0),
    ]
    assert set(points[0]) == {"test_run_id", "finished_at", "duration_ms", "passed", "status"}
    assert "/slow/" in points[0]["test_run_id"]
    # Skipped runs are listed in each run (with their status), as the score trend lists them.
    skipped = await history.get_test_trend("skip", value="duration", **MARCH)
    assert [(p["status"], p["duration_ms"]) for p in skipped] == [
        ("skipped", 5000.0),
        ("skipped", 7000.0),
    ]
    # The score trend is unchanged by the new argument.
    scores = await history.get_test_trend("slow", **MARCH)
    assert [p["score"] for p in scores] == [50.0, 50.0, 50.0, 50.0]
    assert "duration_ms" not in scores[0]
    assert await history.get_test_trend("slow", value="score", **MARCH) == scores
    with pytest.raises(InvalidDataError, match=r"^value must be 'score' or 'duration', got 'ms'"):
        await history.get_test_trend("slow", value="ms", **MARCH)  # type: ignore[call-overload]


async def test_one_tests_mean_duration_per_day_and_week(history: MetricsStorageService) -> None:
    assert await history.get_test_duration_trend("slow", "day", **MARCH) == [
        {"period": "2025-03-03", "mean": 1000.0, "runs": 1},
        {"period": "2025-03-04", "mean": 1500.0, "runs": 1},
        {"period": "2025-03-10", "mean": 4000.0, "runs": 2},
    ]
    assert await history.get_test_duration_trend("slow", "week", **MARCH) == [
        {"period": "2025-W10", "mean": 1250.0, "runs": 2},
        {"period": "2025-W11", "mean": 4000.0, "runs": 2},
    ]
    assert await history.get_test_duration_trend("fast", "week", environment="dev", **MARCH) == [
        {"period": "2025-W10", "mean": 20.0, "runs": 2},
    ]
    # Skipped runs do not count: a test that only skipped has no duration trend.
    assert await history.get_test_duration_trend("skip", "day", **MARCH) == []
    assert await history.get_test_duration_trend("never-ran", "day", **MARCH) == []
    with pytest.raises(InvalidDataError, match=r"^by must be 'day' or 'week', got 'run'"):
        await history.get_test_duration_trend("slow", "run", **MARCH)  # type: ignore[arg-type]


def test_the_pipeline_is_served_by_the_finished_at_index() -> None:
    shape = pipeline_shape(TEST_RUNS, slowest_tests_pipeline(RunFilters().test_match()))
    assert coverage_problems(shape) == []
    assert covering_index(shape).name == "finished_at"  # type: ignore[union-attr]


async def test_the_local_store_reads_the_window_through_an_index(tmp_path: Path) -> None:
    """No statement of the duration queries scans the test_runs table (as in
    test_analysis_indexes): the window's rows are found through an index."""
    client = MongoDBClient(f"file://{tmp_path / 'store'}", "plans")
    service = MetricsStorageService(client)
    await record(service, at(3, 10), [("slow", "passed", 1000.0)], environment="dev")
    engine = client.engine
    assert isinstance(engine, SqliteEngine)
    statements: list[str] = []
    engine._connect().set_trace_callback(statements.append)
    try:
        calls = [
            service.get_slowest_tests(**MARCH),
            service.get_slowest_tests(environment="dev", **MARCH),
            service.get_test_trend("slow", value="duration", **MARCH),
            service.get_test_duration_trend("slow", "week", **MARCH),
        ]
        for call in calls:
            statements.clear()
            assert await call
            reads = [sql for sql in statements if " test_runs" in sql]
            assert reads
            for sql in reads:
                plan = engine._connect().execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                details = [row["detail"] for row in plan]
                scans = [d for d in details if d.startswith("SCAN test_runs")]
                assert scans or any(d.startswith("SEARCH test_runs") for d in details)
                assert [d for d in scans if "INDEX" not in d] == [], (sql, details)
    finally:
        engine._connect().set_trace_callback(None)
        await client.close()
