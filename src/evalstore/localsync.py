"""Push a local store (`file:///dir`) into another target, idempotently.

The offline-then-sync workflow: record into a local store without a server,
then `evalstore sync --from file:///dir --to mongodb://…`. Runs are upserted
on `_id` and `evaluation_run_id` and test runs on `test_run_id`, both with
`$setOnInsert`, so pushing twice changes nothing; a run the target still holds
as `running` while the local copy is final gets the local status and aggregates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evalstore.client import MongoDBClient
from evalstore.errors import ConfigurationError
from evalstore.localstore import database_names, store_path
from evalstore.service import MetricsStorageService

BATCH = 500
# The fields `finalize_evaluation_run` sets, copied onto a target copy still `running`.
OUTCOME_FIELDS = (
    "status",
    "finished_at",
    "num_tests",
    "num_passed",
    "num_failed",
    "num_skipped",
    "num_errors",
    "score",
    "metrics",
)


@dataclass
class LocalSyncReport:
    """What a push did: per database, the runs and test runs read from the local store."""

    databases: list[str] = field(default_factory=list)
    evaluation_runs: int = 0
    test_runs: int = 0
    finalized: int = 0


async def count_test_runs(source: str, databases: list[str]) -> int:
    """How many test runs the local store holds in `databases` (for a progress bar)."""
    total = 0
    for database in databases:
        async with MongoDBClient(source, database) as client:
            total += await client.test_runs.count_documents({})
    return total


def source_databases(source: str, database: str | None) -> list[str]:
    """The databases to push: `database` alone, or every database of the store.

    Raises:
        ConfigurationError: there is no local store at that path, or no such database in it.
    """
    root = store_path(source)
    if not root.is_dir():
        raise ConfigurationError(f"no local store at {root}")
    names = database_names(root)
    if database is None:
        return names
    if database not in names:
        raise ConfigurationError(
            f"the local store at {root} has no database {database!r} "
            f"(it has: {', '.join(names) or 'none'})"
        )
    return [database]


async def push_local_store(
    source: str,
    target: MongoDBClient,
    databases: list[str],
    on_progress: Callable[[int], Any] = lambda n: None,
) -> LocalSyncReport:
    """Upsert every run and test run of `databases` of the local store into `target`'s server.

    Args:
        source: the local store's `file:///dir` connection string.
        target: a client whose connection string and timeout are used, one
            database of the same name per source database.
        databases: the databases to push.
        on_progress: called with the number of test runs just pushed.
    """
    report = LocalSyncReport(databases=list(databases))
    for database in databases:
        async with (
            MongoDBClient(source, database) as local,
            MongoDBClient(target.connection_string, database, timeout_ms=target.timeout_ms) as dest,
        ):
            service = MetricsStorageService(dest)
            with local.errors("read the local store"):
                runs = await local.evaluation_runs.find({}).sort("started_at", 1).to_list(None)
            for run in runs:
                await service.upsert_evaluation_run(run)
                report.evaluation_runs += 1
                with local.errors("read the local store"):
                    tests = await local.test_runs.find({"evaluation_run_id": run["_id"]}).to_list(
                        None
                    )
                for start in range(0, len(tests), BATCH):
                    batch = tests[start : start + BATCH]
                    await service.upsert_test_runs(batch)
                    report.test_runs += len(batch)
                    on_progress(len(batch))
                if run.get("status") != "running":
                    report.finalized += await _copy_outcome(dest, run)
    return report


async def _copy_outcome(target: MongoDBClient, run: dict[str, Any]) -> int:
    """Set the local run's final status and aggregates on a target copy still `running`."""
    outcome = {name: run[name] for name in OUTCOME_FIELDS if name in run}
    with target.errors("finalize an evaluation run"):
        result = await target.evaluation_runs.update_one(
            {"_id": run["_id"], "status": "running"}, {"$set": outcome}
        )
    return int(result.modified_count)
