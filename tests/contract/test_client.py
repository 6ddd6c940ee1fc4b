"""MongoDBClient: the embedded backend, connection errors, secrets kept out of messages."""

from __future__ import annotations

import time
import uuid

import mongomock.collection
import pytest
from pymongo import UpdateOne

from evalstore import (
    ConfigurationError,
    MetricsStorageService,
    MongoDBClient,
    Settings,
    StorageUnavailableError,
)
from evalstore.storage.embedded import _install_bulk_write_shim

DEAD_SERVER = "mongodb://evalstore:hunter2@127.0.0.1:1/?authSource=admin"


async def test_embedded_clients_in_one_process_share_data() -> None:
    name = f"evalstore_test_{uuid.uuid4().hex[:8]}"
    async with MongoDBClient("mongomock://", name) as writer:
        await writer.evaluation_runs.insert_one({"evaluation_run_id": "shared"})
    async with MongoDBClient("mongomock://", name) as reader:
        found = await reader.evaluation_runs.find_one({}, {"_id": 0})
        await reader.drop_database()
    assert found == {"evaluation_run_id": "shared"}


async def test_ping_and_context_manager(client: MongoDBClient) -> None:
    async with client:
        assert await client.ping() >= 0.0
    assert client._engine is None


@pytest.mark.mongodb_only
async def test_bulk_upserts_work_on_the_embedded_backend(client: MongoDBClient) -> None:
    result = await client.test_runs.bulk_write(
        [
            UpdateOne({"test_run_id": "a"}, {"$set": {"score": 1}}, upsert=True),
            UpdateOne({"test_run_id": "b"}, {"$set": {"score": 2}}, upsert=True),
            UpdateOne({"test_run_id": "a"}, {"$set": {"score": 3}}, upsert=True),
        ],
        ordered=False,
    )
    assert (result.upserted_count, result.modified_count) == (2, 1)
    docs = await client.test_runs.find({}, {"_id": 0}).sort("test_run_id", 1).to_list(None)
    assert docs == [{"test_run_id": "a", "score": 3}, {"test_run_id": "b", "score": 2}]


def test_bulk_write_shim_is_what_makes_mongomock_accept_pymongo_updates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the shim, mongomock rejects the `sort` argument pymongo >= 4.11 passes."""
    builder = mongomock.collection.BulkOperationBuilder
    collection = mongomock.MongoClient().db.c
    collection.insert_one({"a": 1})
    # not an upsert: the embedded backend runs upsert-only batches without mongomock's builder
    op = UpdateOne({"a": 1}, {"$set": {"b": 1}})
    _install_bulk_write_shim()
    assert collection.bulk_write([op]).matched_count == 1
    # Undo the shim for this test only: pymongo's call then fails as mongomock issue #912 says.
    monkeypatch.setattr(builder, "add_update", builder.add_update._evalstore_original)
    with pytest.raises(TypeError, match="sort"):
        collection.bulk_write([op])


async def test_unreachable_server_fails_fast_with_a_redacted_hint() -> None:
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as error:
        async with MongoDBClient(DEAD_SERVER, "db", timeout_ms=300) as client:
            await client.ping()
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert "hunter2" not in message
    assert message.startswith("cannot reach MongoDB at mongodb://evalstore:***@127.0.0.1:1/")
    assert "docker compose up -d" in message
    assert "\n" not in message


async def test_unreachable_server_in_a_service_call() -> None:
    with pytest.raises(StorageUnavailableError, match="no answer within 200 ms") as error:
        async with MongoDBClient(DEAD_SERVER, "db", timeout_ms=200) as client:
            await MetricsStorageService(client).get_recent_evaluation_runs()
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    "uri",
    ["http://bob:hunter2@host", "mongodb://bob:hunter2@[::1", "mongodb://bob:hunter2@h:99999"],
)
async def test_invalid_connection_string_is_a_configuration_error(uri: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        async with MongoDBClient(uri, "db") as client:
            await client.ping()
    assert "hunter2" not in str(error.value)
    assert str(error.value).startswith("invalid connection string 'mongodb://bob:***@") or str(
        error.value
    ).startswith("invalid connection string 'http://bob:***@host'")


def test_repr_hides_the_password() -> None:
    assert repr(MongoDBClient(DEAD_SERVER, "db")) == (
        "MongoDBClient('mongodb://evalstore:***@127.0.0.1:1/?authSource=admin', 'db')"
    )


def test_the_client_and_the_settings_share_one_default() -> None:
    client = MongoDBClient()
    settings = Settings(_env_file=None)
    assert client.connection_string == settings.mongodb_connection_string
    assert client.connection_string == "mongodb://localhost:27017"
    assert client.database_name == settings.mongodb_database
    assert client.timeout_ms == settings.mongodb_timeout_ms
