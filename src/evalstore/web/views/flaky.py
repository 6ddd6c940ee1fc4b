"""Flaky tests, and tests that broke or were fixed once and stayed so."""

from __future__ import annotations

from typing import Any

from evalstore.service import MetricsStorageService
from evalstore.web.links import Links
from evalstore.web.params import Params, shown_filters


async def flaky_view(
    service: MetricsStorageService, params: Params, links: Links
) -> dict[str, Any]:
    """`get_test_outcomes` over the window: tests that flip between runs (`min_runs` runs
    at least), most flaky first, and tests whose outcome changed once."""
    filters = params.filters()
    min_runs = params.integer("min_runs", 5, low=2, high=1000)
    outcomes = await service.get_test_outcomes(min_runs, **filters)
    return {
        "filters": {**shown_filters(filters), "min_runs": min_runs},
        "flaky": [{**row, "link": links.test(row["test_id"])} for row in outcomes["flaky"]],
        "changed": [{**row, "link": links.test(row["test_id"])} for row in outcomes["changed"]],
    }
