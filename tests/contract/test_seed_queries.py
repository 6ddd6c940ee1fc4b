"""Every mongosh query of the users' storage design works on what evalstore stores.

Each query here is the README's mongosh query written as Python dicts; the
expected values are computed by hand from the three runs below.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from evalstore import MetricsStorageService, MongoDBClient, evaluation_run

pytestmark = pytest.mark.mongodb_only  # the seed's mongosh queries run on MongoDB

DOCTOR = "doctor-patient-es-en"
FLAKY = "hotel-checkin-fr-en"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=10)
        return self.now


def day(d: int, hour: int) -> datetime:
    return datetime(2025, 12, d, hour, tzinfo=timezone.utc)


@pytest.fixture
async def history(service: MetricsStorageService) -> dict[str, Any]:
    """Run A (Dec 1, 10:00), B (Dec 1, 15:00), C (Dec 2, 09:00); a test passes at 50+.

    A: doctor 80, flaky 40 -> wer 60, score 60, 1 of 2 passed
    B: doctor 70, flaky 90 -> wer 80, score 80, 2 of 2 passed
    C: doctor 60, flaky 30 -> wer 45, score 45, 1 of 2 passed (other configuration)
    """
    ids: dict[str, Any] = {}
    plan = [
        ("A", day(1, 10), {"beam": 1}, {DOCTOR: 80, FLAKY: 40}),
        ("B", day(1, 15), {"beam": 1}, {DOCTOR: 70, FLAKY: 90}),
        ("C", day(2, 9), {"beam": 5}, {DOCTOR: 60, FLAKY: 30}),
    ]
    for name, start, config, scores in plan:
        async with evaluation_run(
            service, config=config, environment="dev", clock=Clock(start)
        ) as run:
            for test_id, wer in scores.items():
                await run.record_test(test_id, metrics={"wer": wer}, passed=wer >= 50)
        ids[name] = run.document
    return ids


def db(service: MetricsStorageService) -> Any:
    client: MongoDBClient = service.client
    return client.db


async def test_recent_evaluation_runs(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    # db.evaluation_runs.find().sort({started_at: -1}).limit(10)
    runs = await db(service).evaluation_runs.find().sort({"started_at": -1}).limit(10).to_list(None)
    assert [r["score"] for r in runs] == [45.0, 80.0, 60.0]


async def test_evaluation_run_details_and_its_test_runs(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    run_b = history["B"]
    # db.evaluation_runs.findOne({evaluation_run_id: "..."})
    found = await db(service).evaluation_runs.find_one(
        {"evaluation_run_id": run_b["evaluation_run_id"]}
    )
    assert found["score"] == 80.0
    # db.test_runs.find({evaluation_run_id: ObjectId("...")})
    tests = await db(service).test_runs.find({"evaluation_run_id": found["_id"]}).to_list(None)
    assert sorted(t["score"] for t in tests) == [70.0, 90.0]


async def test_test_evolution_and_score_trend_of_one_test(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    # db.test_runs.find({test_id: "..."}).sort({finished_at: -1}).limit(10)
    evolution = (
        await db(service)
        .test_runs.find({"test_id": FLAKY})
        .sort({"finished_at": -1})
        .limit(10)
        .to_list(None)
    )
    assert [t["score"] for t in evolution] == [30.0, 90.0, 40.0]
    # db.test_runs.find({test_id: "..."}, {finished_at: 1, score: 1, passed: 1}).sort(...)
    trend = (
        await db(service)
        .test_runs.find({"test_id": FLAKY}, {"_id": 0, "finished_at": 1, "score": 1, "passed": 1})
        .sort({"finished_at": -1})
        .to_list(None)
    )
    assert [(t["score"], t["passed"]) for t in trend] == [
        (30.0, False),
        (90.0, True),
        (40.0, False),
    ]
    assert [t["finished_at"].date().isoformat() for t in trend] == [
        "2025-12-02",
        "2025-12-01",
        "2025-12-01",
    ]


async def test_average_wer_and_score_trend_finds(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    # db.evaluation_runs.find({}, {evaluation_run_id: 1, started_at: 1, "metrics.wer": 1})
    #   .sort({started_at: -1})
    wer = (
        await db(service)
        .evaluation_runs.find(
            {}, {"_id": 0, "evaluation_run_id": 1, "started_at": 1, "metrics.wer": 1}
        )
        .sort({"started_at": -1})
        .to_list(None)
    )
    assert [r["metrics"] for r in wer] == [{"wer": 45.0}, {"wer": 80.0}, {"wer": 60.0}]
    # db.evaluation_runs.find({}, {started_at: 1, score: 1, num_passed: 1, num_tests: 1})
    #   .sort({started_at: -1})
    scores = (
        await db(service)
        .evaluation_runs.find(
            {}, {"_id": 0, "started_at": 1, "score": 1, "num_passed": 1, "num_tests": 1}
        )
        .sort({"started_at": -1})
        .to_list(None)
    )
    assert [(r["score"], r["num_passed"], r["num_tests"]) for r in scores] == [
        (45.0, 1, 2),
        (80.0, 2, 2),
        (60.0, 1, 2),
    ]


async def test_average_wer_per_day(service: MetricsStorageService, history: dict[str, Any]) -> None:
    pipeline = [
        {
            "$group": {
                "_id": {"$dateToString": {"format": "%Y-%m-%d", "date": "$started_at"}},
                "avg_wer": {"$avg": "$metrics.wer"},
                "count": {"$sum": 1},
            }
        },
        {"$sort": {"_id": -1}},
    ]
    rows = await db(service).evaluation_runs.aggregate(pipeline).to_list(None)
    assert rows == [
        {"_id": "2025-12-02", "avg_wer": 45.0, "count": 1},
        {"_id": "2025-12-01", "avg_wer": 70.0, "count": 2},
    ]


async def test_test_score_over_time_for_graphing(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    # The README sorts before projecting: after the seed's $project, finished_at is gone,
    # so the seed's trailing {$sort: {finished_at: 1}} would sort on a missing field.
    pipeline = [
        {"$match": {"test_id": FLAKY}},
        {"$sort": {"finished_at": 1}},
        {
            "$project": {
                "_id": 0,
                "date": {"$dateToString": {"format": "%Y-%m-%d", "date": "$finished_at"}},
                "score": 1,
                "passed": 1,
            }
        },
    ]
    rows = await db(service).test_runs.aggregate(pipeline).to_list(None)
    assert rows == [
        {"date": "2025-12-01", "score": 40.0, "passed": False},
        {"date": "2025-12-01", "score": 90.0, "passed": True},
        {"date": "2025-12-02", "score": 30.0, "passed": False},
    ]


async def test_average_score_per_test(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    pipeline = [
        {
            "$group": {
                "_id": "$test_id",
                "avg_score": {"$avg": "$score"},
                "min_score": {"$min": "$score"},
                "max_score": {"$max": "$score"},
                "runs": {"$sum": 1},
            }
        },
        {"$sort": {"avg_score": -1}},
    ]
    rows = await db(service).test_runs.aggregate(pipeline).to_list(None)
    assert rows[0] == {
        "_id": DOCTOR,
        "avg_score": 70.0,
        "min_score": 60.0,
        "max_score": 80.0,
        "runs": 3,
    }
    assert rows[1]["_id"] == FLAKY
    assert rows[1]["avg_score"] == pytest.approx(160 / 3)
    assert (rows[1]["min_score"], rows[1]["max_score"], rows[1]["runs"]) == (30.0, 90.0, 3)


async def test_evaluation_score_trend_for_graphing(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    pipeline = [
        {"$sort": {"started_at": 1}},
        {
            "$project": {
                "_id": 0,
                "date": {"$dateToString": {"format": "%Y-%m-%d", "date": "$started_at"}},
                "score": 1,
                "num_passed": 1,
                "num_tests": 1,
            }
        },
    ]
    rows = await db(service).evaluation_runs.aggregate(pipeline).to_list(None)
    assert rows == [
        {"date": "2025-12-01", "score": 60.0, "num_passed": 1, "num_tests": 2},
        {"date": "2025-12-01", "score": 80.0, "num_passed": 2, "num_tests": 2},
        {"date": "2025-12-02", "score": 45.0, "num_passed": 1, "num_tests": 2},
    ]


async def test_compare_configurations(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    # db.evaluation_runs.find({}, {system_info_hash: 1, "metrics.wer": 1, evaluation_run_id: 1})
    rows = (
        await db(service)
        .evaluation_runs.find(
            {}, {"_id": 0, "system_info_hash": 1, "metrics.wer": 1, "evaluation_run_id": 1}
        )
        .sort({"started_at": 1})
        .to_list(None)
    )
    hashes = [r["system_info_hash"] for r in rows]
    assert hashes[0] == hashes[1] != hashes[2]
    assert [r["metrics"]["wer"] for r in rows] == [60.0, 80.0, 45.0]


async def test_flaky_tests_by_pass_rate(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    pipeline = [
        {
            "$group": {
                "_id": "$test_id",
                "total": {"$sum": 1},
                "passed": {"$sum": {"$cond": ["$passed", 1, 0]}},
                "pass_rate": {"$avg": {"$cond": ["$passed", 1, 0]}},
            }
        },
        {"$match": {"pass_rate": {"$gt": 0, "$lt": 1}}},
        {"$sort": {"pass_rate": 1}},
    ]
    rows = await db(service).test_runs.aggregate(pipeline).to_list(None)
    assert len(rows) == 1
    assert (rows[0]["_id"], rows[0]["total"], rows[0]["passed"]) == (FLAKY, 3, 1)
    assert rows[0]["pass_rate"] == pytest.approx(1 / 3)


async def test_filter_by_experiment(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    assert await service.get_evaluation_runs_by_tags(["baseline"]) == []


async def test_retention_without_orphans(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    # The README deletes the old runs' test runs first, then the runs themselves.
    cutoff = day(2, 0)
    old = await db(service).evaluation_runs.distinct("_id", {"started_at": {"$lt": cutoff}})
    deleted_tests = await db(service).test_runs.delete_many({"evaluation_run_id": {"$in": old}})
    deleted_runs = await db(service).evaluation_runs.delete_many({"started_at": {"$lt": cutoff}})
    assert (deleted_tests.deleted_count, deleted_runs.deleted_count) == (4, 2)
    assert await db(service).test_runs.count_documents({}) == 2
