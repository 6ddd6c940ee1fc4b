"""The CLI's durability commands: `sync` (replay the spool) and `runs reap`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from evalstore.cli_common import (
    DbOption,
    JsonOption,
    UrlOption,
    err,
    make_client,
    out,
    run_command,
    with_service,
)
from evalstore.client import MongoDBClient
from evalstore.reaper import parse_duration, reap_stale_runs
from evalstore.render import RUN_COLUMNS, print_json, table
from evalstore.replay import ReplayReport, pending_test_count, replay_spool
from evalstore.service import MetricsStorageService
from evalstore.settings import load_settings


def register_durability_commands(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add `sync` to `app` and `reap` to the `runs` group."""
    app.command("sync")(sync)
    runs_app.command("reap")(reap)


def sync(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Server to replay into (default: MONGODB_CONNECTION_STRING).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Store every pending result of the local spool (idempotent: safe to run twice)."""
    settings = load_settings()
    spool_dir = settings.evalstore_spool_dir
    base = make_client(to, None)

    async def go() -> ReplayReport:
        clients: dict[str, MongoDBClient] = {}

        def service_for(database: str) -> MetricsStorageService:
            if database not in clients:
                clients[database] = MongoDBClient(
                    base.connection_string, database, timeout_ms=base.timeout_ms
                )
            return MetricsStorageService(clients[database])

        total = pending_test_count(spool_dir)
        try:
            with Progress(
                TextColumn("replaying the spool"),
                BarColumn(),
                MofNCompleteColumn(),
                console=err,
                transient=True,
                disable=as_json or total == 0,
            ) as progress:
                task = progress.add_task("sync", total=total)
                return await replay_spool(
                    spool_dir, service_for, on_progress=lambda n: progress.advance(task, n)
                )
        finally:
            for client in clients.values():
                await client.close()

    report = run_command(go)
    if as_json:
        print_json(out, {"spool_dir": str(spool_dir), **vars(report)})
    else:
        out.print(
            f"Replayed {report.journals} journal(s) from {spool_dir} into {base.redacted_uri}: "
            f"{report.test_runs} test run(s), {report.finalized} run(s) finalized"
            + (f", {report.locked} skipped (still recording)" if report.locked else "")
            + (f", {report.skipped_lines} corrupt line(s) skipped" if report.skipped_lines else "")
        )
    if report.failed:
        err.print(f"[red]error:[/red] {len(report.failed)} journal(s) could not be replayed")
        raise typer.Exit(1)


def reap(
    stale_after: Annotated[
        str,
        typer.Option(
            "--stale-after", help="Heartbeat age that marks a run dead: 90s, 30m, 1h, 2d."
        ),
    ] = "1h",
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Mark running runs with an old heartbeat `interrupted` and finalize their aggregates."""

    async def go() -> list[dict[str, Any]]:
        age = parse_duration(stale_after)  # a bad duration is a one-line error too
        return await with_service(url, db, lambda service: reap_stale_runs(service, age))

    reaped = run_command(go)
    if as_json:
        print_json(out, reaped)
    else:
        out.print(table(f"Interrupted runs ({len(reaped)})", RUN_COLUMNS, reaped))
