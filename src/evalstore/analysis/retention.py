"""Retention: delete evaluation runs older than N days together with all their test runs
(and their usage records, metric points and alerts).

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

from datetime import timedelta

from bson import ObjectId

from evalstore.analysis.base import History
from evalstore.analysis.filters import MAX_WINDOW_DAYS
from evalstore.analysis.pipelines import (
    child_test_runs_filter,
    old_runs_filter,
    runs_by_oid_filter,
)
from evalstore.analysis.types import PruneResult
from evalstore.errors import InvalidDataError
from evalstore.models import check_positive_int, is_finite, utcnow
from evalstore.storage.engine import Collection

DEFAULT_BATCH_SIZE = 500

CHILDREN: tuple[Collection, ...] = ("usage", "metric_points", "alerts")
"""What else belongs to a run and goes when it goes (counted: test runs only)."""


def check_days(older_than_days: float) -> float:
    """A finite, positive number of days, at most a century."""
    if (
        isinstance(older_than_days, bool)
        or not isinstance(older_than_days, int | float)
        or not is_finite(older_than_days)
        or not 0 < older_than_days <= MAX_WINDOW_DAYS
    ):
        raise InvalidDataError(
            f"older_than_days must be a positive number of days, at most {MAX_WINDOW_DAYS}, "
            f"got {older_than_days!r}"
        )
    return float(older_than_days)


async def prune(
    history: History,
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
    client, action = history.client, "prune old evaluation runs"
    runs = tests = 0
    if dry_run:
        old = await client.read(
            "evaluation_runs", old_runs_filter(cutoff), projection={"_id": 1}, action=action
        )
        oids = [doc["_id"] for doc in old]
        runs = len(oids)
        for start in range(0, len(oids), batch_size):
            tests += await client.count(
                "test_runs", child_test_runs_filter(oids[start : start + batch_size]), action=action
            )
    else:
        while True:
            found = await client.read(
                "evaluation_runs",
                old_runs_filter(cutoff),
                projection={"_id": 1},
                limit=batch_size,
                action=action,
            )
            batch: list[ObjectId] = [doc["_id"] for doc in found]
            if not batch:
                break
            # Children first: an interruption here leaves childless runs, never orphans.
            tests += await client.delete("test_runs", child_test_runs_filter(batch), action=action)
            for collection in CHILDREN:  # the run's usage, metric points and alerts go with it
                await client.delete(collection, child_test_runs_filter(batch), action=action)
            deleted_runs = await client.delete(
                "evaluation_runs", runs_by_oid_filter(batch), action=action
            )
            runs += deleted_runs
            if deleted_runs == 0:  # found but not deleted: never loop forever
                break
    return {"evaluation_runs": runs, "test_runs": tests, "cutoff": cutoff, "dry_run": dry_run}
