"""Push a local store (`file:///dir`) into another target, idempotently.

The offline-then-sync workflow: record into a local store without a server,
then `evalstore sync --from file:///dir --to mongodb://…`. Runs are upserted
on `_id` and `evaluation_run_id` and test runs on `test_run_id`, both with
`$setOnInsert`, so pushing twice changes nothing; a run the target still holds
as `running` while the local copy is final gets the local status and aggregates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId

from evalstore.storage.client import MongoDBClient

BATCH = 500
_READ = "read the local store"
# A local store's databases, by name.
LocalClients = Mapping[str, MongoDBClient]
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
    refused: list[str] = field(default_factory=list)
    """The test runs the target refused (`'test id': reason`); they stay in the local store."""


@asynccontextmanager
async def local_clients(source: str, databases: list[str]) -> AsyncIterator[LocalClients]:
    """A client per database of the local store, open for the block.

    Counting and pushing through the same clients reads the store's files
    once (closing its last client drops a store from memory), and pushes
    exactly what was counted.
    """
    async with AsyncExitStack() as stack:
        yield {
            database: await stack.enter_async_context(MongoDBClient(source, database))
            for database in databases
        }


async def count_test_runs(local: LocalClients) -> int:
    """How many test runs the local databases hold (for a progress bar)."""
    total = 0
    for client in local.values():
        total += await client.count("test_runs", {}, action="read the local store")
    return total


async def push_local_store(
    local: LocalClients,
    target: MongoDBClient,
    on_progress: Callable[[int], Any] = lambda n: None,
) -> LocalSyncReport:
    """Upsert every run and test run of the local databases into `target`'s server.

    Args:
        local: the local store's databases (see `local_clients`).
        target: a client whose connection string and timeout are used, one
            database of the same name per source database.
        on_progress: called with the number of test runs just pushed.
    """
    report = LocalSyncReport(databases=list(local))
    for database, source in local.items():
        async with MongoDBClient(
            target.connection_string, database, timeout_ms=target.timeout_ms
        ) as dest:
            await _push_database(source, dest, report, on_progress)
    return report


async def _push_database(
    local: MongoDBClient,
    dest: MongoDBClient,
    report: LocalSyncReport,
    on_progress: Callable[[int], Any],
) -> None:
    runs = await local.read("evaluation_runs", {}, sort=[("started_at", 1)], action=_READ)
    tests_of = await _test_runs_by_run(local)
    for run in runs:
        inserted = await dest.upsert_run(run)
        report.evaluation_runs += 1
        if tests_of is not None and type(run["_id"]) in _GROUPED:
            tests = tests_of.get(run["_id"], [])
        else:
            tests = await local.read("test_runs", {"evaluation_run_id": run["_id"]}, action=_READ)
        for start in range(0, len(tests), BATCH):
            batch = tests[start : start + BATCH]
            refused = await dest.upsert_test_runs(batch)
            report.refused += [
                f"{item.document.get('test_id')!r}: {item.reason}" for item in refused
            ]
            report.test_runs += len(batch) - len(refused)
            on_progress(len(batch))
        # Just inserted, the target copy has the local status already.
        if not inserted and run.get("status") != "running":
            report.finalized += await _copy_outcome(dest, run)


# `evaluation_run_id` values grouped by value: `{evaluation_run_id: x}` for an `x` of one
# of these exact types matches exactly the documents holding a value equal to `x` (or an
# array holding one; any such document makes `_test_runs_by_run` give up).
_GROUPED = (ObjectId, str)


async def _test_runs_by_run(local: MongoDBClient) -> dict[Any, list[dict[str, Any]]] | None:
    """The local test runs by `evaluation_run_id`, in store order: one read, not one per run.

    None when one holds a value other than an exact `_GROUPED` type, None or
    nothing: what such a value matches, only the database's own query knows.
    """
    grouped: dict[Any, list[dict[str, Any]]] = {}
    for test in await local.read("test_runs", {}, action=_READ):
        value = test.get("evaluation_run_id")
        if type(value) in _GROUPED:
            grouped.setdefault(value, []).append(test)
        elif value is not None:
            return None
    return grouped


async def _copy_outcome(target: MongoDBClient, run: dict[str, Any]) -> int:
    """Set the local run's final status and aggregates on a target copy still `running`."""
    outcome = {name: run[name] for name in OUTCOME_FIELDS if name in run}
    updated = await target.update_run(
        {"_id": run["_id"], "status": "running"}, outcome, action="finalize an evaluation run"
    )
    return 0 if updated is None else 1
