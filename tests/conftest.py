"""Shared fixtures: a clean environment, and a client per test on each backend.

Every test that takes `client` or `service` runs on the embedded backend, on
the local store (SQLite) and, when MONGODB_TEST_URI is set, again on that real
server (one suite, every engine). Each test gets its own uuid-named database, dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from evalstore import MetricsStorageService, MongoDBClient

pytest_plugins = ["pytester"]  # the plugin tests run real inner pytest sessions

EVALSTORE_ENV_VARS = (
    "MONGODB_ENABLED",
    "MONGODB_CONNECTION_STRING",
    "MONGODB_DATABASE",
    "MONGODB_TIMEOUT_MS",
    "ENVIRONMENT",
    "EXPERIMENT_TAGS",
    "EVALSTORE_SPOOL_DIR",
    "EVALSTORE_SPOOL_FSYNC",
    "EVALSTORE_BATCH_SIZE",
    "EVALSTORE_FLUSH_INTERVAL_MS",
    "EVALSTORE_QUEUE_SIZE",
    "EVALSTORE_MONITORS",
    "EVALSTORE_WEBHOOK_URL",
    "EVALSTORE_PUSHGATEWAY",
    "EVALSTORE_PUSHGATEWAY_TIMEOUT_S",
    "EVALSTORE_PRICES",
)
REAL_URI = os.environ.get("MONGODB_TEST_URI")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No evalstore variable from the developer's shell, and a cwd without `.env`."""
    for name in EVALSTORE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EVALSTORE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("local", id="local"),
        pytest.param(
            "real",
            id="mongodb",
            marks=[
                pytest.mark.integration,
                pytest.mark.skipif(
                    not REAL_URI, reason="MONGODB_TEST_URI is not set: no real MongoDB to test"
                ),
            ],
        ),
    ]
)
def backend_uri(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The connection string of the backend this test runs on.

    A test marked `mongodb_only` reads MongoDB's raw collections (the seed's
    mongosh queries, driver-level faults): it does not run on the local store.
    """
    if request.param == "local":
        if request.node.get_closest_marker("mongodb_only"):
            pytest.skip("reads MongoDB's raw collections; the local store has tables")
        return f"file://{tmp_path_factory.mktemp('local-store')}"
    return "mongomock://" if request.param == "embedded" else str(REAL_URI)


@pytest.fixture
async def client(backend_uri: str) -> AsyncIterator[MongoDBClient]:
    """A client on a fresh database, dropped after the test."""
    name = f"evalstore_test_{uuid.uuid4().hex[:12]}"
    mongo = MongoDBClient(backend_uri, name, timeout_ms=3000)
    try:
        yield mongo
    finally:
        await mongo.drop_database()
        await mongo.close()


@pytest.fixture
def service(client: MongoDBClient) -> MetricsStorageService:
    """The storage service on the per-test database."""
    return MetricsStorageService(client)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, mounted for the test and unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
