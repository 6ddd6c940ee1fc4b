"""The CLI's durability commands: `sync` (the spool, or a local store) and `runs reap`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evalstore.cli.common import (
    DbOption,
    JsonOption,
    UrlOption,
    err,
    make_client,
    out,
    progress_bar,
    run_command,
    with_service,
)
from evalstore.cli.options import parse_duration
from evalstore.cli.render import RUN_COLUMNS, error_line, print_json, table
from evalstore.errors import ConfigurationError
from evalstore.recording.reaper import reap_stale_runs
from evalstore.recording.replay import ReplayReport, replay_spool
from evalstore.service import MetricsStorageService
from evalstore.settings import load_settings
from evalstore.storage.client import LOCAL_SCHEME, MongoDBClient
from evalstore.storage.localstore import store_path, stored_databases
from evalstore.storage.sync import (
    LocalSyncReport,
    count_test_runs,
    local_clients,
    push_local_store,
)


def register_durability_commands(app: typer.Typer, runs_app: typer.Typer) -> None:
    """Add `sync` to `app` and `reap` to the `runs` group."""
    app.command("sync")(sync)
    runs_app.command("reap")(reap)


def sync(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            "--url",
            help="Store to replay into (default: MONGODB_CONNECTION_STRING).",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Push this local store (file:///dir) instead of replaying the spool.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store every pending result of the local spool, or push a local store (idempotent)."""
    if source is not None:
        sync_local_store(source, to, db, as_json)
        return

    async def locate() -> Path:  # inside run_command: a bad setting is one line, exit 1
        spool = load_settings().evalstore_spool_dir
        check_spool_dir(spool)
        return spool

    spool_dir = run_command(locate)
    base = make_client(to, None)

    async def go() -> ReplayReport:
        clients: dict[str, MongoDBClient] = {}

        def service_for(database: str) -> MetricsStorageService:
            if database not in clients:
                clients[database] = MongoDBClient(
                    base.connection_string, database, timeout_ms=base.timeout_ms
                )
            return MetricsStorageService(clients[database])

        try:
            with progress_bar("replaying the spool", disable=as_json) as progress:
                task = progress.add_task("sync", total=0)

                def grow(pending: int) -> None:  # each journal adds what it will send
                    progress.update(task, total=(progress.tasks[task].total or 0) + pending)

                return await replay_spool(
                    spool_dir,
                    service_for,
                    on_pending=grow,
                    on_progress=lambda n: progress.advance(task, n),
                    default_database=db or base.database_name,
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
        err.print(error_line(f"{len(report.failed)} journal(s) could not be replayed"))
        raise typer.Exit(1)


def check_spool_dir(spool_dir: Path) -> None:
    """Refuse a spool folder that cannot be one (a file, or a path through a file).

    A folder that does not exist yet is fine: nothing was spooled.

    Raises:
        ConfigurationError: one line naming EVALSTORE_SPOOL_DIR.
    """
    for folder in (spool_dir, *spool_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "is a file" if folder == spool_dir else f"goes through the file {folder}"
                raise ConfigurationError(
                    f"EVALSTORE_SPOOL_DIR={spool_dir} is not a usable folder: it {where}; "
                    "point it at a folder (or unset it for the default)"
                )
            return


def sync_local_store(source: str, to: str | None, db: str | None, as_json: bool) -> None:
    """`evalstore sync --from file:///dir`: upsert a local store's history into `--to`."""
    base = make_client(to, None)

    async def go() -> LocalSyncReport:
        if not source.startswith(LOCAL_SCHEME):
            raise ConfigurationError(f"--from must be a local store file:///dir, got {source!r}")
        MongoDBClient(source)  # a relative path is one clear error
        # `file:///d/` and `file:///d` (or `/a/../d`) are one store: compare the folders.
        if base.is_local and store_path(base.connection_string) == store_path(source):
            raise ConfigurationError("--from and --to are the same local store")
        databases = stored_databases(source, db)
        async with local_clients(source, databases) as local:
            total = await count_test_runs(local)
            with progress_bar("pushing the local store", disable=as_json or total == 0) as progress:
                task = progress.add_task("sync", total=total)
                return await push_local_store(
                    local, base, on_progress=lambda n: progress.advance(task, n)
                )

    report = run_command(go)
    if as_json:
        print_json(out, {"from": source, **vars(report)})
    else:
        out.print(
            f"Pushed {len(report.databases)} database(s) from {source} into {base.redacted_uri}: "
            f"{report.evaluation_runs} run(s), {report.test_runs} test run(s), "
            f"{report.finalized} run(s) finalized on the target"
        )
        if report.refused:
            err.print(
                f"warning: the target refused {len(report.refused)} test run(s), which stay in "
                f"the local store; the first: {report.refused[0]}",
                markup=False,
                soft_wrap=True,
            )


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

    age = parse_duration(stale_after, "--stale-after")

    async def go() -> list[dict[str, Any]]:
        return await with_service(url, db, lambda service: reap_stale_runs(service, age))

    reaped = run_command(go)
    if as_json:
        print_json(out, reaped)
    else:
        out.print(table(f"Interrupted runs ({len(reaped)})", RUN_COLUMNS, reaped))
