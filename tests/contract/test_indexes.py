"""`create_indexes()` creates exactly the declared indexes, idempotently, on first use."""

from __future__ import annotations

import pytest
from pymongo import IndexModel

from evalstore import IndexConflictError, MetricsStorageService, MongoDBClient

pytestmark = pytest.mark.mongodb_only  # MongoDB's own indexes; the local store's: tests/storage

EXPECTED_INDEXES = {
    "evaluation_runs": [
        {"name": "_id_", "keys": [("_id", 1)], "unique": False},
        {"name": "evaluation_run_id_unique", "keys": [("evaluation_run_id", 1)], "unique": True},
        {"name": "experiment_tags", "keys": [("experiment_tags", 1)], "unique": False},
        {
            "name": "git_branch_started_at",
            "keys": [("git_branch", 1), ("started_at", -1)],
            "unique": False,
        },
        {"name": "score", "keys": [("score", -1)], "unique": False},
        {"name": "started_at", "keys": [("started_at", -1)], "unique": False},
        {
            "name": "suite_started_at",
            "keys": [("suite", 1), ("started_at", -1)],
            "unique": False,
        },
        {"name": "system_info_hash", "keys": [("system_info_hash", 1)], "unique": False},
    ],
    "test_runs": [
        {"name": "_id_", "keys": [("_id", 1)], "unique": False},
        {"name": "evaluation_run_id", "keys": [("evaluation_run_id", 1)], "unique": False},
        {"name": "finished_at", "keys": [("finished_at", -1)], "unique": False},
        {"name": "score", "keys": [("score", -1)], "unique": False},
        {"name": "status", "keys": [("status", 1)], "unique": False},
        {
            "name": "test_id_finished_at",
            "keys": [("test_id", 1), ("finished_at", -1)],
            "unique": False,
        },
        {"name": "test_run_id_unique", "keys": [("test_run_id", 1)], "unique": True},
    ],
    "metric_points": [
        {"name": "_id_", "keys": [("_id", 1)], "unique": False},
        {
            "name": "point_run_metric_split_step",
            "keys": [("evaluation_run_id", 1), ("metric", 1), ("split", 1), ("step", 1)],
            "unique": False,
        },
    ],
    "usage": [
        {"name": "_id_", "keys": [("_id", 1)], "unique": False},
        {"name": "usage_id_unique", "keys": [("usage_id", 1)], "unique": True},
        {"name": "usage_recorded_at", "keys": [("recorded_at", -1)], "unique": False},
        {
            "name": "usage_run",
            "keys": [("evaluation_run_id", 1), ("model", 1)],
            "unique": False,
        },
    ],
    "alerts": [
        {"name": "_id_", "keys": [("_id", 1)], "unique": False},
        {"name": "alert_fired_at", "keys": [("fired_at", -1)], "unique": False},
        {"name": "alert_key_state", "keys": [("key", 1), ("state", 1)], "unique": False},
        {"name": "alert_run", "keys": [("evaluation_run_id", 1)], "unique": False},
    ],
}


async def test_create_indexes_creates_the_declared_indexes(client: MongoDBClient) -> None:
    names = await client.create_indexes()
    assert len(names) == 20
    assert await client.list_indexes() == EXPECTED_INDEXES


async def test_create_indexes_is_idempotent(client: MongoDBClient) -> None:
    await client.create_indexes()
    await client.create_indexes()
    assert await client.list_indexes() == EXPECTED_INDEXES


async def test_indexes_are_created_on_first_use(service: MetricsStorageService) -> None:
    assert await service.get_recent_evaluation_runs() == []
    assert await service.client.list_indexes() == EXPECTED_INDEXES


async def test_conflicting_index_gives_a_clear_error(client: MongoDBClient) -> None:
    # Same name as evalstore's, other keys: MongoDB refuses with code 85/86.
    await client.test_runs.create_indexes([IndexModel([("status", -1)], name="status")])
    with pytest.raises(IndexConflictError, match=r"^an index on test_runs conflicts"):
        await client.create_indexes()
