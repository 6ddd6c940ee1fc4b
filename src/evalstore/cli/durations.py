"""The CLI's duration commands: `slowest` (the tests that take longest, and got slower).

One test's duration over time is `evalstore trend --test ID --duration` (in
`cli.analysis`, with the other trends).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from evalstore.cli.analysis import why_empty
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
    DaysOption,
    EnvOption,
    MatchOption,
    SinceOption,
    SuiteOption,
    TagOption,
    UntilOption,
    describe_filters,
    describe_window,
    filter_kwargs,
)
from evalstore.cli.render import Column, print_json
from evalstore.cli.tables import analysis_table
from evalstore.service import MetricsStorageService

SHOWN_SLOWEST = 10
"""How many tests `slowest` lists unless told (`--limit 0`: all of them)."""


def signed_percent(change: float | None) -> str | None:
    """`+35%` / `-10%` / `0%` from a fraction; None stays None (shown as a dash)."""
    if change is None:
        return None
    percent = round(change * 100)
    return f"{percent:+d}%" if percent else "0%"


SLOWEST_COLUMNS: list[Column] = [
    ("test", lambda r: r.get("test_id")),
    ("runs", lambda r: r.get("runs")),
    ("mean (ms)", lambda r: r.get("mean_ms")),
    ("max (ms)", lambda r: r.get("max_ms")),
    ("last (ms)", lambda r: r.get("last_ms")),
    ("last vs mean", lambda r: signed_percent(r.get("change"))),
    ("last seen (UTC)", lambda r: r.get("last_seen")),
]


def register_duration_commands(app: typer.Typer) -> None:
    """Add `slowest` to `app`."""
    app.command("slowest")(slowest)


def slowest(
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=0, help="How many tests (0: all of them).")
    ] = SHOWN_SLOWEST,
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    days: DaysOption = 30,
    url: UrlOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The slowest tests by mean duration, with their longest and latest run.

    `last vs mean` says how much longer (+) or shorter (-) the latest run took
    than the window's mean: a test that got slower stands out. Skipped runs
    do not count.
    """
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)
    window = describe_window(since, until, days)

    async def use(service: MetricsStorageService) -> tuple[Any, str]:
        rows = await service.get_slowest_tests(limit=limit or None, **filters)
        if rows:
            return rows, ""
        hint = await why_empty(service, filters, window) or (
            f"note: no test ran (other than skipped) in {window}{describe_filters(filters)}"
        )
        return rows, hint

    rows, hint = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, rows)
    else:
        title = f"Slowest tests ({len(rows)}, {window})"
        out.print(analysis_table(title, SLOWEST_COLUMNS, rows))
    if hint:  # on stderr, so that --json output stays one JSON document
        err.print(hint, markup=False, soft_wrap=True, highlight=False)
