"""Fixtures for the pytest plugin's tests: inner pytest sessions on the embedded backend.

Each test gets its own database name in `MONGODB_DATABASE`; the inner session
(run in-process by `pytester`) writes to the process-wide embedded backend,
and the test reads the documents back with its own `MongoDBClient`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from plugin_helpers import EMBEDDED, INNER_INI, read_database

# Imported here, in the outer process: pytester's in-process sessions forget every module
# they imported when they end, and the process-wide embedded backend they write to must
# keep meeting the pymongo and mongomock classes it was built with.
import evalstore.storage.embedded
import evalstore.storage.mongo  # noqa: F401


@pytest.fixture
def db_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database name, exported as MONGODB_DATABASE for the inner sessions."""
    name = f"plugin_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_DATABASE", name)
    return name


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose inner sessions have the markers and asyncio settings above."""
    pytester.makeini(INNER_INI)
    return pytester


@pytest.fixture
def run_recorded(inner: pytest.Pytester, db_name: str) -> Callable[..., pytest.RunResult]:
    """Run an inner session recorded on the embedded backend (extra args appended)."""

    def run(*args: str) -> pytest.RunResult:
        return inner.runpytest("-p", "no:cacheprovider", *EMBEDDED, *args)

    return run


@pytest.fixture
def stored(db_name: str) -> Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Read back what the inner sessions stored in this test's database."""
    return lambda: read_database(db_name)
