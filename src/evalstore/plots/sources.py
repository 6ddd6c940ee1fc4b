"""The service calls that feed the figures and the run report: plain rows, no matplotlib."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

from bson import ObjectId
from typing_extensions import Unpack

from evalstore.analysis.filters import FilterKwargs
from evalstore.analysis.types import DurationPoint, HistoryPoint, ScorePoint
from evalstore.models import Document
from evalstore.service import MetricsStorageService

DEFAULT_MAX_POINTS = 500
SHOWN_FAILURES = 20
SHOWN_ALERTS = 100
FAILING = ("error", "failed")


class RunReportData(TypedDict):
    """What `evalstore report run` shows of one run (see `evalstore.plots.report`)."""

    run: Document
    failures: list[Document]
    """The first `SHOWN_FAILURES` failing (failed or errored) test runs, in finishing order."""
    failures_total: int
    alerts: list[Document]
    """The run's alerts, newest first (at most `SHOWN_ALERTS`)."""
    series_summary: list[Document]


async def series_rows(
    service: MetricsStorageService,
    run: str | ObjectId,
    *,
    metrics: Sequence[str] | None = None,
    split: str | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> list[Document]:
    """`get_series` rows for `series_figure`."""
    return await service.get_series(
        run, metrics=list(metrics) if metrics else None, split=split, max_points=max_points
    )


async def across_runs_rows(
    service: MetricsStorageService,
    metric: str,
    *,
    split: str | None = None,
    runs: Sequence[str] | None = None,
    last: int = 5,
    max_points: int = DEFAULT_MAX_POINTS,
    branch: str | None = None,
    environment: str | None = None,
    suite: str | None = None,
) -> list[Document]:
    """`get_metric_across_runs` rows for `across_runs_figure`: the named `runs`, or the
    `last` newest finished runs (of a branch, environment, suite) with the metric."""
    return await service.get_metric_across_runs(
        metric,
        split=split,
        runs=list(runs) if runs else None,
        last=last,
        max_points=max_points,
        branch=branch,
        environment=environment,
        suite=suite,
    )


async def score_trend_rows(
    service: MetricsStorageService, **filters: Unpack[FilterKwargs]
) -> list[ScorePoint]:
    """`get_score_trend` rows for `score_trend_figure`."""
    return await service.get_score_trend(**filters)


async def history_rows(
    service: MetricsStorageService,
    test_id: str,
    *,
    duration: bool = False,
    **filters: Unpack[FilterKwargs],
) -> list[HistoryPoint] | list[DurationPoint]:
    """`get_test_trend` rows (the score, or the duration) for `test_history_figure`."""
    if duration:
        return await service.get_test_trend(test_id, value="duration", **filters)
    return await service.get_test_trend(test_id, **filters)


async def cost_rows(
    service: MetricsStorageService,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    branch: str | None = None,
    environment: str | None = None,
    suite: str | None = None,
) -> list[Document]:
    """`get_cost("day")` rows for `cost_trend_figure`."""
    return await service.get_cost(
        "day", since=since, until=until, branch=branch, environment=environment, suite=suite
    )


async def run_report_data(service: MetricsStorageService, run: str | ObjectId) -> RunReportData:
    """The run (named as for `select_evaluation_run`) and what its report shows.

    Raises:
        RunNotFoundError: no run matches.
    """
    document = await service.select_evaluation_run(run)
    failing = [
        test
        for test in await service.get_test_runs(document["_id"])
        if test.get("status") in FAILING
    ]
    alerts = await service.get_alerts(evaluation_run_oid=document["_id"], limit=SHOWN_ALERTS)
    summary = await service.get_series_summary(document["_id"])
    return {
        "run": document,
        "failures": failing[:SHOWN_FAILURES],
        "failures_total": len(failing),
        "alerts": alerts,
        "series_summary": list(summary),
    }
