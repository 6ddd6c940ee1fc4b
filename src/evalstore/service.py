"""MetricsStorageService: store evaluation runs and test runs, and query their history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from evalstore.analysis import AnalysisQueries
from evalstore.analysis.base import run_not_found
from evalstore.analysis.filters import TagsMatch
from evalstore.analysis.pipelines import (
    run_aggregates_pipeline,
)
from evalstore.errors import DuplicateRunError, InvalidDataError
from evalstore.models import Document, EvaluationRun, RunStatus, TestRun, check_positive_int, utcnow
from evalstore.storage.client import MongoDBClient

_FINAL_STATUSES = ("completed", "failed", "interrupted")


class MetricsStorageService(AnalysisQueries):
    """CRUD and history queries over `evaluation_runs` and `test_runs`.

    Every method returns plain dicts as stored (with `_id`, datetimes in UTC).

    Args:
        client: the connection; the service never creates one itself.
    """

    def __init__(self, client: MongoDBClient) -> None:
        self.client = client

    async def _ready(self) -> MongoDBClient:
        await self.client.ensure_indexes()
        return self.client

    async def create_evaluation_run(self, run: EvaluationRun) -> Document:
        """Insert a new evaluation run; return the stored document (with `_id`).

        Raises:
            DuplicateRunError: a run with the same `evaluation_run_id` exists.
        """
        return await self._insert(
            "evaluation_runs", run.to_document(), f"evaluation run {run.evaluation_run_id!r}"
        )

    async def save_test_run(self, test_run: TestRun) -> Document:
        """Insert one test run; return the stored document (with `_id`).

        Raises:
            DuplicateRunError: a test run with the same `test_run_id` exists.
        """
        return await self._insert(
            "test_runs", test_run.to_document(), f"test run {test_run.test_run_id!r}"
        )

    async def _insert(self, collection: str, document: Document, what: str) -> Document:
        client = await self._ready()
        with client.errors(f"store {what}"):
            try:
                result = await client.db[collection].insert_one(document)
            except DuplicateKeyError:
                raise DuplicateRunError(f"{what} already exists") from None
        document["_id"] = result.inserted_id
        return document

    async def upsert_evaluation_run(self, document: Document) -> bool:
        """Store a run document (with its client-side `_id`) unless it is already stored.

        Keyed on `_id` and `evaluation_run_id` with `$setOnInsert`, so replaying it
        never overwrites or duplicates; `last_seen_at` only moves forward.

        Returns:
            True when this call stored it, False when it was already there.

        Raises:
            DuplicateRunError: another run already has this `evaluation_run_id`.
        """
        client = await self._ready()
        keys = ("_id", "evaluation_run_id", "last_seen_at")  # the first two come from the filter
        fields = {k: v for k, v in document.items() if k not in keys}
        update: Document = {"$setOnInsert": fields}
        if document.get("last_seen_at") is not None:
            update["$max"] = {"last_seen_at": document["last_seen_at"]}
        with client.errors("store an evaluation run"):
            try:
                result = await client.evaluation_runs.update_one(
                    {"_id": document["_id"], "evaluation_run_id": document["evaluation_run_id"]},
                    update,
                    upsert=True,
                )
            except DuplicateKeyError:
                raise DuplicateRunError(
                    f"evaluation run {document['evaluation_run_id']!r} already exists"
                ) from None
        return result.upserted_id is not None

    async def upsert_test_runs(self, documents: Sequence[Document]) -> None:
        """Store test run documents not stored yet, in one unordered bulk write (none if empty).

        Each is upserted on `test_run_id` with `$setOnInsert` of the whole
        document, so writing one twice leaves exactly one, unchanged.
        """
        if not documents:
            return
        client = await self._ready()
        operations = [
            UpdateOne({"test_run_id": doc["test_run_id"]}, {"$setOnInsert": doc}, upsert=True)
            for doc in documents
        ]
        with client.errors("store test runs"):
            await client.test_runs.bulk_write(operations, ordered=False)

    async def touch_evaluation_run(self, evaluation_run_oid: ObjectId, seen_at: datetime) -> None:
        """Move the run's heartbeat `last_seen_at` forward to `seen_at`."""
        client = await self._ready()
        with client.errors("update a run's heartbeat"):
            await client.evaluation_runs.update_one(
                {"_id": evaluation_run_oid}, {"$max": {"last_seen_at": seen_at}}
            )

    async def finalize_evaluation_run(
        self,
        evaluation_run_id: str | ObjectId,
        status: RunStatus = "completed",
        *,
        finished_at: datetime | None = None,
    ) -> Document:
        """Compute the run's counts, metric means and score from its stored test runs.

        The aggregates come from an aggregation pipeline over `test_runs`, so they
        are right however many writers saved tests, and finalising twice gives
        the same result.

        Returns:
            The updated evaluation run document.
        """
        if status not in _FINAL_STATUSES:
            raise InvalidDataError(f"status must be one of {_FINAL_STATUSES}, got {status!r}")
        if isinstance(evaluation_run_id, ObjectId):  # what the recorder, replay and reaper pass
            run_oid, client = evaluation_run_id, await self._ready()
        else:
            run_oid, client = (await self._resolve(evaluation_run_id))["_id"], self.client
        with client.errors("finalize an evaluation run"):
            [result] = await client.test_runs.aggregate(run_aggregates_pipeline(run_oid)).to_list(
                None
            )
        # Only string statuses count in a category, whatever else a document may hold
        # (True and 1 are one key in a dict but two groups on the server).
        tests = {row["_id"]: row["tests"] for row in result["counts"] if type(row["_id"]) is str}
        [score] = result["score"] or [{"score": None}]
        update = {
            "status": status,
            "finished_at": finished_at or utcnow(),
            "num_tests": sum(row["tests"] for row in result["counts"]),
            "num_passed": tests.get("passed", 0),
            "num_failed": tests.get("failed", 0) + tests.get("error", 0),
            "num_skipped": tests.get("skipped", 0),
            "num_errors": tests.get("error", 0),
            "score": score["score"],
            "metrics": {m["_id"]: m["mean"] for m in result["means"] if m["mean"] is not None},
        }
        with client.errors("finalize an evaluation run"):
            updated: Document | None = await client.evaluation_runs.find_one_and_update(
                {"_id": run_oid}, {"$set": update}, return_document=ReturnDocument.AFTER
            )
        if updated is None:
            raise run_not_found(evaluation_run_id)
        return updated

    async def get_evaluation_run(self, evaluation_run_id: str | ObjectId) -> Document | None:
        """One evaluation run by its human-readable id or its ObjectId (as object or hex)."""
        client = await self._ready()
        query: dict[str, Any]
        if isinstance(evaluation_run_id, ObjectId):
            query = {"_id": evaluation_run_id}
        elif ObjectId.is_valid(evaluation_run_id):
            query = {
                "$or": [
                    {"_id": ObjectId(evaluation_run_id)},
                    {"evaluation_run_id": evaluation_run_id},
                ]
            }
        else:
            query = {"evaluation_run_id": evaluation_run_id}
        with client.errors("read an evaluation run"):
            found: Document | None = await client.evaluation_runs.find_one(query)
        return found

    async def get_test_runs(self, evaluation_run_id: str | ObjectId) -> list[Document]:
        """All test runs of one evaluation run, in the order they finished.

        Raises:
            RunNotFoundError: no evaluation run has that id.
        """
        run = await self._resolve(evaluation_run_id)
        with self.client.errors("read test runs"):
            cursor = self.client.test_runs.find({"evaluation_run_id": run["_id"]}).sort(
                [("finished_at", 1), ("test_id", 1)]
            )
            runs: list[Document] = await cursor.to_list(None)
        return runs

    async def get_recent_evaluation_runs(self, limit: int = 10) -> list[Document]:
        """The `limit` most recently started evaluation runs, newest first."""
        client = await self._ready()
        with client.errors("read recent evaluation runs"):
            cursor = (
                client.evaluation_runs.find()
                .sort("started_at", -1)
                .limit(check_positive_int(limit, "limit"))
            )
            runs: list[Document] = await cursor.to_list(None)
        return runs

    async def get_test_history(self, test_id: str, limit: int = 20) -> list[Document]:
        """The `limit` most recent runs of one test (by `test_id`), newest first."""
        client = await self._ready()
        with client.errors("read a test's history"):
            cursor = (
                client.test_runs.find({"test_id": test_id})
                .sort("finished_at", -1)
                .limit(check_positive_int(limit, "limit"))
            )
            runs: list[Document] = await cursor.to_list(None)
        return runs

    async def get_evaluation_runs_by_tags(
        self, tags: Sequence[str], match: TagsMatch = "any", limit: int = 100
    ) -> list[Document]:
        """Evaluation runs carrying any (or all) of `tags`, newest first."""
        if match not in ("any", "all"):
            raise InvalidDataError(f"match must be 'any' or 'all', got {match!r}")
        if isinstance(tags, str):
            tags = [tags]
        client = await self._ready()
        operator = "$in" if match == "any" else "$all"
        with client.errors("read evaluation runs by tags"):
            cursor = (
                client.evaluation_runs.find({"experiment_tags": {operator: list(tags)}})
                .sort("started_at", -1)
                .limit(check_positive_int(limit, "limit"))
            )
            runs: list[Document] = await cursor.to_list(None)
        return runs
