"""The CLI's `cost` command: tokens and cost per run, day, model, test, configuration or branch."""

from __future__ import annotations

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
from evalstore.cli.options import (
    BranchOption,
    EnvOption,
    SinceOption,
    SuiteOption,
    UntilOption,
    check_choice,
    parse_when,
)
from evalstore.cli.render import Column, print_json, table
from evalstore.service import MetricsStorageService

GROUPS = ("run", "day", "model", "test", "config", "branch")
_KEYS: dict[str, list[Column]] = {
    "run": [
        ("evaluation run", lambda r: r.get("evaluation_run_id")),
        ("branch", lambda r: r.get("branch")),
    ],
    "day": [("day (UTC)", lambda r: r.get("day"))],
    "model": [("model", lambda r: r.get("model")), ("provider", lambda r: r.get("provider"))],
    "test": [("test", lambda r: r.get("test_id"))],
    "config": [
        ("configuration", lambda r: (r.get("configuration") or "-")[:12]),
        ("runs", lambda r: r.get("runs")),
    ],
    "branch": [("branch", lambda r: r.get("branch")), ("runs", lambda r: r.get("runs"))],
}
_FIGURES: list[Column] = [
    ("calls", lambda r: r.get("calls")),
    ("input", lambda r: r.get("input_tokens")),
    ("cached", lambda r: r.get("cache_read_tokens")),
    ("output", lambda r: r.get("output_tokens")),
    ("cost ($)", lambda r: _money(r.get("cost"))),
    ("unpriced", lambda r: r.get("unpriced") or ""),
]
_PER_PASSED: Column = ("$ / passed test", lambda r: _money(r.get("cost_per_passed_test")))


def _money(value: Any) -> str | None:
    return None if value is None else f"{value:.4f}"


def _right(header: str) -> bool:
    return header not in (
        "evaluation run",
        "branch",
        "day (UTC)",
        "model",
        "provider",
        "test",
        "configuration",
    )


def register_cost_commands(app: typer.Typer) -> None:
    """Add `cost` to `app`."""
    app.command("cost")(cost)


def cost(
    by: Annotated[
        str, typer.Option("--by", help="run, day, model, test, config or branch.")
    ] = "run",
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Tokens and cost recorded with `record_usage`, summed per run, day, model, test,
    configuration or branch; an unpriced model counts its tokens, never a cost of 0."""
    check_choice(by, GROUPS, "--by")
    window = {
        "since": parse_when(since, "--since"),
        "until": parse_when(until, "--until"),
        "branch": branch,
        "environment": env,
        "suite": suite,
    }

    async def use(service: MetricsStorageService) -> Any:
        return await service.get_cost(by, **window)  # type: ignore[arg-type]

    rows = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, rows)
        return
    if not rows:
        err.print("no usage recorded in this window (see `record_usage` in the README)")
        return
    columns = [*_KEYS[by], *_FIGURES]
    if by in ("run", "config", "branch"):
        columns.append(_PER_PASSED)
    out.print(table(f"cost by {by}", columns, rows, right_aligned=_right))
    priced = [row["cost"] for row in rows if row["cost"] is not None]
    unpriced = sum(row.get("unpriced") or 0 for row in rows)
    total = f"${sum(priced):.4f}" if priced else "no priced usage"
    note = f"; {unpriced} record(s) without a price" if unpriced else ""
    out.print(f"total: {total}{note}")
