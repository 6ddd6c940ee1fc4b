"""The CLI's monitor commands: `check` (gate a CI job on the rules) and `alerts list|ack`.

Exit codes of `check`: 0 no error or critical alert fires, 3 one does (with
`--strict`, a warning too), 1 it could not run (store, configuration), 2 bad options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evalstore.cli.common import (
    DbOption,
    JsonOption,
    UrlOption,
    err,
    out,
    run_command,
    with_service,
)
from evalstore.cli.options import SinceOption, check_choice, parse_when, usage_error
from evalstore.cli.render import print_json, table
from evalstore.errors import ConfigurationError
from evalstore.service import MetricsStorageService

ALERT_EXIT = 3
LEVELS = ("info", "warning", "error", "critical")
STATES = ("firing", "resolved")

ALERT_COLUMNS: list[tuple[str, Any]] = [
    ("id", lambda a: str(a.get("_id", ""))),
    ("fired (UTC)", lambda a: a.get("fired_at")),
    ("level", lambda a: a.get("level")),
    ("state", lambda a: a.get("state")),
    ("rule", lambda a: a.get("rule")),
    ("test", lambda a: a.get("test_id")),
    ("value", lambda a: a.get("value")),
    ("run", lambda a: a.get("run")),
    ("ack", lambda a: "yes" if a.get("acknowledged") else ""),
    ("message", lambda a: a.get("message")),
]

alerts_app = typer.Typer(help="Alerts raised by the monitor rules: list them, acknowledge one.")


def register_monitoring_commands(app: typer.Typer) -> None:
    """Add `check` and the `alerts` group to `app`."""
    app.command("check")(check)
    app.add_typer(alerts_app, name="alerts", no_args_is_help=True)


def _monitor(rules: Path | None) -> Any:
    from evalstore.monitors.config import configured_monitor, monitor_from_file

    if rules is not None:
        if not rules.is_file():
            usage_error(f"--rules: no such file: {rules}")
        monitor = monitor_from_file(rules)
    else:
        monitor = configured_monitor()
    if monitor is None:
        where = str(rules) if rules else "EVALSTORE_MONITORS, evalstore.toml or pyproject.toml"
        raise ConfigurationError(
            f"no monitor rules found in {where}: add [[tool.evalstore.rules]] "
            "(see the README, Monitoring and alerts)"
        )
    return monitor


def check(
    run: Annotated[
        str, typer.Argument(help="The run: an id, a unique prefix, latest or previous.")
    ] = "latest",
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 3 on a warning too, not only error/critical.")
    ] = False,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="A TOML file of rules instead of the configured ones."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Evaluate only: store and send no alert.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Check a run against the monitor rules; exit 3 when an error or critical alert fires."""

    async def use(service: MetricsStorageService) -> Any:
        monitor = _monitor(rules)
        document = await service.select_evaluation_run(run)
        return await monitor.evaluate_run(service, document, store=not dry_run)

    result = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(
            out,
            {
                "run": result.run,
                "alerts": result.alerts,
                "new": [str(a["_id"]) for a in result.new],
                "resolved": result.resolved,
                "undecided": result.undecided,
                "fails": result.fails(strict=strict),
            },
        )
    else:
        if result.alerts:
            out.print(table(f"alerts of run {result.run}", ALERT_COLUMNS, result.alerts))
        else:
            out.print(f"run {result.run}: no alert")
        for alert in result.resolved:
            out.print(f"resolved: {alert['rule']} ({alert['message']})")
        for line in result.undecided:
            err.print(f"not decided: {line}", soft_wrap=True)
    if result.fails(strict=strict):
        raise typer.Exit(ALERT_EXIT)


@alerts_app.command("list")
def alerts_list(
    level: Annotated[
        list[str] | None,
        typer.Option("--level", help="Only these levels (repeat): info, warning, error, critical."),
    ] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="firing or resolved.", show_default=False)
    ] = None,
    since: SinceOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="How many (0: all).")] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """The stored alerts, newest first."""
    levels = [check_choice(value, LEVELS, "--level") for value in level or []]
    if state is not None:
        check_choice(state, STATES, "--state")
    when = parse_when(since, "--since")

    async def use(service: MetricsStorageService) -> Any:
        return await service.get_alerts(level=levels, state=state, since=when, limit=limit)

    found = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, found)
    elif not found:
        err.print("no alert matches")
    else:
        out.print(table("alerts", ALERT_COLUMNS, found))


@alerts_app.command("ack")
def alerts_ack(
    alert_id: Annotated[str, typer.Argument(help="The alert's id, as `alerts list` shows it.")],
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Acknowledge an alert: someone is on it (it still resolves by itself)."""

    async def use(service: MetricsStorageService) -> Any:
        return await service.acknowledge_alert(alert_id)

    alert = run_command(lambda: with_service(url, db, use))
    out.print(f"acknowledged {alert_id}: {alert['rule']} ({alert['message']})")
