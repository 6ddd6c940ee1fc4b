"""Retention: delete evaluation runs older than N days together with all their test runs.

Runs are deleted in batches, and within a batch the **test runs go first**,
then their evaluation runs. An interruption (a crash, Ctrl-C, a lost
connection) can therefore only leave evaluation runs without test runs, never
test runs without their evaluation run; running `prune` again selects those
runs once more (they are still old) and finishes the job.

A run older than the cutoff that is still being recorded could receive a test
run after its batch was deleted; with any sensible retention (weeks, not
minutes) no run is recorded that long.
"""

from __future__ import annotations

import math
from datetime import timedelta

from bson import ObjectId

from evalstore.analysis.base import QueryBase
from evalstore.analysis.pipelines import (
    child_test_runs_filter,
    old_runs_filter,
    runs_by_oid_filter,
)
from evalstore.analysis.types import PruneResult
from evalstore.errors import InvalidDataError
from evalstore.models import check_positive_int, utcnow

DEFAULT_BATCH_SIZE = 500


def check_days(older_than_days: float) -> float:
    """A finite, positive number of days."""
    if (
        isinstance(older_than_days, bool)
        or not isinstance(older_than_days, int | float)
        or not math.isfinite(older_than_days)
        or older_than_days <= 0
    ):
        raise InvalidDataError(
            f"older_than_days must be a positive number, got {older_than_days!r}"
        )
    return float(older_than_days)


class RetentionQueries(QueryBase):
    """Deleting old history (mixed into `MetricsStorageService`)."""

    async def prune(
        self,
        older_than_days: float,
        dry_run: bool = False,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> PruneResult:
        """Delete the evaluation runs started more than `older_than_days` ago, with their tests.

        Args:
            older_than_days: the age (in days, fractions allowed) beyond which runs go.
            dry_run: count what would be deleted, delete nothing.
            batch_size: how many evaluation runs each round deletes.

        Returns:
            `{evaluation_runs, test_runs, cutoff, dry_run}`: the counts deleted
            (or that would be), and the cutoff (runs started before it go).
        """
        days = check_days(older_than_days)
        check_positive_int(batch_size, "batch_size")
        cutoff = utcnow() - timedelta(days=days)
        client = await self._ready()
        runs = tests = 0
        with client.errors("prune old evaluation runs"):
            if dry_run:
                oids = [
                    doc["_id"]
                    for doc in await client.evaluation_runs.find(
                        old_runs_filter(cutoff), {"_id": 1}
                    ).to_list(None)
                ]
                runs = len(oids)
                for start in range(0, len(oids), batch_size):
                    tests += await client.test_runs.count_documents(
                        child_test_runs_filter(oids[start : start + batch_size])
                    )
            else:
                while True:
                    batch: list[ObjectId] = [
                        doc["_id"]
                        for doc in await client.evaluation_runs.find(
                            old_runs_filter(cutoff), {"_id": 1}, limit=batch_size
                        ).to_list(None)
                    ]
                    if not batch:
                        break
                    # Children first: an interruption here leaves childless runs, never orphans.
                    deleted_tests = await client.test_runs.delete_many(
                        child_test_runs_filter(batch)
                    )
                    deleted_runs = await client.evaluation_runs.delete_many(
                        runs_by_oid_filter(batch)
                    )
                    tests += deleted_tests.deleted_count
                    runs += deleted_runs.deleted_count
                    if deleted_runs.deleted_count == 0:  # found but not deleted: never loop forever
                        break
        return {"evaluation_runs": runs, "test_runs": tests, "cutoff": cutoff, "dry_run": dry_run}
