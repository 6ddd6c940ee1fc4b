"""The runs page (the dashboard's home), one run's page, and a run's training curves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from evalstore.models import Document
from evalstore.service import MetricsStorageService
from evalstore.web import charts
from evalstore.web.links import Links
from evalstore.web.params import Params, shown_filters

RUN_STATUSES = ("running", "completed", "failed", "interrupted")
FAILING = ("error", "failed")
TEST_ORDER = {"error": 0, "failed": 1}
SERIES_POINTS = 400


def short(value: Any, length: int = 10) -> str | None:
    """The first characters of a commit or a hash."""
    return str(value)[:length] if value else None


async def run_ids(service: MetricsStorageService, oids: Iterable[Any]) -> dict[Any, str]:
    """The readable id of each run named by its `_id` (one read; None and repeats skipped)."""
    wanted = list({oid for oid in oids if oid is not None})
    if not wanted:
        return {}
    found = await service.client.read(
        "evaluation_runs",
        {"_id": {"$in": wanted}},
        projection={"evaluation_run_id": 1},
        action="read runs",
    )
    return {run["_id"]: str(run["evaluation_run_id"]) for run in found}


def run_row(run: Document, links: Links) -> dict[str, Any]:
    """One line of a runs table."""
    run_id = str(run["evaluation_run_id"])
    started, finished = run.get("started_at"), run.get("finished_at")
    return {
        "evaluation_run_id": run_id,
        "link": links.run(run_id),
        "started_at": started,
        "finished_at": finished,
        "duration_s": (finished - started).total_seconds() if started and finished else None,
        "suite": run.get("suite"),
        "git_branch": run.get("git_branch"),
        "git_commit": short(run.get("git_commit")),
        "git_dirty": run.get("git_dirty"),
        "environment": run.get("environment"),
        "experiment_tags": list(run.get("experiment_tags") or []),
        "status": run.get("status"),
        "num_tests": run.get("num_tests"),
        "num_passed": run.get("num_passed"),
        "num_failed": run.get("num_failed"),
        "score": run.get("score"),
        "configuration": short(run.get("system_info_hash"), 12),
    }


async def runs_view(service: MetricsStorageService, params: Params, links: Links) -> dict[str, Any]:
    """Runs started in the window, newest first, with the filters' choices and a sparkline."""
    filters = params.filters()
    statuses = params.texts("status")
    limit = params.integer("limit", 100, high=1000)
    runs = await service.find_evaluation_runs(status=statuses, limit=limit, **filters)  # type: ignore[arg-type]
    rows = [run_row(run, links) for run in runs]
    oldest_first = [row for row in reversed(rows) if row["score"] is not None]
    choices = await service.get_run_choices()
    return {
        "filters": {**shown_filters(filters), "status": statuses, "limit": limit},
        "choices": {**choices, "status": list(RUN_STATUSES)},
        "runs": rows,
        "charts": {
            "scores": charts.sparkline(
                [row["started_at"] for row in oldest_first],
                [row["score"] for row in oldest_first],
                text=[f"{row['evaluation_run_id']}: {row['score']:.2f}" for row in oldest_first],
                links=[row["link"] for row in oldest_first],
                statuses=[row["status"] for row in oldest_first],
            )
        }
        if oldest_first
        else {},
    }


def test_row(test: Document, links: Links) -> dict[str, Any]:
    """One line of a run's tests table."""
    metrics = test.get("metrics") or {}
    return {
        "test_id": test.get("test_id"),
        "link": links.test(str(test.get("test_id"))),
        "test_name": test.get("test_name"),
        "status": test.get("status"),
        "score": test.get("score"),
        "duration_ms": test.get("duration_ms"),
        "metrics": {
            name: metric.get("score") if isinstance(metric, dict) else metric
            for name, metric in metrics.items()
        },
        "message": test.get("message"),
        "finished_at": test.get("finished_at"),
    }


async def run_view(
    service: MetricsStorageService, run_id: str, params: Params, links: Links
) -> dict[str, Any]:
    """One run: provenance, configuration, aggregates, tests (failures first), alerts,
    cost per model and its training curves."""
    run = await service.select_evaluation_run(run_id)
    tests = await service.get_test_runs(run["_id"])
    rows = sorted(
        (test_row(test, links) for test in tests),
        key=lambda row: TEST_ORDER.get(row["status"], 2),
    )
    metric_names = sorted({name for row in rows for name in row["metrics"]})
    alerts = await service.get_alerts(evaluation_run_oid=run["_id"], limit=0)
    cost = await service.get_usage_totals("model", evaluation_run_oid=run["_id"])
    curves = await series_charts(service, run["_id"], SERIES_POINTS // 4)
    run_id = str(run["evaluation_run_id"])
    return {
        "run": run_row(run, links),
        "provenance": {
            "git_commit": run.get("git_commit"),
            "git_branch": run.get("git_branch"),
            "git_dirty": run.get("git_dirty"),
            "environment": run.get("environment"),
            "suite": run.get("suite"),
            "experiment_tags": list(run.get("experiment_tags") or []),
            "system_info_hash": run.get("system_info_hash"),
        },
        "configuration": (run.get("system_information") or {}).get("config") or {},
        "system_information": {
            key: value
            for key, value in (run.get("system_information") or {}).items()
            if key != "config"
        },
        "aggregates": run.get("metrics") or {},
        "counts": {
            key: run.get(key)
            for key in ("num_tests", "num_passed", "num_failed", "num_errors", "num_skipped")
        },
        "usage": run.get("usage") or {},
        "metric_names": metric_names,
        "tests": rows,
        "alerts": alerts,
        "cost": cost,
        "series": curves["series"],
        "charts": curves["charts"],
        "series_link": links.series(run_id),
    }


async def series_charts(
    service: MetricsStorageService, run_oid: Any, max_points: int
) -> dict[str, Any]:
    """A chart per metric of a run's series (one line per split) and their summaries."""
    found = await service.get_series(run_oid, max_points=max_points)
    summary = await service.get_series_summary(run_oid) if found else []
    by_metric: dict[str, list[Document]] = {}
    for item in found:
        by_metric.setdefault(str(item["metric"]), []).append(item)
    made = {
        f"series-{n}": charts.line_chart(
            [
                charts.trace(
                    str(item["split"]),
                    [p["step"] for p in item["points"]],
                    [p["value"] for p in item["points"]],
                    index=i,
                    mode="lines",
                )
                for i, item in enumerate(items)
            ],
            title=metric,
            y_title=None,
        )
        for n, (metric, items) in enumerate(sorted(by_metric.items()))
    }
    for chart in made.values():
        chart["layout"]["xaxis"]["title"] = {"text": "step"}
        chart["layout"]["showlegend"] = True
    return {"series": summary, "charts": made}


async def series_view(
    service: MetricsStorageService, run_id: str, params: Params, links: Links
) -> dict[str, Any]:
    """A run's training curves, each metric a chart, at most `points` points per curve."""
    run = await service.select_evaluation_run(run_id)
    points = params.integer("points", SERIES_POINTS, low=4, high=20_000)
    curves = await series_charts(service, run["_id"], points)
    return {"run": run_row(run, links), **curves, "points": points}
