"""`evalstore plot series|across|trend|test|cost -o FILE.png|svg`: what is stored, as a chart.

matplotlib is the optional extra `evalstore[plot]`: without it every `plot` command prints
one line saying how to install it and exits with 1, before reading anything. A bad file
suffix or size is a usage error (exit 2); nothing to draw is an error (exit 1, no file).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

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
    filter_kwargs,
    parse_when,
    usage_error,
)
from evalstore.cli.render import error_line
from evalstore.errors import EvalstoreError
from evalstore.plots import require_matplotlib, sources
from evalstore.service import MetricsStorageService

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_SUFFIXES = (".png", ".svg")
DEFAULT_WIDTH = 1000
DEFAULT_HEIGHT = 600

plot_app = typer.Typer(
    help="Charts written to PNG or SVG files (needs matplotlib: pip install 'evalstore\\[plot]').",
    no_args_is_help=True,
)

OutputOption = Annotated[
    Path,
    typer.Option(
        "--output",
        "-o",
        help="The file to write: .png or .svg (replaced if it exists).",
        dir_okay=False,
    ),
]
WidthOption = Annotated[
    int, typer.Option("--width", min=100, max=10_000, help="Width in pixels (at 100 dpi).")
]
HeightOption = Annotated[
    int, typer.Option("--height", min=100, max=10_000, help="Height in pixels (at 100 dpi).")
]
MaxPointsOption = Annotated[
    int,
    typer.Option(
        "--max-points",
        min=2,
        help="Longer series are downsampled on the server to about this many points "
        "(keeping the extremes).",
    ),
]
SplitOption = Annotated[
    str | None,
    typer.Option("--split", help="Only this split (train, eval, ...).", show_default=False),
]


def register_plot_commands(app: typer.Typer) -> None:
    """Add `plot series|across|trend|test|cost` to `app`."""
    app.add_typer(plot_app, name="plot")


def check_output(output: Path) -> None:
    """Before any work: a .png or .svg name (else exit 2), and matplotlib (else exit 1)."""
    if output.suffix.lower() not in PLOT_SUFFIXES:
        usage_error(
            f"--output: a plot is written as .png or .svg, got {output.suffix or 'no suffix'!r}"
        )
    try:
        require_matplotlib()
    except EvalstoreError as exc:
        err.print(error_line(str(exc)), soft_wrap=True)
        raise typer.Exit(1) from None


def draw(make: Callable[[], Figure], output: Path, width: int, height: int) -> None:
    """Build the figure, write it, and say so; nothing to draw or no write is exit 1."""
    from evalstore.plots.figures import save

    try:
        figure = make()
        save(figure, output, width_px=width, height_px=height)
    except EvalstoreError as exc:
        err.print(error_line(str(exc)), soft_wrap=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(error_line(f"cannot write {output}: {exc.strerror or exc}"), soft_wrap=True)
        raise typer.Exit(1) from None
    lines = sum(len(ax.get_lines()) for ax in figure.axes)
    out.print(
        f"wrote {output} ({width}x{height}, {lines} line{'s' if lines != 1 else ''})",
        soft_wrap=True,
    )


@plot_app.command("series")
def plot_series(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="Run id, a unique prefix of it, ObjectId, latest or previous."
        ),
    ],
    output: OutputOption,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric", "-m", help="Only this metric (repeat); default: all.", show_default=False
        ),
    ] = None,
    split: SplitOption = None,
    max_points: MaxPointsOption = sources.DEFAULT_MAX_POINTS,
    width: WidthOption = DEFAULT_WIDTH,
    height: HeightOption = DEFAULT_HEIGHT,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Metric curves of one run: one panel per metric, train and eval (each split) on it."""
    check_output(output)

    async def use(service: MetricsStorageService) -> tuple[str, list[Any]]:
        run = await service.select_evaluation_run(run_id)
        rows = await sources.series_rows(
            service, run["_id"], metrics=metric, split=split, max_points=max_points
        )
        return str(run["evaluation_run_id"]), rows

    name, rows = run_command(lambda: with_service(url, db, use))
    from evalstore.plots.figures import series_figure

    draw(lambda: series_figure(rows, title=name), output, width, height)


@plot_app.command("across")
def plot_across(
    output: OutputOption,
    metric: Annotated[str, typer.Option("--metric", "-m", help="The metric to compare.")],
    runs: Annotated[
        list[str] | None,
        typer.Option(
            "--runs",
            help="These runs (repeat, or separate with commas); default: the last --last runs.",
            show_default=False,
        ),
    ] = None,
    last: Annotated[
        int, typer.Option("--last", min=1, help="Without --runs: the last N runs with the metric.")
    ] = 5,
    split: SplitOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    max_points: MaxPointsOption = sources.DEFAULT_MAX_POINTS,
    width: WidthOption = DEFAULT_WIDTH,
    height: HeightOption = DEFAULT_HEIGHT,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """One metric's curve in several runs, on one chart (the last runs: oldest first)."""
    check_output(output)
    chosen = [part.strip() for item in runs or () for part in item.split(",") if part.strip()]

    async def use(service: MetricsStorageService) -> list[Any]:
        return await sources.across_runs_rows(
            service,
            metric,
            split=split,
            runs=chosen or None,
            last=last,
            max_points=max_points,
            branch=branch,
            environment=env,
            suite=suite,
        )

    rows = run_command(lambda: with_service(url, db, use))
    from evalstore.plots.figures import across_runs_figure

    draw(lambda: across_runs_figure(rows, metric=metric), output, width, height)


@plot_app.command("trend")
def plot_trend(
    output: OutputOption,
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    days: DaysOption = 30,
    width: WidthOption = DEFAULT_WIDTH,
    height: HeightOption = DEFAULT_HEIGHT,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """The score of each finished run in the window, oldest first (as `trend --by run`)."""
    check_output(output)
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)
    rows = run_command(
        lambda: with_service(url, db, lambda s: sources.score_trend_rows(s, **filters))
    )
    from evalstore.plots.figures import score_trend_figure

    draw(lambda: score_trend_figure(rows), output, width, height)


@plot_app.command("test")
def plot_test(
    test_id: Annotated[str, typer.Argument(metavar="TEST_ID")],
    output: OutputOption,
    duration: Annotated[
        bool, typer.Option("--duration", help="Plot its duration (ms) instead of its score.")
    ] = False,
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    tag: TagOption = None,
    match: MatchOption = "any",
    days: DaysOption = 30,
    width: WidthOption = DEFAULT_WIDTH,
    height: HeightOption = DEFAULT_HEIGHT,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """One test's score (or duration) in each run of the window; failures marked."""
    check_output(output)
    filters = filter_kwargs(since, until, env, branch, tag, match, days, suite)
    rows = run_command(
        lambda: with_service(
            url, db, lambda s: sources.history_rows(s, test_id, duration=duration, **filters)
        )
    )
    from evalstore.plots import figures

    value: Literal["score", "duration_ms"] = "duration_ms" if duration else "score"
    draw(
        lambda: figures.test_history_figure(rows, test_id=test_id, value=value),
        output,
        width,
        height,
    )


@plot_app.command("cost")
def plot_cost(
    output: OutputOption,
    since: SinceOption = None,
    until: UntilOption = None,
    env: EnvOption = None,
    branch: BranchOption = None,
    suite: SuiteOption = None,
    width: WidthOption = DEFAULT_WIDTH,
    height: HeightOption = DEFAULT_HEIGHT,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """Cost and tokens per day (UTC), as `cost --by day`."""
    check_output(output)
    window: dict[str, Any] = {
        "since": parse_when(since, "--since"),
        "until": parse_when(until, "--until"),
        "branch": branch,
        "environment": env,
        "suite": suite,
    }
    rows = run_command(lambda: with_service(url, db, lambda s: sources.cost_rows(s, **window)))
    from evalstore.plots.figures import cost_trend_figure

    draw(lambda: cost_trend_figure(rows), output, width, height)
