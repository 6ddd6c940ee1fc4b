"""`evalstore report configs`: the configurations of a window written to a Markdown file.

The report holds what `configs list|compare`, `configs best` and `trend
--direction` answer (see `evalstore.analysis.reports.configs_report`).

`evalstore report run RUN`: one run's summary as Markdown or HTML, with its plots
(see `evalstore.plots.report.run_report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from evalstore.analysis.config_choice import OBJECTIVES, check_group_key
from evalstore.analysis.reports import configs_report
from evalstore.cli.common import DbOption, UrlOption, err, out, run_command, with_service
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
    usage_error,
)
from evalstore.cli.render import error_line
from evalstore.cli.serve import WEB_EXTRA
from evalstore.errors import ConfigurationError, EvalstoreError, InvalidDataError
from evalstore.models import utcnow
from evalstore.plots.auto import render_run_plots
from evalstore.plots.report import REPORT_FORMATS, run_report
from evalstore.plots.sources import RunReportData, run_report_data
from evalstore.service import MetricsStorageService

report_app = typer.Typer(
    help="Reports written to files: the dashboard's pages (--html), configs, run.",
    no_args_is_help=True,
    invoke_without_command=True,
)


def register_report_commands(app: typer.Typer) -> None:
    """Add `report configs` and `report run` to `app`."""
    app.add_typer(report_app, name="report")


@report_app.callback()
def report_html(
    ctx: typer.Context,
    html: Annotated[
        bool,
        typer.Option(
            "--html",
            help="Write the dashboard's pages for one run (or a comparison) into the folder "
            "-o: index.html, the runs' pages, the histories of failing or changed tests, "
            "and static/ (no server needed; needs the web extra).",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="With --html: the folder to write (created; its pages are replaced).",
            file_okay=False,
            show_default=False,
        ),
    ] = None,
    run: Annotated[
        str,
        typer.Option("--run", help="With --html: the run (id, prefix, latest or previous)."),
    ] = "latest",
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="With --html: compare --run with this run (the base); index.html is the "
            "comparison.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Reports written to files: `--html -o DIR` (the dashboard's pages), or a subcommand."""
    if ctx.invoked_subcommand is not None:
        if html or output is not None:
            usage_error(f"--html and -o come without a subcommand ({ctx.invoked_subcommand})")
        return
    if not html:
        usage_error("say what to write: --html -o DIR, or a subcommand (configs, run)")
    if output is None:
        usage_error("--html needs -o DIR, the folder to write")
    try:
        from evalstore.web.report import write_html_report
    except ImportError:
        err.print(error_line(WEB_EXTRA), soft_wrap=True)
        raise typer.Exit(1) from None

    async def use(service: MetricsStorageService) -> list[Path]:
        return await write_html_report(service, output, run, against)

    written = run_command(lambda: with_service(url, db, use))
    out.print(
        f"wrote {len(written)} page{'s' if len(written) != 1 else ''} to {output}: "
        f"open {output / 'index.html'}",
        markup=False,
        soft_wrap=True,
    )


@report_app.command("configs")
def report_configs(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The Markdown file to write (replaced if it exists).",
            dir_okay=False,
        ),
    ],
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Group the runs by this configuration key (as `configs compare --by`) "
            "instead of by configuration hash.",
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
    days: DaysOption = 30,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Write a Markdown report: configurations, the best per objective, the score direction."""
    if by is not None:
        try:
            check_group_key(by)
        except InvalidDataError as exc:
            usage_error(f"--by: {exc}")
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)
    window = describe_window(since, until, days) + describe_filters(filters)

    async def use(service: MetricsStorageService) -> tuple[str, int, int]:
        best = {
            objective: await service.best_configuration(objective, **filters)
            for objective in OBJECTIVES
        }
        candidates = sorted(
            [*best["score"]["ranking"], *best["score"]["excluded"]],
            key=lambda c: c["system_info_hash"],
        )
        groups: Any = await service.compare_configurations_by(by, **filters) if by else []
        note = ""
        try:
            direction = await service.get_score_direction(**filters)
        except ConfigurationError as exc:  # scipy missing: the rest of the report still holds
            direction, note = None, str(exc)
        text = configs_report(
            generated_at=utcnow(),
            window=window,
            candidates=candidates,
            best=best,
            direction=direction,
            direction_note=note,
            key=by,
            groups=groups,
        )
        return text, len(candidates), sum(c["runs"] for c in candidates)

    text, configurations, runs = run_command(lambda: with_service(url, db, use))
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        err.print(error_line(f"cannot write {output}: {exc.strerror or exc}"), soft_wrap=True)
        raise typer.Exit(1) from None
    out.print(
        f"wrote {output} ({configurations} configurations, {runs} runs)",
        markup=False,
        soft_wrap=True,
    )


@report_app.command("run")
def report_run(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="Run id, a unique prefix of it, ObjectId, latest or previous."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The report to write: .md or .html (replaced if it exists); the plots are "
            "written next to it as <run id>-<metric>.png.",
            dir_okay=False,
        ),
    ],
    plots: Annotated[
        bool, typer.Option("--plots/--no-plots", help="Draw the run's metric curves.")
    ] = True,
    width: Annotated[
        int, typer.Option("--width", min=100, max=10_000, help="Plot width in pixels.")
    ] = 1000,
    height: Annotated[
        int, typer.Option("--height", min=100, max=10_000, help="Plot height in pixels.")
    ] = 600,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Write one run's report: provenance, aggregates, failures, alerts, cost, metric series
    and their plots."""
    form = REPORT_FORMATS.get(output.suffix.lower())
    if form is None:
        usage_error(f"--output: a report is written as .md or .html, got {output.suffix!r}")

    async def use(
        service: MetricsStorageService,
    ) -> tuple[RunReportData, list[tuple[str, str]], list[str]]:
        data = await run_report_data(service, run_id)
        images: list[tuple[str, str]] = []
        notes: list[str] = []
        if data["series_summary"] and not plots:
            notes.append("Plots not drawn (--no-plots).")
        elif data["series_summary"]:
            try:
                written = await render_run_plots(
                    service, data["run"], output.parent, width_px=width, height_px=height
                )
            except (EvalstoreError, OSError) as exc:  # the report holds without its plots
                notes.append(f"Plots not drawn: {exc}")
            else:
                images = [(metric, path.name) for metric, path in written.items()]
        return data, images, notes

    data, images, notes = run_command(lambda: with_service(url, db, use))
    text = run_report(data, form=form, generated_at=utcnow(), images=images, notes=notes)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        err.print(error_line(f"cannot write {output}: {exc.strerror or exc}"), soft_wrap=True)
        raise typer.Exit(1) from None
    for note in notes:
        err.print(f"note: {note}", soft_wrap=True)
    out.print(
        f"wrote {output} ({data['failures_total']} failing tests, {len(data['alerts'])} alerts, "
        f"{len(images)} plots)",
        markup=False,
        soft_wrap=True,
    )
