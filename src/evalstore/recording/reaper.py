"""Stale runs: runs whose process died stay `running`; reaping marks them `interrupted`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from evalstore.models import to_utc, utcnow
from evalstore.service import MetricsStorageService


async def reap_stale_runs(
    service: MetricsStorageService, stale_after: timedelta, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Mark `interrupted` every running run not seen for `stale_after`, with its aggregates.

    A run's heartbeat is `last_seen_at` (its `started_at` for runs stored
    before heartbeats existed). Aggregates are computed from the test runs that
    were stored; `finished_at` is the last heartbeat.

    Returns:
        The finalized run documents, oldest first.
    """
    cutoff = to_utc(now or utcnow()) - stale_after
    query = {
        "status": "running",
        "$or": [
            {"last_seen_at": {"$lt": cutoff}},
            {"last_seen_at": None, "started_at": {"$lt": cutoff}},
        ],
    }
    stale = await service.client.read(
        "evaluation_runs", query, sort=[("started_at", 1)], action="find stale runs"
    )
    return [
        await service.finalize_evaluation_run(
            run["_id"], "interrupted", finished_at=run.get("last_seen_at") or run["started_at"]
        )
        for run in stale
    ]
