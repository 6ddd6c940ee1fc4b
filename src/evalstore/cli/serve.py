"""`evalstore serve`: the web dashboard over the configured store (or the demo history)."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import typer

from evalstore.cli.common import DbOption, UrlOption, err, make_client, out, run_command
from evalstore.cli.demo import DEMO_DATABASE, record_demo_history
from evalstore.cli.options import usage_error
from evalstore.cli.render import error_line
from evalstore.errors import ConfigurationError
from evalstore.redaction import redact_connection_string
from evalstore.service import MetricsStorageService
from evalstore.storage.client import EMBEDDED_SCHEME, MongoDBClient
from evalstore.storage.localstore import stored_databases

WEB_EXTRA = "the dashboard needs the web extra: pip install 'evalstore[web]'"
TOKEN_ENV = "EVALSTORE_DASHBOARD_TOKEN"
DEMO_RUNS = 14


def register_serve_commands(app: typer.Typer) -> None:
    """Add `serve` to `app`."""
    app.command("serve")(serve)


def serve(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Anything but loopback needs --token.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=TOKEN_ENV,
            help=f"Require this token on every request (default: {TOKEN_ENV}); "
            "also allows acknowledging alerts.",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Serve a demo history recorded in memory (nothing is written)."
        ),
    ] = False,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Serve the dashboard: runs, a run, comparisons, test history, trends, flaky tests,
    configurations, experiments, alerts, cost and training curves, with a JSON API."""
    try:
        import uvicorn

        from evalstore.web.app import create_app
        from evalstore.web.assets import plotly_js
        from evalstore.web.security import allowed_hosts, check_bind

        plotly_js().stat()
    except (ImportError, OSError):
        err.print(error_line(WEB_EXTRA), soft_wrap=True)
        raise typer.Exit(1) from None
    if demo and url:
        usage_error("--demo serves a history of its own: leave out --url")
    try:
        check_bind(host, token)
    except ConfigurationError as exc:
        usage_error(str(exc))
    _check_port(host, port)
    client = MongoDBClient(EMBEDDED_SCHEME, DEMO_DATABASE) if demo else make_client(url, db)
    if not demo:
        # A dashboard that cannot read its store is no use: say so now, in one line,
        # rather than on every page after the server's timeout.
        run_command(lambda: _answers(url, db))
    store = (
        "the demo history (in memory)"
        if demo
        else redact_connection_string(client.connection_string)
    )

    @asynccontextmanager
    async def open_service() -> AsyncIterator[MetricsStorageService]:
        async with client:
            service = MetricsStorageService(client)
            if demo:
                # its alert rule fires by design: no ERROR lines on the console for it
                alerts = logging.getLogger("evalstore.alerts")
                alerts.disabled = True
                try:
                    await record_demo_history(service, runs=DEMO_RUNS, full=True)
                finally:
                    alerts.disabled = False
            yield service

    shown_host = f"[{host}]" if ":" in host else host
    out.print(
        f"evalstore dashboard on http://{shown_host}:{port}/ reading {store}"
        + ("; requests need the token" if token else "")
        + " (Ctrl+C stops it)",
        soft_wrap=True,
    )
    uvicorn.run(
        create_app(open_service, token=token, allowed_hosts=allowed_hosts(host, token)),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


async def _answers(url: str | None, db: str | None) -> None:
    """The store exists and answers (a client of its own: the server's lives in its loop)."""
    async with make_client(url, db) as probe:
        if probe.is_local:
            stored_databases(probe.connection_string, probe.database_name)
        await probe.ping()


def _check_port(host: str, port: int) -> None:
    """One line instead of uvicorn's traceback when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if isinstance(exc, socket.gaierror):
                usage_error(f"--host: {host!r} is not an address of this machine ({exc.strerror})")
            reason = (
                "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            )
            usage_error(f"port {port} on {host} {reason}: pick another with --port")
