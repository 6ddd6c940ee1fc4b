"""What the history-analysis mixins share: the client, running a pipeline, test-run filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evalstore.analysis.filters import RunFilters
from evalstore.analysis.pipelines import Pipeline, run_ids_pipeline
from evalstore.errors import RunNotFoundError
from evalstore.models import Document, utcnow
from evalstore.storage.client import MongoDBClient

if TYPE_CHECKING:
    from bson import ObjectId


def run_not_found(evaluation_run_id: str | ObjectId) -> RunNotFoundError:
    """The error for a run id that names no stored run."""
    return RunNotFoundError(
        f"no evaluation run {str(evaluation_run_id)!r}: "
        "list the recent ones with `evalstore runs list`"
    )


class QueryBase:
    """Base of the analysis mixins; `MetricsStorageService` provides `client` and `_ready`."""

    client: MongoDBClient

    async def _ready(self) -> MongoDBClient:
        raise NotImplementedError

    if TYPE_CHECKING:  # provided by MetricsStorageService

        async def get_evaluation_run(
            self, evaluation_run_id: str | ObjectId
        ) -> Document | None: ...

    async def _resolve(self, evaluation_run_id: str | ObjectId) -> Document:
        """The run with this id (human id, ObjectId or hex), or a clear RunNotFoundError."""
        run = await self.get_evaluation_run(evaluation_run_id)
        if run is None:
            raise run_not_found(evaluation_run_id)
        return run

    async def _aggregate(self, collection: Any, pipeline: Pipeline, action: str) -> list[Document]:
        """Run `pipeline` on `collection`; driver errors become one-line evalstore errors."""
        with self.client.errors(action):
            rows: list[Document] = await collection.aggregate(pipeline).to_list(None)
        return rows

    async def _test_match(
        self, filters: RunFilters, now: datetime, action: str
    ) -> dict[str, Any] | None:
        """The `$match` on `test_runs` for `filters`, or None when no evaluation run matches.

        With an environment, branch or tag filter, the matching runs' `_id`s
        are selected first (server-side, on `evaluation_runs`), because test
        runs do not carry those fields.
        """
        client = await self._ready()
        if not filters.selects_runs:
            return filters.test_match(now=now)
        runs = await self._aggregate(
            client.evaluation_runs, run_ids_pipeline(filters.run_lookup_match(now)), action
        )
        if not runs:
            return None
        return filters.test_match([run["_id"] for run in runs], now)

    async def _test_rows(
        self,
        filters: RunFilters,
        build: Callable[[dict[str, Any]], Pipeline],
        action: str,
    ) -> list[Document]:
        """The rows of `build(match)` on `test_runs`, or [] when no evaluation run matches."""
        client = await self._ready()
        match = await self._test_match(filters, utcnow(), action)
        if match is None:
            return []
        return await self._aggregate(client.test_runs, build(match), action)

    async def _run_rows(
        self,
        filters: RunFilters,
        build: Callable[[dict[str, Any]], Pipeline],
        action: str,
    ) -> list[Document]:
        """The rows of `build(filters.match())` on `evaluation_runs`."""
        client = await self._ready()
        return await self._aggregate(client.evaluation_runs, build(filters.match()), action)
