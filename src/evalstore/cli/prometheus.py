"""The CLI's Prometheus command: `evalstore metrics`, a run's figures in Prometheus' format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalstore.cli.common import DbOption, UrlOption, err, out, run_command, with_service
from evalstore.monitors.prometheus import exposition, run_registry, write_textfile
from evalstore.service import MetricsStorageService


def register_prometheus_commands(app: typer.Typer) -> None:
    """Add `metrics` to `app`."""
    app.command("metrics")(metrics)


def metrics(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN",
            help="Run id, a unique prefix of it, ObjectId, latest or previous.",
            show_default=False,
        ),
    ] = "latest",
    textfile_name: Annotated[
        str | None,
        typer.Option(
            "--textfile",
            metavar="PATH",
            help="Write to this file (atomically) for node_exporter's textfile collector, "
            "e.g. /var/lib/node_exporter/textfile/evalstore.prom.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """A run's figures in Prometheus' text format: to stdout, or to a --textfile."""
    if textfile_name is not None and not textfile_name.strip():
        raise typer.BadParameter("give a file name", param_hint="--textfile")
    textfile = None if textfile_name is None else Path(textfile_name)

    async def use(service: MetricsStorageService) -> tuple[str, int, bytes]:
        run = await service.select_evaluation_run(run_id)
        registry = run_registry(run)
        series = write_textfile(textfile, registry) if textfile is not None else 0
        return str(run["evaluation_run_id"]), series, exposition(registry)[0]

    found, series, body = run_command(lambda: with_service(url, db, use))
    if textfile is None:
        out.file.write(body.decode("utf-8"))
        return
    out.print(f"wrote {series} series for run {found} to {textfile}", soft_wrap=True)
    if textfile.suffix != ".prom":
        err.print("note: node_exporter's textfile collector reads only files ending in .prom")
