"""The CLI's history-analysis commands (trend, …), registered on the main app."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from evalstore.cli_common import DbOption, JsonOption, UrlOption, out, run_command, with_service
from evalstore.render import TREND_COLUMNS, print_json, table
from evalstore.service import MetricsStorageService


def register_analysis_commands(app: typer.Typer) -> None:
    """Add the analysis commands to `app`."""
    app.command("trend")(trend)


def trend(
    metric: Annotated[
        str, typer.Option("--metric", "-m", help="`score` or a metric name such as wer.")
    ] = "score",
    by: Annotated[str, typer.Option("--by", help="day or week.")] = "day",
    days: Annotated[int, typer.Option("--days", min=1, help="Window: the last N days.")] = 30,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mean of a run metric per day or week over the window."""

    async def use(service: MetricsStorageService) -> list[dict[str, Any]]:
        return await service.get_metric_trend(metric, by, window_days=days)  # type: ignore[arg-type]

    rows = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, rows)
    else:
        out.print(table(f"{metric} per {by} (last {days} days)", TREND_COLUMNS, rows))
