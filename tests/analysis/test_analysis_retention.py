"""Item 7: retention deletes old evaluation runs with all their test runs, never orphans.

OLD1 started 100 days ago (2 tests), OLD2 95 days ago (3 tests), RECENT 10 days
ago (1 test): `prune(90)` deletes 2 runs and 5 test runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from analysis_helpers import Result, invoke, orphaned_test_runs, record_run
from engine_wrappers import WrappedCollections
from pymongo.errors import AutoReconnect

from evalstore import (
    InvalidDataError,
    MetricsStorageService,
    StorageUnavailableError,
)
from evalstore.models import utcnow


@pytest.fixture
async def history(service: MetricsStorageService) -> dict[str, Any]:
    now = utcnow()
    plan = {"OLD1": (100, 2), "OLD2": (95, 3), "RECENT": (10, 1)}
    runs = {}
    for name, (age, tests) in plan.items():
        results = [Result(f"test-{i}", "passed", 90) for i in range(tests)]
        runs[name] = await record_run(service, now - timedelta(days=age), results)
    return runs


async def counts(service: MetricsStorageService) -> tuple[int, int]:
    client = service.client
    return (
        await client.count("evaluation_runs", action="count", query={}),
        await client.count("test_runs", action="count", query={}),
    )


async def test_dry_run_counts_and_deletes_nothing(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    result = await service.prune(90, dry_run=True)
    assert (result["evaluation_runs"], result["test_runs"], result["dry_run"]) == (2, 5, True)
    assert abs(result["cutoff"] - (utcnow() - timedelta(days=90))) < timedelta(minutes=1)
    assert await counts(service) == (3, 6)


async def test_prune_deletes_old_runs_and_their_tests(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    result = await service.prune(90)
    assert (result["evaluation_runs"], result["test_runs"], result["dry_run"]) == (2, 5, False)
    assert await counts(service) == (1, 1)
    remaining = await service.client.read_one("evaluation_runs", action="read", query={})
    assert remaining["evaluation_run_id"] == history["RECENT"]["evaluation_run_id"]
    assert await orphaned_test_runs(service) == 0
    # Idempotent: nothing left to delete.
    again = await service.prune(90)
    assert (again["evaluation_runs"], again["test_runs"]) == (0, 0)


async def test_batches_and_fractional_days(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    assert (await service.prune(96, batch_size=1))["evaluation_runs"] == 1  # OLD1 only
    result = await service.prune(9.5, batch_size=1)  # OLD2 and RECENT, one per batch
    assert (result["evaluation_runs"], result["test_runs"]) == (2, 4)
    assert await counts(service) == (0, 0)


class LosesConnectionOnRunDelete(WrappedCollections):
    """The same database, but deleting evaluation runs fails as if the connection dropped."""

    def wrap(self, name: str, collection: Any) -> Any:
        return _FailingDeletes(collection) if name == "evaluation_runs" else collection


class _FailingDeletes:
    def __init__(self, collection: Any) -> None:
        self._collection = collection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        raise AutoReconnect("connection closed")


@pytest.mark.mongodb_only
async def test_an_interrupted_prune_leaves_no_orphans_and_a_rerun_finishes(
    service: MetricsStorageService, history: dict[str, Any]
) -> None:
    client = service.client
    broken = LosesConnectionOnRunDelete(client.connection_string, client.database_name)
    try:
        with pytest.raises(
            StorageUnavailableError, match=r"^cannot reach MongoDB at mongomock:// "
        ):
            await MetricsStorageService(broken).prune(90, batch_size=1)
    finally:
        await broken.close()
    # The first batch's test runs went first; its run stays, childless, and no test run
    # points to a missing run.
    runs, tests = await counts(service)
    assert runs == 3
    assert tests in (4, 3)  # OLD1's 2 or OLD2's 3 test runs are gone, depending on the batch
    assert await orphaned_test_runs(service) == 0

    result = await service.prune(90)
    assert (result["evaluation_runs"], result["test_runs"]) == (2, tests - 1)
    assert await counts(service) == (1, 1)
    assert await orphaned_test_runs(service) == 0


async def test_bad_ages(service: MetricsStorageService) -> None:
    with pytest.raises(InvalidDataError, match=r"^older_than_days must be a positive number"):
        await service.prune(0)
    with pytest.raises(InvalidDataError, match=r"^batch_size must be a positive integer"):
        await service.prune(1, batch_size=0)


async def test_prune_cli(service: MetricsStorageService, history: dict[str, Any]) -> None:
    dry = await invoke(service, "prune", "--older-than", "90d", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("would delete 2 evaluation runs and 5 test runs started before ")
    assert await counts(service) == (3, 6)

    declined = await invoke(service, "prune", "--older-than", "12w", stdin="n\n")
    assert declined.exit_code == 1
    assert "Delete 2 evaluation runs and 5 test runs started before" in declined.stderr
    assert declined.stderr.endswith("nothing deleted\n")
    assert await counts(service) == (3, 6)

    # 2160 hours = 90 days; confirmed at the prompt.
    confirmed = await invoke(service, "prune", "--older-than", "2160h", stdin="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    last_line = confirmed.stdout.splitlines()[-1]  # the runner echoes the answer first
    assert last_line.startswith("deleted 2 evaluation runs and 5 test runs started before ")
    assert await counts(service) == (1, 1)

    result = await invoke(service, "prune", "--older-than", "1d", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert '"evaluation_runs": 1,\n  "test_runs": 1,' in result.stdout
    assert await counts(service) == (0, 0)


async def test_prune_cli_bad_age(service: MetricsStorageService) -> None:
    for age in ("90", "0d", "-3d", "3 months"):
        result = await invoke(service, "prune", "--older-than", age, "--yes")
        assert result.exit_code == 2
        assert result.stderr == (
            "error: --older-than: expected a positive duration such as 90s, 30m, 36h, 2d or 12w, "
            f"got {age!r}\n"
        )
