"""Plumbing shared by the CLI's command modules: consoles, options, error handling."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from evalstore.cli.render import error_line
from evalstore.errors import EvalstoreError
from evalstore.redaction import redact_uri
from evalstore.service import MetricsStorageService
from evalstore.settings import load_settings
from evalstore.storage.client import MongoDBClient
from evalstore.storage.localstore import stored_databases

T = TypeVar("T")

# Piped output (CI logs, files) gets room for full run ids; a terminal keeps its own width.
# No markup: what is printed holds recorded text (`test_wer[es-en]`) that must stay literal.
out = Console(
    highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 160
)
err = Console(stderr=True, highlight=False, markup=False, emoji=False)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="Connection string (default: MONGODB_CONNECTION_STRING).", show_default=False
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database (default: MONGODB_DATABASE).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="How many rows.")]


def make_client(url: str | None, db: str | None) -> MongoDBClient:
    settings = load_settings()
    return MongoDBClient(
        url or settings.mongodb_connection_string,
        db or settings.mongodb_database,
        timeout_ms=settings.mongodb_timeout_ms,
    )


def run_command(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn every failure into one line on stderr and a non-zero exit."""
    try:
        return asyncio.run(make())
    except EvalstoreError as exc:
        err.print(error_line(redact_uri(str(exc))), soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:
        if os.environ.get("EVALSTORE_DEBUG"):
            raise
        err.print(
            error_line(
                f"unexpected {type(exc).__name__}: {redact_uri(str(exc))} "
                "(set EVALSTORE_DEBUG=1 to see the traceback)"
            ),
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


async def with_service(
    url: str | None,
    db: str | None,
    use: Callable[[MetricsStorageService], Awaitable[T]],
    *,
    create: bool = False,
) -> T:
    """Run `use` on a service over the store named by `url`/`db` (or the settings).

    Args:
        create: the command records (the demo): a local store may be created.
            Otherwise a local store or database that does not exist is an error,
            not an empty answer.
    """
    async with make_client(url, db) as client:
        if client.is_local and not create:
            stored_databases(client.connection_string, client.database_name)
        return await use(MetricsStorageService(client))


def progress_bar(label: str, *, disable: bool) -> Progress:
    """A transient `label ━━━━ 12/100` bar on stderr (hidden for --json and empty work)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=disable,
    )
