"""The README's mongosh pipelines: verbatim in the README, and equal to what the service runs.

Each pipeline is written out below as Python dicts, exactly as the README shows
it (`mongosh.py` renders them), is checked to equal what the service's
builder produces, and is run on documents evalstore wrote, giving the same
results as the service method.

The history (March 2025, all on branch main; P/F/S passed/failed/skipped, score = wer):

| run | started      | env  | tags         | config | hotel | doctor |
|-----|--------------|------|--------------|--------|-------|--------|
| R1  | Mon 3rd 10h  | dev  | baseline     | A      | P60   | P80    |
| R2  | Tue 4th 10h  | dev  | baseline     | A      | F40   | P90    |
| R3  | Wed 5th 10h  | prod | config-tweak | B      | P70   | P100   |
| R4  | Tue 11th 10h | dev  | config-tweak | B      | F20   | P70    |
| R5  | Wed 12th 10h | dev  | baseline     | A      | P65   | S      |
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import Result, at, git_repo, record_run
from mongosh import examples

from evalstore import MetricsStorageService
from evalstore.analysis.filters import RunFilters
from evalstore.analysis.pipelines import (
    configurations_pipeline,
    experiment_pipeline,
    flaky_tests_pipeline,
    latest_runs_pipeline,
    metric_trend_pipeline,
    per_test_stats_pipeline,
    run_ids_pipeline,
    run_tests_pipeline,
    score_trend_pipeline,
    single_test_trend_pipeline,
)
from evalstore.models import utcnow

pytestmark = pytest.mark.mongodb_only  # the README's mongosh queries run on MongoDB

ROOT = Path(__file__).resolve().parents[2]
SINCE = datetime(2025, 3, 1, tzinfo=timezone.utc)
UNTIL = datetime(2025, 4, 1, tzinfo=timezone.utc)
MARCH = {"since": SINCE, "until": UNTIL}
WINDOW = {"$gte": SINCE, "$lt": UNTIL}
HOTEL, DOCTOR = "hotel-checkin-fr-en", "doctor-patient-es-en"
CONFIG_A, CONFIG_B = {"beam": 1}, {"beam": 5}


def readme_section() -> str:
    """The README's History analysis section."""
    return (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", list(examples()))
def test_every_mongosh_block_is_in_the_readme(name: str) -> None:
    assert f"```javascript\n{examples()[name]}\n```" in readme_section()


@pytest.fixture
async def runs(service: MetricsStorageService, tmp_path: Path) -> dict[str, dict[str, Any]]:
    main = git_repo(tmp_path / "main", "main")
    plan = [
        ("R1", at(3), "dev", "baseline", CONFIG_A, ("passed", 60), ("passed", 80)),
        ("R2", at(4), "dev", "baseline", CONFIG_A, ("failed", 40), ("passed", 90)),
        ("R3", at(5), "prod", "config-tweak", CONFIG_B, ("passed", 70), ("passed", 100)),
        ("R4", at(11), "dev", "config-tweak", CONFIG_B, ("failed", 20), ("passed", 70)),
        ("R5", at(12), "dev", "baseline", CONFIG_A, ("passed", 65), ("skipped", None)),
    ]
    documents = {}
    for name, start, environment, tag, config, hotel, doctor in plan:
        results = [
            Result(test_id, status, score, {"wer": score} if score is not None else None)
            for test_id, (status, score) in ((HOTEL, hotel), (DOCTOR, doctor))
        ]
        documents[name] = await record_run(
            service, start, results, tags=[tag], environment=environment, config=config, repo=main
        )
    return documents


async def aggregate(collection: Any, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await collection.aggregate(pipeline).to_list(None)
    return rows


async def test_metric_trend(service: MetricsStorageService, runs: Any) -> None:
    pipeline = [
        {
            "$match": {
                "started_at": WINDOW,
                "environment": "dev",
                "metrics.wer": {"$type": "number"},
            }
        },
        {
            "$group": {
                "_id": {"$dateToString": {"format": "%G-W%V", "date": "$started_at"}},
                "mean": {"$avg": "$metrics.wer"},
                "runs": {"$sum": 1},
            }
        },
        {"$sort": {"_id": 1}},
    ]
    filters = RunFilters(since=SINCE, until=UNTIL, environment="dev")
    assert pipeline == metric_trend_pipeline("metrics.wer", filters.match(), "week")
    rows = await aggregate(service.client.evaluation_runs, pipeline)
    # W10: R1 (60+80)/2 = 70 and R2 (40+90)/2 = 65; W11: R4 (20+70)/2 = 45 and R5 65.
    assert [(r["_id"], r["mean"], r["runs"]) for r in rows] == [
        ("2025-W10", 67.5, 2),
        ("2025-W11", 55.0, 2),
    ]
    trend = await service.get_metric_trend("wer", "week", environment="dev", **MARCH)
    assert trend == [{"period": r["_id"], "mean": r["mean"], "runs": r["runs"]} for r in rows]


async def test_score_trend(service: MetricsStorageService, runs: Any) -> None:
    pipeline = [
        {
            "$match": {
                "started_at": WINDOW,
                "experiment_tags": {"$in": ["baseline"]},
                "status": {"$ne": "running"},
            }
        },
        {"$sort": {"started_at": 1}},
        {
            "$project": {
                "_id": 0,
                "evaluation_run_id": 1,
                "started_at": 1,
                "status": 1,
                "score": 1,
                "num_passed": 1,
                "num_tests": 1,
            }
        },
    ]
    filters = RunFilters(since=SINCE, until=UNTIL, tags=("baseline",))
    assert pipeline == score_trend_pipeline(filters.match())
    rows = await aggregate(service.client.evaluation_runs, pipeline)
    assert [(r["score"], r["num_passed"], r["num_tests"]) for r in rows] == [
        (70.0, 2, 2),
        (65.0, 1, 2),
        (65.0, 1, 2),
    ]
    assert await service.get_score_trend(tags=["baseline"], **MARCH) == rows


async def test_test_trend(service: MetricsStorageService, runs: Any) -> None:
    pipeline = [
        {"$match": {"test_id": HOTEL, "finished_at": WINDOW}},
        {"$sort": {"finished_at": 1}},
        {
            "$project": {
                "_id": 0,
                "test_run_id": 1,
                "finished_at": 1,
                "score": 1,
                "passed": 1,
                "status": 1,
            }
        },
    ]
    filters = RunFilters(since=SINCE, until=UNTIL, test_id=HOTEL)
    assert pipeline == single_test_trend_pipeline(filters.test_match())
    rows = await aggregate(service.client.test_runs, pipeline)
    assert [(r["score"], r["passed"]) for r in rows] == [
        (60.0, True),
        (40.0, False),
        (70.0, True),
        (20.0, False),
        (65.0, True),
    ]
    assert await service.get_test_trend(HOTEL, **MARCH) == rows


async def test_per_test_statistics_with_a_run_filter(
    service: MetricsStorageService, runs: Any
) -> None:
    lookup = [
        {
            "$match": {
                "started_at": {"$gte": SINCE - timedelta(days=1), "$lt": UNTIL},
                "environment": "dev",
            }
        },
        {"$project": {"_id": 1}},
    ]
    filters = RunFilters(since=SINCE, until=UNTIL, environment="dev")
    assert lookup == run_ids_pipeline(filters.run_lookup_match())
    run_ids = [r["_id"] for r in await aggregate(service.client.evaluation_runs, lookup)]
    assert len(run_ids) == 4  # R3 is prod
    pipeline = [
        {"$match": {"finished_at": WINDOW, "evaluation_run_id": {"$in": run_ids}}},
        {"$sort": {"finished_at": 1}},
        {
            "$group": {
                "_id": "$test_id",
                "runs": {"$sum": 1},
                "passed": {"$sum": {"$cond": ["$passed", 1, 0]}},
                "mean_score": {"$avg": "$score"},
                "min_score": {"$min": "$score"},
                "max_score": {"$max": "$score"},
                "pass_rate": {
                    "$avg": {
                        "$cond": [
                            {"$in": ["$status", ["skipped"]]},
                            None,
                            {"$cond": ["$passed", 1, 0]},
                        ]
                    }
                },
                "last_status": {"$last": {"$ifNull": ["$status", None]}},
                "last_seen": {"$max": "$finished_at"},
            }
        },
        {"$sort": {"_id": 1}},
    ]
    assert pipeline == per_test_stats_pipeline(filters.test_match(run_ids))
    rows = await aggregate(service.client.test_runs, pipeline)
    # doctor: 80, 90, 70 and a skip; hotel: 60, 40, 20, 65 (2 of 4 passed).
    assert [(r["_id"], r["runs"], r["mean_score"], r["pass_rate"]) for r in rows] == [
        (DOCTOR, 4, 80.0, 1.0),
        (HOTEL, 4, 46.25, 0.5),
    ]
    stats = await service.get_test_stats(environment="dev", **MARCH)
    assert stats == [
        {"test_id": r["_id"], **{k: v for k, v in r.items() if k != "_id"}} for r in rows
    ]


async def test_flaky_tests(service: MetricsStorageService, runs: Any) -> None:
    pipeline = [
        {"$match": {"finished_at": WINDOW, "status": {"$ne": "skipped"}}},
        {
            "$group": {
                "_id": "$test_id",
                "runs": {"$sum": 1},
                "pass_rate": {"$avg": {"$cond": ["$passed", 1, 0]}},
                "outcomes": {"$push": {"t": "$finished_at", "s": "$status"}},
            }
        },
        {"$match": {"runs": {"$gte": 5}, "pass_rate": {"$gt": 0, "$lt": 1}}},
        {"$sort": {"_id": 1}},
    ]
    assert pipeline == flaky_tests_pipeline(RunFilters(since=SINCE, until=UNTIL).test_match(), 5)
    rows = await aggregate(service.client.test_runs, pipeline)
    assert [(r["_id"], r["runs"], r["pass_rate"]) for r in rows] == [(HOTEL, 5, 0.6)]
    statuses = [o["s"] for o in sorted(rows[0]["outcomes"], key=lambda o: o["t"])]
    assert statuses == ["passed", "failed", "passed", "failed", "passed"]
    [flaky] = await service.get_flaky_tests(5, **MARCH)
    assert (flaky["test_id"], flaky["runs"], flaky["pass_rate"]) == (HOTEL, 5, 0.6)
    assert (flaky["recent"], flaky["flips"], flaky["flip_rate"]) == ("PFPFP", 4, 1.0)


async def test_configurations_and_their_diff(service: MetricsStorageService, runs: Any) -> None:
    pipeline = [
        {"$match": {"started_at": WINDOW, "status": {"$ne": "running"}}},
        {
            "$facet": {
                "runs": [
                    {
                        "$group": {
                            "_id": "$system_info_hash",
                            "runs": {"$sum": 1},
                            "mean_score": {"$avg": "$score"},
                            "first_seen": {"$min": "$started_at"},
                            "last_seen": {"$max": "$started_at"},
                            "snapshot": {"$first": "$system_information"},
                        }
                    },
                    {"$sort": {"_id": 1}},
                ],
                "metrics": [
                    {
                        "$project": {
                            "_id": 0,
                            "hash": "$system_info_hash",
                            "m": {"$objectToArray": {"$ifNull": ["$metrics", {}]}},
                        }
                    },
                    {"$unwind": "$m"},
                    {"$match": {"m.v": {"$type": "number"}}},
                    {
                        "$group": {
                            "_id": {"hash": "$hash", "metric": "$m.k"},
                            "mean": {"$avg": "$m.v"},
                        }
                    },
                    {"$sort": {"_id.hash": 1, "_id.metric": 1}},
                ],
            }
        },
    ]
    assert pipeline == configurations_pipeline(RunFilters(since=SINCE, until=UNTIL).match())
    [facets] = await aggregate(service.client.evaluation_runs, pipeline)
    hash_a, hash_b = runs["R1"]["system_info_hash"], runs["R3"]["system_info_hash"]
    totals = {r["_id"]: (r["runs"], r["mean_score"]) for r in facets["runs"]}
    # A: R1 70, R2 65, R5 65 (its only score); B: R3 85, R4 45.
    assert totals == {hash_a: (3, 200 / 3), hash_b: (2, 65.0)}
    means = {(r["_id"]["hash"], r["_id"]["metric"]): r["mean"] for r in facets["metrics"]}
    assert means == {(hash_a, "wer"): 200 / 3, (hash_b, "wer"): 65.0}
    service_rows = await service.compare_configurations(**MARCH)
    assert [(c["system_info_hash"], c["runs"], c["mean_score"]) for c in service_rows] == [
        (hash_a, 3, 200 / 3),  # last seen on the 12th
        (hash_b, 2, 65.0),
    ]
    assert [c["metrics"] for c in service_rows] == [{"wer": 200 / 3}, {"wer": 65.0}]

    # The diff reads one snapshot per hash (a prefix resolves through distinct).
    collection = service.client.evaluation_runs
    assert await collection.distinct(
        "system_info_hash", {"system_info_hash": {"$regex": f"^{hash_a[:6]}"}}
    ) == [hash_a]
    found = await collection.find_one({"system_info_hash": hash_a}, {"system_information": 1})
    assert found["system_information"]["config"] == CONFIG_A
    assert await service.diff_configurations(hash_a[:6], hash_b) == [
        {"path": "config.beam", "a": 1, "b": 5, "change": "changed"}
    ]


async def test_latest_runs_and_their_tests(service: MetricsStorageService, runs: Any) -> None:
    latest = [
        {
            "$match": {
                "status": {"$in": ["completed", "failed"]},
                "num_tests": {"$gt": 0},
                "git_branch": "main",
            }
        },
        {"$sort": {"started_at": -1}},
        {"$limit": 2},
    ]
    assert latest == latest_runs_pipeline("main")
    head, base = await aggregate(service.client.evaluation_runs, latest)
    assert (head["evaluation_run_id"], base["evaluation_run_id"]) == (
        runs["R5"]["evaluation_run_id"],
        runs["R4"]["evaluation_run_id"],
    )
    tests_of_base = [
        {"$match": {"evaluation_run_id": base["_id"]}},
        {
            "$project": {
                "_id": 0,
                "test_id": 1,
                "status": 1,
                "score": 1,
                "finished_at": 1,
                "message": 1,
                "duration_ms": 1,
                "metrics": 1,
            }
        },
    ]
    assert tests_of_base == run_tests_pipeline(base["_id"])
    base_tests = await aggregate(service.client.test_runs, tests_of_base)
    assert sorted((t["test_id"], t["status"], t["score"]) for t in base_tests) == [
        (DOCTOR, "passed", 70.0),
        (HOTEL, "failed", 20.0),
    ]
    result = await service.compare_runs("previous", "latest", branch="main")
    assert result["base"]["evaluation_run_id"] == base["evaluation_run_id"]
    assert result["head"]["evaluation_run_id"] == head["evaluation_run_id"]
    assert [(t["test_id"], t["base_status"], t["base_score"]) for t in result["tests"]] == [
        (DOCTOR, "passed", 70.0),
        (HOTEL, "failed", 20.0),
    ]
    # hotel: failed 20 -> passed 65; doctor: passed 70 -> skipped, which is no regression.
    assert (result["newly_passing"], result["regressed"]) == ([HOTEL], False)


async def test_experiment(service: MetricsStorageService, runs: Any) -> None:
    def pipeline(tag: str) -> list[dict[str, Any]]:
        return [
            {
                "$match": {
                    "started_at": WINDOW,
                    "experiment_tags": {"$in": [tag]},
                    "status": {"$ne": "running"},
                }
            },
            {
                "$facet": {
                    "score": [
                        {"$match": {"score": {"$type": "number"}}},
                        {"$group": {"_id": "score", "values": {"$push": "$score"}}},
                    ],
                    "metrics": [
                        {
                            "$project": {
                                "_id": 0,
                                "m": {"$objectToArray": {"$ifNull": ["$metrics", {}]}},
                            }
                        },
                        {"$unwind": "$m"},
                        {"$match": {"m.v": {"$type": "number"}}},
                        {"$group": {"_id": "$m.k", "values": {"$push": "$m.v"}}},
                        {"$sort": {"_id": 1}},
                    ],
                }
            },
        ]

    values = {}
    for tag in ("baseline", "config-tweak"):
        filters = RunFilters(since=SINCE, until=UNTIL, tags=(tag,))
        assert pipeline(tag) == experiment_pipeline(filters.match())
        [facets] = await aggregate(service.client.evaluation_runs, pipeline(tag))
        values[tag] = {
            "score": sorted(facets["score"][0]["values"]),
            "wer": sorted(facets["metrics"][0]["values"]),
        }
    assert values == {
        "baseline": {"score": [65.0, 65.0, 70.0], "wer": [65.0, 65.0, 70.0]},
        "config-tweak": {"score": [45.0, 85.0], "wer": [45.0, 85.0]},
    }
    rows = await service.compare_experiments(["baseline"], ["config-tweak"], **MARCH)
    assert [(r["metric"], r["a_runs"], r["b_runs"]) for r in rows] == [
        ("score", 3, 2),
        ("wer", 3, 2),
    ]
    for row in rows:
        # a: 65, 65, 70 -> mean 200/3, sd sqrt((2 * (5/3)^2 + (10/3)^2) / 2) = sqrt(25/3);
        # b: 45, 85 -> mean 65, sd sqrt((20^2 + 20^2) / 1) = sqrt(800).
        assert (row["a_mean"], row["a_std"]) == (
            pytest.approx(200 / 3),
            pytest.approx((25 / 3) ** 0.5),
        )
        assert (row["b_mean"], row["b_std"]) == (65.0, pytest.approx(800**0.5))
        assert row["difference"] == pytest.approx(65 - 200 / 3)


async def test_retention(service: MetricsStorageService, runs: Any) -> None:
    cutoff = datetime(2025, 3, 5, tzinfo=timezone.utc)  # R1 and R2 are older
    client = service.client
    old = {"started_at": {"$lt": cutoff}}
    days = (utcnow() - cutoff) / timedelta(days=1)
    planned = await service.prune(days, dry_run=True)
    deleted_runs = deleted_tests = 0
    while True:
        batch = [
            r["_id"]
            for r in await client.evaluation_runs.find(old, {"_id": 1}, limit=500).to_list(None)
        ]
        if not batch:
            break
        deleted_tests += (
            await client.test_runs.delete_many({"evaluation_run_id": {"$in": batch}})
        ).deleted_count
        deleted_runs += (
            await client.evaluation_runs.delete_many({"_id": {"$in": batch}})
        ).deleted_count
    assert (deleted_runs, deleted_tests) == (2, 4)
    assert (planned["evaluation_runs"], planned["test_runs"]) == (deleted_runs, deleted_tests)
