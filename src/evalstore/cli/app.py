"""The `evalstore` command: record a demo history and query what is stored."""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from evalstore.cli.analysis import register_analysis_commands
from evalstore.cli.common import (
    DbOption,
    JsonOption,
    LimitOption,
    UrlOption,
    err,
    make_client,
    out,
    progress_bar,
    run_command,
    with_service,
)
from evalstore.cli.cost import register_cost_commands
from evalstore.cli.demo import DEMO_DATABASE, FLAKY_TEST, TESTS, record_demo_history
from evalstore.cli.durability import register_durability_commands
from evalstore.cli.durations import register_duration_commands
from evalstore.cli.export import register_export_commands
from evalstore.cli.monitoring import register_monitoring_commands
from evalstore.cli.options import SuiteOption
from evalstore.cli.plot import register_plot_commands
from evalstore.cli.prometheus import register_prometheus_commands
from evalstore.cli.render import (
    HISTORY_COLUMNS,
    RUN_COLUMNS,
    TEST_RUN_COLUMNS,
    TREND_COLUMNS,
    error_line,
    fmt,
    print_json,
    table,
)
from evalstore.cli.reports import register_report_commands
from evalstore.cli.series import register_series_commands
from evalstore.cli.serve import register_serve_commands
from evalstore.errors import EvalstoreError
from evalstore.redaction import redact_uri
from evalstore.service import MetricsStorageService
from evalstore.storage.client import EMBEDDED_SCHEME
from evalstore.storage.localstore import stored_databases

app = typer.Typer(
    name="evalstore",
    help="Keep the history of test and evaluation results in MongoDB, and query it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="Evaluation runs: list them, show one.", no_args_is_help=True)
tests_app = typer.Typer(help="Tests: one test's history across runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(tests_app, name="tests")
FAILING = ("error", "failed")
SHOWN_TESTS = 50


def _print_version(value: bool) -> None:
    if value:
        import evalstore

        out.print(f"evalstore {evalstore.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Keep the history of test and evaluation results in MongoDB, and query it."""


@app.command()
def demo(
    url: Annotated[
        str, typer.Option("--url", help="Where to record the demo history.")
    ] = EMBEDDED_SCHEME,
    db: Annotated[str, typer.Option("--db", help="Database for the demo.")] = DEMO_DATABASE,
    runs: Annotated[int, typer.Option("--runs", min=2, max=100, help="Evaluation runs.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Record a simulated history (on the embedded backend by default) and query it."""

    async def go(service: MetricsStorageService) -> dict[str, Any]:
        with progress_bar("recording demo runs", disable=as_json) as progress:
            task = progress.add_task("demo", total=runs * len(TESTS))
            ids = await record_demo_history(
                service, runs=runs, on_test=lambda: progress.advance(task)
            )
        return {
            "evaluation_run_ids": ids,
            "recent_runs": await service.get_recent_evaluation_runs(limit=runs),
            "test_history": await service.get_test_history(FLAKY_TEST, limit=runs),
            "score_trend": await service.get_metric_trend("score", by="day"),
        }

    result = run_command(lambda: with_service(url, db, go, create=True))
    if as_json:
        print_json(out, result)
        return
    out.print(
        table(
            f"Recent evaluation runs ({len(result['recent_runs'])})",
            RUN_COLUMNS,
            result["recent_runs"],
        )
    )
    out.print(
        table(f"History of {FLAKY_TEST} (newest first)", HISTORY_COLUMNS, result["test_history"])
    )
    out.print(table("Daily evaluation score trend", TREND_COLUMNS, result["score_trend"]))
    where = (
        "the embedded backend (gone when this process exits)"
        if url == EMBEDDED_SCHEME
        else f"{redact_uri(url)}, database {db}"
    )
    out.print(Text(f"Recorded {runs} evaluation runs of {len(TESTS)} tests in {where}."))


@app.command()
def ping(url: UrlOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Check that the store answers (MongoDB, a local store, the embedded backend)."""

    async def go() -> tuple[str, str, float]:
        async with make_client(url, db) as client:
            if client.is_local:
                stored_databases(client.connection_string, client.database_name)
            return client.redacted_uri, client.store_description, await client.ping()

    target, name, millis = run_command(go)
    if as_json:
        print_json(out, {"ok": True, "uri": target, "round_trip_ms": millis})
    else:
        out.print(Text(f"{name[0].upper()}{name[1:]} answered in {millis:.1f} ms"))


@app.command()
def indexes(url: UrlOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Create evalstore's indexes (idempotent) and list the indexes of both collections."""

    async def go() -> dict[str, list[dict[str, Any]]]:
        async with make_client(url, db) as client:
            await client.create_indexes()
            return await client.list_indexes()

    found = run_command(go)
    if as_json:
        print_json(out, found)
        return
    rows = [{"collection": name, **index} for name, listed in found.items() for index in listed]
    out.print(
        table(
            "Indexes",
            [
                ("collection", lambda r: r["collection"]),
                ("name", lambda r: r["name"]),
                ("keys", lambda r: ", ".join(f"{f} {d:+d}" for f, d in r["keys"])),
                ("unique", lambda r: r["unique"]),
            ],
            rows,
        )
    )


@runs_app.command("list")
def runs_list(
    url: UrlOption = None,
    db: DbOption = None,
    limit: LimitOption = 10,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Only runs with this tag (repeat).")
    ] = None,
    match: Annotated[str, typer.Option("--match", help="With --tag: any or all.")] = "any",
    suite: SuiteOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the most recent evaluation runs, newest first."""

    async def use(service: MetricsStorageService) -> list[dict[str, Any]]:
        if tag:
            return await service.get_evaluation_runs_by_tags(tag, match, limit, suite=suite)  # type: ignore[arg-type]
        return await service.get_recent_evaluation_runs(limit, suite=suite)

    found = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, found)
    else:
        out.print(table(f"Evaluation runs ({len(found)})", RUN_COLUMNS, found))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="Run id, a unique prefix of it, ObjectId, latest or previous."
        ),
    ],
    failed: Annotated[
        bool, typer.Option("--failed", help="Only the tests that failed or errored.")
    ] = False,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", min=1, help="Test runs shown, failures first."),
    ] = SHOWN_TESTS,
    show_all: Annotated[bool, typer.Option("--all", help="Show every test run.")] = False,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one evaluation run with its aggregates and its test runs, failures first."""

    async def use(service: MetricsStorageService) -> dict[str, Any]:
        run = await service.select_evaluation_run(run_id)
        tests = await service.get_test_runs(run["_id"])
        return {"evaluation_run": run, "test_runs": tests}

    found = run_command(lambda: with_service(url, db, use))
    tests = [t for t in found["test_runs"] if not failed or t.get("status") in FAILING]
    # Failures first (errors, then failures), each group in the order they finished.
    tests.sort(key=lambda t: FAILING.index(t["status"]) if t.get("status") in FAILING else 2)
    if as_json:
        print_json(out, {**found, "test_runs": tests})
        return
    run = found["evaluation_run"]
    # Text, not markup: tags, branch and metric names are shown as they were recorded.
    out.print(
        Text.assemble(
            (str(run["evaluation_run_id"]), "bold"),
            f"  status={run['status']}  score={fmt(run.get('score'))}",
        )
    )
    out.print(
        Text(
            f"started {fmt(run['started_at'])}  finished {fmt(run.get('finished_at'))}  "
            f"env={run['environment']}  tags={fmt(run.get('experiment_tags'))}"
        )
    )
    out.print(
        Text(
            f"git {fmt(run.get('git_branch'))} @ {fmt(run.get('git_commit'))}"
            f"{' (dirty)' if run.get('git_dirty') else ''}  "
            f"config {run['system_info_hash'][:12]}"
        )
    )
    out.print(
        Text(
            f"tests {run['num_tests']}: {run['num_passed']} passed, {run['num_failed']} failed, "
            f"{run.get('num_skipped', 0)} skipped  metrics: "
            + (" ".join(f"{k}={fmt(v)}" for k, v in sorted(run["metrics"].items())) or "-")
        )
    )
    shown = tests if show_all else tests[:limit]
    title = f"Test runs ({len(shown)} of {len(tests)}{' failed' if failed else ''}, failures first)"
    out.print(table(title, TEST_RUN_COLUMNS, shown))
    if len(shown) < len(tests):
        err.print(
            f"note: {len(tests) - len(shown)} more test run(s): --all or --limit N shows them"
        )


@tests_app.command("history")
def show_test_history(
    test_id: Annotated[str, typer.Argument(metavar="TEST_ID")],
    url: UrlOption = None,
    db: DbOption = None,
    limit: LimitOption = 20,
    as_json: JsonOption = False,
) -> None:
    """One test's most recent results, newest first."""
    found = run_command(lambda: with_service(url, db, lambda s: s.get_test_history(test_id, limit)))
    if as_json:
        print_json(out, found)
    elif not found:
        err.print(Text(f"no results stored for test {test_id!r}"))
        raise typer.Exit(1)
    else:
        out.print(table(f"History of {test_id} (newest first)", HISTORY_COLUMNS, found))


# Registered after the core commands so that `--help` lists those first.
register_analysis_commands(app)
register_durability_commands(app, runs_app)
register_duration_commands(app)
register_monitoring_commands(app)
register_prometheus_commands(app)
register_report_commands(app)
register_cost_commands(app)
register_series_commands(app)
register_serve_commands(app)
register_export_commands(app)
register_plot_commands(app)


def main() -> None:
    """Entry point of the `evalstore` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except EvalstoreError as exc:  # raised while parsing options, before _run
        err.print(error_line(redact_uri(str(exc))), soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
