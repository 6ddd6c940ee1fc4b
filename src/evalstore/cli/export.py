"""The CLI's `export` command: runs, tests, series, alerts or usage as CSV, JSON or NDJSON."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from evalstore.analysis.export import FORMATS, KINDS, PAGE_SIZE, Export, ExportFilters
from evalstore.cli.common import (
    DbOption,
    UrlOption,
    err,
    progress_bar,
    run_command,
    with_service,
)
from evalstore.cli.options import (
    BranchOption,
    EnvOption,
    MatchOption,
    SuiteOption,
    TagOption,
    UntilOption,
    check_choice,
    parse_when,
    usage_error,
)
from evalstore.service import MetricsStorageService

_PER_RUN = ("tests", "series", "usage")
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Start, inclusive (YYYY-MM-DD or ISO datetime, UTC); default: everything.",
        show_default=False,
    ),
]
_SUFFIXES = {".csv": "csv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson"}


def register_export_commands(app: typer.Typer) -> None:
    """Add `export` to `app`."""
    app.command("export")(export)


def export(
    kind: Annotated[
        str, typer.Argument(metavar="KIND", help="runs, tests, series, alerts or usage.")
    ],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="csv, json or ndjson (default: from the -o suffix, else csv).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="File to write (default, or -: stdout).", show_default=False
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="Only this run's tests, series or usage (id, prefix, latest, previous).",
            show_default=False,
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar, no summary line.")
    ] = False,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Export stored documents, read in pages (constant memory), without a default window.

    CSV: one column per value (`metrics.wer.score`, `usage.cost`; see the README).

    JSON (one array) and NDJSON (one document per line): documents whole, as stored.

    A file is written whole or not at all.
    """
    check_choice(kind, KINDS, "KIND")
    to_stdout = output in (None, "-")
    if fmt is None:
        fmt = "csv" if to_stdout else _SUFFIXES.get(Path(str(output)).suffix.lower(), "csv")
    check_choice(fmt, FORMATS, "--format")
    if run is not None and kind not in _PER_RUN:
        usage_error(f"--run: selects tests, series or usage, not {kind}")
    if tag and kind == "alerts":
        usage_error("--tag: alerts carry no tags (--env, --branch and --suite apply)")
    filters: ExportFilters = {
        "since": parse_when(since, "--since"),
        "until": parse_when(until, "--until"),
        "environment": env,
        "branch": branch,
        "suite": suite,
        "tags": tuple(tag or ()),
        "tags_match": check_choice(match, ("any", "all"), "--match"),  # type: ignore[typeddict-item]
        "run": run,
    }

    async def use(service: MetricsStorageService) -> int:
        rows = Export(service.client, kind, filters)  # type: ignore[arg-type]
        if to_stdout:
            return await rows.write(sys.stdout, fmt)  # type: ignore[arg-type]
        total = 0 if quiet else await rows.count()
        with progress_bar(f"exporting {kind}", disable=quiet or total < PAGE_SIZE) as progress:
            task = progress.add_task(kind, total=total)
            return await rows.write_file(
                Path(str(output)),
                fmt,  # type: ignore[arg-type]
                on_rows=lambda n: progress.advance(task, n),
            )

    written: Any = run_command(lambda: with_service(url, db, use))
    if not quiet:
        where = "stdout" if to_stdout else str(output)
        err.print(f"wrote {written} row{'' if written == 1 else 's'} to {where}", soft_wrap=True)
