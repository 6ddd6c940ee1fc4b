"""What every history query needs: the store, a run by id, the rows of a pipeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bson import ObjectId

from evalstore.analysis import queries
from evalstore.analysis.filters import RunFilters
from evalstore.analysis.pipelines import FUTURE_SLACK, run_id_prefix_filter
from evalstore.errors import InvalidDataError, RunNotFoundError
from evalstore.models import Document, check_text, utcnow
from evalstore.storage.client import MongoDBClient, Query

SELECTORS: tuple[str, ...] = ("latest", "previous")
"""Names of runs by their place among the newest finished runs with tests."""


def run_not_found(evaluation_run_id: str | ObjectId) -> RunNotFoundError:
    """The error for a run id that names no stored run."""
    return RunNotFoundError(
        f"no evaluation run {str(evaluation_run_id)!r}: "
        "list the recent ones with `evalstore runs list`"
    )


def run_id_filter(evaluation_run_id: str | ObjectId) -> dict[str, Any]:
    """The filter for a run named by its human-readable id or its ObjectId (object or hex).

    Raises:
        InvalidDataError: the id is neither (a query operator is not an id).
    """
    if isinstance(evaluation_run_id, ObjectId):
        return {"_id": evaluation_run_id}
    check_text(evaluation_run_id, "evaluation_run_id")
    if ObjectId.is_valid(evaluation_run_id):
        return {
            "$or": [{"_id": ObjectId(evaluation_run_id)}, {"evaluation_run_id": evaluation_run_id}]
        }
    return {"evaluation_run_id": evaluation_run_id}


class History:
    """The stored history as the analysis queries read it: runs by id and pipeline rows.

    Args:
        client: the store; every read goes through its typed operations.
    """

    def __init__(self, client: MongoDBClient) -> None:
        self.client = client

    async def get_run(self, evaluation_run_id: str | ObjectId) -> Document | None:
        """One evaluation run by its human-readable id or its ObjectId, or None."""
        return await self.client.read_one(
            "evaluation_runs", run_id_filter(evaluation_run_id), action="read an evaluation run"
        )

    async def resolve(self, evaluation_run_id: str | ObjectId) -> Document:
        """The run with this id (human id, ObjectId or hex), or a clear RunNotFoundError."""
        run = await self.get_run(evaluation_run_id)
        if run is None:
            raise run_not_found(evaluation_run_id)
        return run

    async def select(self, selector: str | ObjectId) -> Document:
        """The run a person names: an id, `latest`/`previous`, or a unique prefix of an id.

        `latest` and `previous` are the newest and second-newest finished runs
        with tests (as for `compare`); a prefix must match exactly one run id.

        Raises:
            RunNotFoundError: nothing matches.
            InvalidDataError: the prefix matches several runs.
        """
        if isinstance(selector, ObjectId):
            return await self.resolve(selector)
        check_text(selector, "evaluation_run_id")
        if selector in SELECTORS:
            index = SELECTORS.index(selector)
            newest = await self.rows(
                queries.latest_runs(count=index + 1, not_after=utcnow() + FUTURE_SLACK),
                "find the latest runs",
            )
            if len(newest) <= index:
                raise RunNotFoundError(
                    f"no {selector} finished evaluation run: found {len(newest)} finished "
                    "run(s) with tests"
                )
            return newest[index]
        run = await self.get_run(selector)
        if run is not None:
            return run
        found = await self.client.read(
            "evaluation_runs",
            run_id_prefix_filter(selector),
            sort=[("evaluation_run_id", 1)],
            limit=3,
            action="read an evaluation run",
        )
        if not found:
            raise run_not_found(selector)
        if len(found) > 1:
            names = ", ".join(run["evaluation_run_id"] for run in found[:2])
            more = ", ..." if len(found) > 2 else ""
            raise InvalidDataError(
                f"run id prefix {selector!r} matches several runs ({names}{more}): give more of it"
            )
        return found[0]

    async def rows(self, query: Query, action: str) -> list[Document]:
        """The rows of `query` (its pipeline on MongoDB, its SQL on the local store)."""
        return await self.client.rows(query, action=action)

    async def test_match(
        self, filters: RunFilters, now: datetime, action: str
    ) -> dict[str, Any] | None:
        """The `$match` on `test_runs` for `filters`, or None when no evaluation run matches.

        With an environment, branch or tag filter, the matching runs' `_id`s
        are selected first (server-side, on `evaluation_runs`), because test
        runs do not carry those fields.
        """
        if not filters.selects_runs:
            return filters.test_match(now=now)
        runs = await self.rows(queries.run_ids(filters.run_lookup_match(now)), action)
        if not runs:
            return None
        return filters.test_match([run["_id"] for run in runs], now)

    async def test_rows(
        self,
        filters: RunFilters,
        build: Callable[[dict[str, Any]], Query],
        action: str,
    ) -> list[Document]:
        """The rows of `build(match)` on `test_runs`, or [] when no evaluation run matches."""
        match = await self.test_match(filters, utcnow(), action)
        if match is None:
            return []
        return await self.rows(build(match), action)

    async def run_rows(
        self,
        filters: RunFilters,
        build: Callable[[dict[str, Any]], Query],
        action: str,
    ) -> list[Document]:
        """The rows of `build(filters.match())` on `evaluation_runs`."""
        return await self.rows(build(filters.match()), action)
