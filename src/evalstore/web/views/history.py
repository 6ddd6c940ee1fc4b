"""One test's history (score, metrics and duration over time) and the trends page."""

from __future__ import annotations

from typing import Any, cast

from evalstore.analysis.pipelines import Period
from evalstore.errors import InvalidDataError
from evalstore.service import MetricsStorageService
from evalstore.web import charts
from evalstore.web.links import Links
from evalstore.web.params import Params, shown_filters
from evalstore.web.views.runs import run_ids

HISTORY_LIMIT = 200
MAX_GROUPS = 8
PERIODS = ("day", "week")
GROUPS = ("none", "branch", "environment", "suite")


async def test_view(service: MetricsStorageService, params: Params, links: Links) -> dict[str, Any]:
    """The `limit` newest runs of test `id`, oldest first, with charts of its score, each
    metric and its duration; markers coloured by status, each linking to its run."""
    test_id = params.exact("id")
    if test_id is None:
        raise InvalidDataError("test history needs id= (a test id, as in a run's tests table)")
    limit = params.integer("limit", HISTORY_LIMIT, high=5000)
    found = list(reversed(await service.get_test_history(test_id, limit=limit)))
    runs = await run_ids(service, [doc.get("evaluation_run_id") for doc in found])
    rows: list[dict[str, Any]] = []
    for doc in found:
        run_id = runs.get(doc["evaluation_run_id"])
        rows.append(
            {
                "finished_at": doc.get("finished_at"),
                "evaluation_run_id": run_id,
                "link": links.run(run_id) if run_id else None,
                "status": doc.get("status"),
                "score": doc.get("score"),
                "duration_ms": doc.get("duration_ms"),
                "metrics": {
                    name: metric.get("score") if isinstance(metric, dict) else metric
                    for name, metric in (doc.get("metrics") or {}).items()
                },
                "message": doc.get("message"),
            }
        )
    when = [row["finished_at"] for row in rows]
    statuses = [row["status"] for row in rows]
    run_links = [row["link"] for row in rows]

    def labels(values: list[Any], unit: str = "") -> list[str]:
        return [
            f"{row['evaluation_run_id']} ({row['status']}): "
            + ("-" if value is None else f"{value:.4g}{unit}")
            for row, value in zip(rows, values, strict=True)
        ]

    made: dict[str, Any] = {}
    if rows:
        scores = [row["score"] for row in rows]
        made["score"] = charts.line_chart(
            [
                charts.trace(
                    "score", when, scores, text=labels(scores), links=run_links, statuses=statuses
                )
            ],
            title="score",
        )
        names = sorted({name for row in rows for name in row["metrics"]})
        if names:
            made["metrics"] = charts.line_chart(
                [
                    charts.trace(
                        name,
                        when,
                        [row["metrics"].get(name) for row in rows],
                        text=labels([row["metrics"].get(name) for row in rows]),
                        links=run_links,
                        index=i,
                    )
                    for i, name in enumerate(names)
                ],
                title="metrics",
            )
        durations = [row["duration_ms"] for row in rows]
        made["duration"] = charts.line_chart(
            [
                charts.trace(
                    "duration (ms)",
                    when,
                    durations,
                    text=labels(durations, " ms"),
                    links=run_links,
                    statuses=statuses,
                )
            ],
            title="duration (ms)",
        )
    passed = sum(1 for row in rows if row["status"] == "passed")
    return {
        "test_id": test_id,
        "limit": limit,
        "history": list(reversed(rows)),
        "runs": len(rows),
        "passed": passed,
        "pass_rate": passed / len(rows) if rows else None,
        "charts": made,
    }


async def trends_view(
    service: MetricsStorageService, params: Params, links: Links
) -> dict[str, Any]:
    """The mean of the score (or a run metric) per day or week, a line per branch,
    environment or suite (the `MAX_GROUPS` with the most points)."""
    filters = params.filters()
    metric = params.text("metric") or "score"
    by = cast(Period, params.choice("by", PERIODS, "day"))
    group = params.choice("group", GROUPS, "none")
    recorded = await service.get_recorded_metrics(**filters)
    if metric != "score" and metric not in recorded["metrics"]:
        raise InvalidDataError(
            f"metric: no run in the window recorded {metric!r}; recorded: "
            + (", ".join(["score", *recorded["metrics"]]))
        )
    lines: list[tuple[str, list[Any]]] = []
    if group == "none":
        lines.append((metric, await service.get_metric_trend(metric, by, **filters)))
    else:
        choices = await service.get_run_choices()
        for value in choices[group]:
            points = await service.get_metric_trend(metric, by, **{**filters, group: value})
            if points:
                lines.append((value, points))
        lines.sort(key=lambda line: -len(line[1]))
        del lines[MAX_GROUPS:]
        lines.sort(key=lambda line: line[0])
    chart = charts.line_chart(
        [
            charts.trace(
                name,
                [p["period"] for p in points],
                [p["mean"] for p in points],
                text=[f"{name} {p['period']}: {p['mean']:.4g} ({p['runs']} runs)" for p in points],
                index=i,
            )
            for i, (name, points) in enumerate(lines)
        ],
        title=f"{metric}, mean per {by}",
        x_type="category",
    )
    return {
        "filters": shown_filters(filters),
        "metric": metric,
        "by": by,
        "group": group,
        "metrics": ["score", *recorded["metrics"]],
        "groups": list(GROUPS),
        "lines": [{"name": name, "points": points} for name, points in lines],
        "charts": {"trend": chart} if lines else {},
    }
