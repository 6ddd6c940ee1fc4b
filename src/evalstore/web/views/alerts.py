"""Stored alerts, newest first; acknowledging one is the dashboard's only write."""

from __future__ import annotations

from typing import Any

from evalstore.errors import InvalidDataError
from evalstore.service import MetricsStorageService
from evalstore.web.links import Links
from evalstore.web.params import Params
from evalstore.web.views.runs import run_ids

LEVELS = ("info", "warning", "error", "critical")
STATES = ("any", "firing", "resolved")


async def alerts_view(
    service: MetricsStorageService, params: Params, links: Links
) -> dict[str, Any]:
    """Alerts of some `level`s, in one `state`, fired `since` a time."""
    levels = params.texts("level")
    unknown = [level for level in levels if level not in LEVELS]
    if unknown:
        raise InvalidDataError(f"level: expected {', '.join(LEVELS)}, got {unknown[0]!r}")
    state = params.choice("state", STATES, "any")
    since = params.when("since")
    limit = params.integer("limit", 200, high=5000)
    alerts = await service.get_alerts(
        level=levels, state=None if state == "any" else state, since=since, limit=limit
    )
    runs = await run_ids(service, [a.get("evaluation_run_id") for a in alerts])
    rows = []
    for alert in alerts:
        run_id = runs.get(alert.get("evaluation_run_id"))
        rows.append(
            {
                **alert,
                "id": str(alert["_id"]),
                "run": run_id,
                "run_link": links.run(run_id) if run_id else None,
                "test_link": links.test(str(alert["test_id"])) if alert.get("test_id") else None,
            }
        )
    return {
        "filters": {"level": levels, "state": state, "since": since, "limit": limit},
        "levels": list(LEVELS),
        "states": list(STATES),
        "alerts": rows,
    }
