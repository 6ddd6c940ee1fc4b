"""The CLI's `series` commands: a run's metric series, and its best step.

- `evalstore series RUN` (the same as `evalstore series show RUN`): one line per
  metric and split (points, first and last step, last value, min and max with their
  steps); `--json` prints the points instead (downsampled to `--max-points`).
- `evalstore series best RUN --metric val_loss --mode min`: the best step and the
  steps since it (early stopping).

`series` is a group whose first argument, when it is not a subcommand's name, is the
run of `show`; a run literally named `show` or `best` is shown with `series show RUN`.
Exit codes: 1 when the command could not answer (unknown run, metric or split),
2 for bad options.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from evalstore.cli.common import (
    DbOption,
    JsonOption,
    UrlOption,
    err,
    out,
    run_command,
    with_service,
)
from evalstore.cli.options import check_choice, usage_error
from evalstore.cli.render import Column, print_json, table
from evalstore.service import MetricsStorageService

RunArgument = Annotated[
    str, typer.Argument(help="Run id, a unique prefix of one, `latest` or `previous`.")
]
SplitOption = Annotated[
    str | None,
    typer.Option("--split", help="Only this split (train, eval, ...).", show_default=False),
]
_HELP = ("--help", "-h")


class _ShowByDefault(TyperGroup):
    """A group that runs `show` when its first argument is not a subcommand."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in _HELP:
            args = ["show", *args]
        return super().parse_args(ctx, args)


series_app = typer.Typer(
    cls=_ShowByDefault,
    help="Metric series logged with `log_metrics`: `series RUN`, `series best RUN --metric M`.",
    no_args_is_help=True,
)


def register_series_commands(app: typer.Typer) -> None:
    """Add `series` (`series RUN`, `series show RUN`, `series best RUN`) to `app`."""
    app.add_typer(series_app, name="series")


def _value(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}"


SUMMARY_COLUMNS: list[Column] = [
    ("metric", lambda r: r["metric"]),
    ("split", lambda r: r["split"]),
    ("points", lambda r: r["count"]),
    ("steps", lambda r: f"{r['first_step']}-{r['last_step']}"),
    ("last", lambda r: _value(r["last"])),
    ("mean", lambda r: _value(r["mean"])),
    ("min@step", lambda r: f"{_value(r['min'])}@{r['min_step']}"),
    ("max@step", lambda r: f"{_value(r['max'])}@{r['max_step']}"),
]


@series_app.command("show")
def show(
    run: RunArgument,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Only this metric (repeat).", show_default=False),
    ] = None,
    split: SplitOption = None,
    max_points: Annotated[
        int,
        typer.Option(
            "--max-points",
            min=0,
            help="With --json: at most N points per series (min and max per step bucket); "
            "0 for all.",
        ),
    ] = 500,
    as_json: JsonOption = False,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """A run's metric series: one summary line per metric and split, or the points (--json)."""
    if max_points == 1:
        usage_error("--max-points: at least 2 (a min and a max per bucket), or 0 for all")

    async def use(service: MetricsStorageService) -> Any:
        if as_json:
            return await service.get_series(
                run, metrics=metric, split=split, max_points=max_points or None
            )
        return await service.get_series_summary(run, metrics=metric, split=split)

    rows = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, rows)
        return
    if not rows:
        err.print(f"run {run} logged no metric series (see `log_metrics` in the README)")
        return
    out.print(table(f"metric series of {run}", SUMMARY_COLUMNS, rows, right_aligned=_right_aligned))


def _right_aligned(header: str) -> bool:
    return header not in ("metric", "split")


@series_app.command("best")
def best(
    run: RunArgument,
    metric: Annotated[
        str, typer.Option("--metric", "-m", help="The metric (val_loss, accuracy, ...).")
    ],
    mode: Annotated[str, typer.Option("--mode", help="min (a loss) or max (an accuracy).")] = "min",
    split: SplitOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    db: DbOption = None,
) -> None:
    """The best step of one metric, and the steps since it (early stopping)."""
    check_choice(mode, ("min", "max"), "--mode")

    async def use(service: MetricsStorageService) -> Any:
        return await service.get_best_step(run, metric, mode=mode, split=split)  # type: ignore[arg-type]

    answer = run_command(lambda: with_service(url, db, use))
    if as_json:
        print_json(out, answer)
        return
    out.print(
        f"best {answer['metric']} ({answer['split']}, {answer['mode']}): "
        f"{_value(answer['value'])} at step {answer['step']}; last step {answer['last_step']}, "
        f"{answer['steps_since_best']} steps since the best"
    )
