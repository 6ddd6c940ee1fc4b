"""Stale runs: runs whose process died stay `running`; reaping marks them `interrupted`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from evalstore.errors import InvalidDataError
from evalstore.models import to_utc, utcnow
from evalstore.service import MetricsStorageService

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """A duration like `90s`, `30m`, `1h` or `2d`.

    Raises:
        InvalidDataError: the text is not a positive number followed by s, m, h or d.
    """
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise InvalidDataError(
            f"invalid duration {text!r}: use a positive number and a unit, e.g. 90s, 30m, 1h, 2d"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


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
