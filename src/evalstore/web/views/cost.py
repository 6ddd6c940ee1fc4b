"""Tokens and cost per run, day, model, configuration, branch or test."""

from __future__ import annotations

from typing import Any

from evalstore.service import MetricsStorageService
from evalstore.web import charts
from evalstore.web.links import Links
from evalstore.web.params import Params, shown_filters

GROUPS = ("run", "day", "model", "config", "branch", "test")


async def cost_view(service: MetricsStorageService, params: Params, links: Links) -> dict[str, Any]:
    """`get_cost` grouped `by` one of `GROUPS`, in the window (`since`, `until`), with a chart
    of the cost of each group."""
    by = params.choice("by", GROUPS, "run")
    window = {
        "since": params.when("since"),
        "until": params.when("until"),
        "branch": params.text("branch"),
        "environment": params.text("environment"),
        "suite": params.text("suite"),
    }
    rows = await service.get_cost(by, **window)  # type: ignore[arg-type]
    label_key = {"run": "evaluation_run_id", "config": "configuration", "test": "test_id"}.get(
        by, by
    )
    shown = []
    for row in rows:
        label = row.get(label_key)
        item = {**row, "label": "(none)" if label in (None, "") else str(label)}
        if by == "run" and label:
            item["link"] = links.run(str(label))
        elif by == "test" and label:
            item["link"] = links.test(str(label))
        shown.append(item)
    priced = [row for row in shown if row.get("cost") is not None]
    made = {}
    if priced:
        made["cost"] = charts.bar_chart(
            [row["label"] for row in priced],
            [row["cost"] for row in priced],
            title=f"cost (USD) per {by}",
            y_title="USD",
            links=[row.get("link") for row in priced],
        )
    return {
        "by": by,
        "groups": list(GROUPS),
        "filters": shown_filters(window),
        "rows": shown,
        "total_cost": sum(row["cost"] for row in priced) if priced else None,
        "unpriced": sum(row.get("unpriced", 0) or 0 for row in shown),
        "charts": made,
    }
