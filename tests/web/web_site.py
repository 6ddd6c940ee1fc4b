"""The dashboard served in-process: Starlette's `TestClient` over a recorded history.

`served(url, record)` opens the app as `evalstore serve` does: the app's lifespan
opens the store, records the history (`web_history`) into it and keeps the service
for the requests; leaving the block closes it. Recording inside the lifespan keeps
one event loop for the store, the recording and the requests, on every engine.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from web_history import Recorded

from evalstore import MetricsStorageService, MongoDBClient
from evalstore.web.app import create_app

SECRET = "s3cretpass"
SECRET_URL = f"mongomock://reader:{SECRET}@localhost"
"""The embedded backend, with a password in its connection string that no page may show."""
TOKEN = "dashboard-token-0123456789"
EVALSTORE_ENV_VARS = (
    "MONGODB_ENABLED",
    "MONGODB_CONNECTION_STRING",
    "MONGODB_DATABASE",
    "ENVIRONMENT",
    "EXPERIMENT_TAGS",
    "EVALSTORE_SUITE",
    "EVALSTORE_MONITORS",
    "EVALSTORE_PRICES",
    "EVALSTORE_DASHBOARD_TOKEN",
)
Record = Callable[[MetricsStorageService, Path], Awaitable[Recorded]]


@dataclass
class Site:
    """A served dashboard: its HTTP client, what its history recorded, its app."""

    http: TestClient
    recorded: Recorded
    app: Starlette
    url: str

    @property
    def service(self) -> MetricsStorageService:
        """The service the app opened (valid while the site is served)."""
        service = self.app.state.dashboard.service
        assert service is not None
        return service  # type: ignore[no-any-return]

    def call(self, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Await a service method in the app's event loop, from the test's thread."""
        portal = self.http.portal
        assert portal is not None
        return portal.call(partial(method, *args, **kwargs))


@contextmanager
def served(
    url: str, record: Record, workdir: Path, *, token: str | None = None, timeout_ms: int = 5000
) -> Iterator[Site]:
    """Serve `record`'s history from a fresh database at `url` (a store folder in `workdir`
    for `file://`); `token` as `evalstore serve --token` sets it. The database is dropped
    at the end when something was recorded in it."""
    box: dict[str, Recorded] = {}

    @asynccontextmanager
    async def open_service() -> Any:
        client = MongoDBClient(url, f"evalstore_web_{uuid.uuid4().hex[:10]}", timeout_ms=timeout_ms)
        async with client:
            service = MetricsStorageService(client)
            box["recorded"] = await record(service, workdir)
            try:
                yield service
            finally:
                if box["recorded"].runs:
                    await client.drop_database()

    app = create_app(open_service, token=token)
    http = TestClient(app, base_url="http://127.0.0.1")
    with pytest.MonkeyPatch.context() as env:
        # Session fixtures run outside the function-scoped `clean_env`: the same cleaning,
        # while the history is recorded (when the app starts).
        for name in EVALSTORE_ENV_VARS:
            env.delenv(name, raising=False)
        env.setenv("EVALSTORE_SPOOL_DIR", str(workdir / "spool"))
        http.__enter__()
    try:
        yield Site(http, box["recorded"], app, url)
    finally:
        http.__exit__(None, None, None)


def engine_url(engine: str, workdir: Path) -> str:
    """The connection string of an engine: the embedded backend (with a password), or a
    local store in `workdir`."""
    if engine == "embedded":
        return SECRET_URL
    store = workdir / "store"
    store.mkdir(exist_ok=True)
    return f"file://{store}"
