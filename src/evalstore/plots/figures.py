"""Figures of plain lists, as the service answers them, and `save` to PNG or SVG.

Each function takes the rows of one service method and returns a matplotlib `Figure`
built without pyplot (no global figure registry, no display: the Agg canvas renders it),
so a caller, or a test, can read the plotted lines back from `figure.axes[i].get_lines()`.
A function raises `InvalidDataError` ("nothing to plot: ...") when the rows hold no value
to draw, rather than returning an empty chart.

- `series_figure(get_series(run))`: one axes per metric, one line per split on it;
- `across_runs_figure(get_metric_across_runs(metric), metric=...)`: one line per run;
- `score_trend_figure(get_score_trend(...))`: `score`, and `failed runs` as markers;
- `test_history_figure(get_test_trend(test_id))` (or `get_test_history`): the score or
  the duration, and `failed` as markers;
- `cost_trend_figure(get_cost("day"))`: `cost ($)` on one axes, `input tokens` and
  `output tokens` on another.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from evalstore.errors import InvalidDataError

DPI = 100
DEFAULT_WIDTH_PX = 1000
DEFAULT_HEIGHT_PX = 600
MIN_PX = 100
MAX_PX = 10_000
FORMATS: dict[str, Literal["png", "svg"]] = {".png": "png", ".svg": "svg"}
FAILING = ("failed", "error")
_MARKER_BELOW = 60
"""Series with fewer points than this get a marker on each point (one point draws no line)."""

Row = Mapping[str, Any]
_ONE_DAY = timedelta(days=1)


def plot_format(path: Path | str) -> Literal["png", "svg"]:
    """`png` or `svg`, from the file name's suffix (any case).

    Raises:
        InvalidDataError: another suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidDataError(
            f"{Path(path).name}: a plot is written as .png or .svg, got {suffix or 'no suffix'!r}"
        )
    return FORMATS[suffix]


def check_size(width_px: int, height_px: int) -> None:
    """Both sides are whole pixels between `MIN_PX` and `MAX_PX`.

    Raises:
        InvalidDataError: a side is not.
    """
    for name, value in (("width", width_px), ("height", height_px)):
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_PX <= value <= MAX_PX:
            raise InvalidDataError(
                f"{name} must be a whole number of pixels from {MIN_PX} to {MAX_PX}, got {value!r}"
            )


def save(
    figure: Figure,
    path: Path | str,
    *,
    width_px: int = DEFAULT_WIDTH_PX,
    height_px: int = DEFAULT_HEIGHT_PX,
) -> Path:
    """Write `figure` to `path` as PNG or SVG (by the suffix), `width_px` by `height_px` at 100 dpi.

    The file is written next to `path` and renamed over it, so a failed save never leaves a
    half-written plot. The SVG carries no date.

    Raises:
        InvalidDataError: the suffix is not .png or .svg, or a size is out of range.
        OSError: the file cannot be written.
    """
    target = Path(path)
    form = plot_format(target)
    check_size(width_px, height_px)
    figure.set_size_inches(width_px / DPI, height_px / DPI)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with warnings.catch_warnings():
            # A small size can leave constrained layout no room; the plot is still drawn.
            warnings.filterwarnings(
                "ignore", message="constrained_layout not applied", category=UserWarning
            )
            figure.savefig(
                partial,
                format=form,
                dpi=DPI,
                metadata={"Date": None} if form == "svg" else None,
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def new_figure(title: str | None = None) -> Figure:
    """An empty figure on the Agg canvas, laid out by constrained layout."""
    figure = Figure(figsize=(DEFAULT_WIDTH_PX / DPI, DEFAULT_HEIGHT_PX / DPI), dpi=DPI)
    figure.set_layout_engine("constrained")
    FigureCanvasAgg(figure)
    if title:
        figure.suptitle(title)
    return figure


def series_figure(series: Sequence[Row], *, title: str | None = None) -> Figure:
    """Metric curves of one run: one axes per metric, one line per split on it.

    Args:
        series: `get_series` rows: `{metric, split, points: [{step, value}], total,
            downsampled}`. Metrics keep the order of their first row; a split keeps its
            colour on every axes (train in one colour, eval in another).
        title: the figure's title (the run id, say).

    Raises:
        InvalidDataError: no row has a point.
    """
    by_metric: dict[str, list[Row]] = {}
    for row in series:
        if row.get("points"):
            by_metric.setdefault(str(row["metric"]), []).append(row)
    if not by_metric:
        raise InvalidDataError("nothing to plot: no metric series with points")
    colours = _colours(str(row.get("split")) for rows in by_metric.values() for row in rows)
    figure = new_figure(title)
    columns = 1 if len(by_metric) <= 3 else 2
    rows_needed = math.ceil(len(by_metric) / columns)
    grid = figure.subplots(rows_needed, columns, sharex=True, squeeze=False).flatten()
    for ax in grid[len(by_metric) :]:
        figure.delaxes(ax)
    for index, (ax, (metric, rows)) in enumerate(zip(grid, by_metric.items(), strict=False)):
        for row in rows:
            points = row["points"]
            split = str(row.get("split"))
            ax.plot(
                [p["step"] for p in points],
                [p["value"] for p in points],
                label=split,
                color=colours[split],
                **_markers(len(points)),
            )
        ax.set_title(metric + _downsampled_note(rows))
        ax.set_ylabel(metric)
        bottom = index + columns >= len(by_metric)  # nothing below it: it shows the steps
        if bottom:
            ax.tick_params(axis="x", labelbottom=True)
        _finish_axes(ax, xlabel="step" if bottom else None)
    return figure


def across_runs_figure(runs: Sequence[Row], *, metric: str, title: str | None = None) -> Figure:
    """One metric across runs: one line per run (per run and split when several splits show).

    Args:
        runs: `get_metric_across_runs` rows: `{evaluation_run_id, started_at, split,
            points: [{step, value}], total, downsampled}`, in the order given.
        metric: the metric's name (the axes' label).

    Raises:
        InvalidDataError: no row has a point.
    """
    drawn = [row for row in runs if row.get("points")]
    if not drawn:
        raise InvalidDataError(f"nothing to plot: no run has points of {metric!r}")
    several_splits = len({row.get("split") for row in drawn}) > 1
    figure = new_figure(title)
    ax = figure.subplots()
    for row in drawn:
        points = row["points"]
        label = str(row["evaluation_run_id"])
        if several_splits:
            label += f" ({row.get('split')})"
        ax.plot(
            [p["step"] for p in points],
            [p["value"] for p in points],
            label=label,
            **_markers(len(points)),
        )
    ax.set_title(metric + _downsampled_note(drawn))
    ax.set_ylabel(metric)
    _finish_axes(ax, xlabel="step")
    return figure


def score_trend_figure(points: Sequence[Row], *, title: str | None = None) -> Figure:
    """The score of each finished run, oldest first; failed runs marked.

    Args:
        points: `get_score_trend` rows: `{evaluation_run_id, started_at, status, score,
            num_passed, num_tests}`; runs without a score are left out.

    Raises:
        InvalidDataError: no run has a score.
    """
    scored = sorted((p for p in points if p.get("score") is not None), key=_started)
    if not scored:
        raise InvalidDataError("nothing to plot: no run in the window has a score")
    figure = new_figure(title)
    ax = figure.subplots()
    ax.plot(
        [p["started_at"] for p in scored],
        [p["score"] for p in scored],
        label="score",
        **_markers(len(scored)),
    )
    failed = [p for p in scored if p.get("status") == "failed"]
    if failed:
        ax.plot(
            [p["started_at"] for p in failed],
            [p["score"] for p in failed],
            label="failed runs",
            linestyle="none",
            marker="x",
            color="tab:red",
        )
    ax.set_title("score")
    ax.set_ylabel("score")
    _dates(ax, [p["started_at"] for p in scored])
    _finish_axes(ax, xlabel="run started (UTC)")
    return figure


def test_history_figure(
    history: Sequence[Row],
    *,
    test_id: str | None = None,  # noqa: PT028 (not a test: the name says what it draws)
    value: Literal["score", "duration_ms"] = "score",  # noqa: PT028
) -> Figure:
    """One test's score (or duration) in each run, oldest first; failures marked.

    When no run has the value (a pass/fail test without scores), the outcome is drawn
    instead: 1 passed, 0 failed, one point per run.

    Args:
        history: `get_test_trend` rows (oldest first) or `get_test_history` documents
            (newest first): each with `finished_at`, `status`, `passed` and `value`.
        test_id: named in the title.
        value: `score` or `duration_ms` (for `get_test_trend(..., value="duration")`).

    Raises:
        InvalidDataError: `history` is empty, or `value` is neither name.
    """
    if value not in ("score", "duration_ms"):
        raise InvalidDataError(f"value must be score or duration_ms, got {value!r}")
    runs = sorted(history, key=lambda row: row["finished_at"])
    if not runs:
        raise InvalidDataError(f"nothing to plot: no run of test {test_id!r}")
    figure = new_figure(test_id)
    ax = figure.subplots()
    measured = [row for row in runs if row.get(value) is not None]
    if measured:
        label = "score" if value == "score" else "duration (ms)"
        ax.plot(
            [row["finished_at"] for row in measured],
            [row[value] for row in measured],
            label=label,
            **_markers(len(measured)),
        )
        ax.set_ylabel(label)
        failed = [row for row in measured if row.get("status") in FAILING]
    else:
        label = "outcome"
        measured = runs
        ax.plot(
            [row["finished_at"] for row in runs],
            [1 if row.get("passed") else 0 for row in runs],
            label=label,
            drawstyle="steps-post",
            **_markers(len(runs)),
        )
        ax.set_yticks([0, 1], ["failed", "passed"])
        failed = [row for row in runs if row.get("status") in FAILING]
    if failed:
        ax.plot(
            [row["finished_at"] for row in failed],
            [row[value] if label != "outcome" else 0 for row in failed],
            label="failed",
            linestyle="none",
            marker="x",
            color="tab:red",
        )
    ax.set_title(label)
    _dates(ax, [row["finished_at"] for row in measured])
    _finish_axes(ax, xlabel="finished (UTC)")
    return figure


# The name reads as a pytest test; a test module that imports it must not collect it.
test_history_figure.__test__ = False  # type: ignore[attr-defined]


def cost_trend_figure(rows: Sequence[Row], *, title: str | None = None) -> Figure:
    """Cost and tokens per day: `cost ($)` on the first axes, tokens on the second.

    Args:
        rows: `get_cost("day")` rows: `{day: "YYYY-MM-DD", cost, input_tokens,
            output_tokens, ...}`; a day whose usage had no price has no cost point
            (its tokens still show).

    Raises:
        InvalidDataError: `rows` is empty.
    """
    days = sorted(
        ((date.fromisoformat(str(row["day"])), row) for row in rows if row.get("day")),
        key=lambda pair: pair[0],
    )
    if not days:
        raise InvalidDataError("nothing to plot: no usage recorded in this window")
    figure = new_figure(title)
    cost_ax, tokens_ax = figure.subplots(2, 1, sharex=True)
    priced = [(day, row["cost"]) for day, row in days if row.get("cost") is not None]
    if priced:
        cost_ax.plot(
            [day for day, _ in priced],
            [cost for _, cost in priced],
            label="cost ($)",
            **_markers(len(priced)),
        )
    else:
        cost_ax.text(
            0.5, 0.5, "no priced usage", ha="center", va="center", transform=cost_ax.transAxes
        )
    cost_ax.set_title("cost per day (UTC)")
    cost_ax.set_ylabel("USD")
    _finish_axes(cost_ax)
    for field, label in (("input_tokens", "input tokens"), ("output_tokens", "output tokens")):
        tokens_ax.plot(
            [day for day, _ in days],
            [int(row.get(field) or 0) for _, row in days],
            label=label,
            **_markers(len(days)),
        )
    tokens_ax.set_title("tokens per day (UTC)")
    tokens_ax.set_ylabel("tokens")
    _dates(tokens_ax, [day for day, _ in days])
    _finish_axes(tokens_ax, xlabel="day (UTC)")
    return figure


def _colours(splits: Any) -> dict[str, str]:
    colours: dict[str, str] = {}
    for split in splits:
        colours.setdefault(split, f"C{len(colours) % 10}")
    return colours


def _markers(count: int) -> dict[str, Any]:
    return {"marker": "o", "markersize": 3} if count < _MARKER_BELOW else {}


def _downsampled_note(rows: Sequence[Row]) -> str:
    thinned = [row for row in rows if row.get("downsampled")]
    if not thinned:
        return ""
    shown = sum(len(row["points"]) for row in thinned)
    total = sum(int(row.get("total") or 0) for row in thinned)
    return f" ({shown} of {total} points shown)"


def _started(point: Row) -> datetime:
    started: datetime = point["started_at"]
    return started


def _dates(ax: Axes, xs: Sequence[date | datetime]) -> None:
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    if len(set(xs)) == 1:  # matplotlib would spread one day over four years
        low, high = date2num([xs[0] - _ONE_DAY, xs[0] + _ONE_DAY])  # type: ignore[no-untyped-call]
        ax.set_xlim(float(low), float(high))


def _finish_axes(ax: Axes, *, xlabel: str | None = None) -> None:
    if xlabel:
        ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend(loc="best", fontsize="small")
