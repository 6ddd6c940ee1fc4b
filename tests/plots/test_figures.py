"""The figures read back from the figure object (lines, labels, data), and the files they save.

No database: each figure takes plain lists, as the service answers them. The last tests
write a recorded run's plots through `write_run_plots` on each engine.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))  # the shared history helpers
from analysis_helpers import RunClock, at
from matplotlib.figure import Figure
from plot_helpers import (
    ACCURACY,
    EPOCHS,
    EVAL_LOSS,
    TRAIN_LOSS,
    decoded_shape,
    png_size,
    points,
    simulated_series,
    svg_root,
)

import evalstore.plots
from evalstore import MetricsStorageService, evaluation_run
from evalstore.errors import ConfigurationError, InvalidDataError
from evalstore.plots import figures
from evalstore.plots.auto import plot_names, write_run_plots

UTC = timezone.utc


def lines_of(figure: Figure) -> dict[str, dict[str, tuple[list[Any], list[Any], str]]]:
    """Per axes title: per line label, its x data, y data and colour."""
    return {
        ax.get_title(): {
            str(line.get_label()): (
                list(line.get_xdata()),  # type: ignore[arg-type]
                list(line.get_ydata()),  # type: ignore[arg-type]
                str(line.get_color()),
            )
            for line in ax.get_lines()
        }
        for ax in figure.axes
    }


# -- series of one run -------------------------------------------------------------------


def test_a_50_epoch_run_has_one_axes_per_metric_and_one_line_per_split() -> None:
    figure = figures.series_figure(simulated_series(), title="run-1")

    found = lines_of(figure)
    assert list(found) == ["accuracy", "loss"]
    assert list(found["accuracy"]) == ["eval"]
    assert list(found["loss"]) == ["eval", "train"]
    assert found["loss"]["train"][:2] == (EPOCHS, TRAIN_LOSS)
    assert found["loss"]["eval"][:2] == (EPOCHS, EVAL_LOSS)
    assert found["accuracy"]["eval"][:2] == (EPOCHS, ACCURACY)
    assert sum(len(ax.get_lines()) for ax in figure.axes) == 3
    # a split keeps its colour on every axes
    assert found["accuracy"]["eval"][2] == found["loss"]["eval"][2] != found["loss"]["train"][2]
    assert figure.get_suptitle() == "run-1"
    assert [ax.get_ylabel() for ax in figure.axes] == ["accuracy", "loss"]
    assert figure.axes[-1].get_xlabel() == "step"


def test_the_input_order_of_metrics_is_kept_and_empty_series_are_left_out() -> None:
    series = [
        {"metric": "lr", "split": "train", "points": points([1e-4] * 50), "total": 50},
        {"metric": "loss", "split": "train", "points": points(TRAIN_LOSS), "total": 50},
        {"metric": "unused", "split": "train", "points": [], "total": 0},
    ]
    figure = figures.series_figure(series)
    assert [ax.get_title() for ax in figure.axes] == ["lr", "loss"]


def test_a_downsampled_series_says_how_many_points_it_shows() -> None:
    shown = [{"step": 0, "value": 3.0}, {"step": 5000, "value": 0.1}, {"step": 9999, "value": 0.2}]
    figure = figures.series_figure(
        [{"metric": "loss", "split": "train", "points": shown, "total": 10000, "downsampled": True}]
    )
    assert figure.axes[0].get_title() == "loss (3 of 10000 points shown)"
    assert list(figure.axes[0].get_lines()[0].get_xdata()) == [0, 5000, 9999]  # type: ignore[arg-type]


def test_many_metrics_go_on_two_columns_with_no_empty_axes() -> None:
    names = ["a", "b", "c", "d", "e"]
    series = [{"metric": n, "split": "train", "points": points(TRAIN_LOSS)} for n in names]
    figure = figures.series_figure(series)
    assert [ax.get_title() for ax in figure.axes] == names
    assert all(len(ax.get_lines()) == 1 for ax in figure.axes)


def test_a_run_without_points_is_nothing_to_plot() -> None:
    with pytest.raises(InvalidDataError, match="nothing to plot"):
        figures.series_figure([])
    with pytest.raises(InvalidDataError, match="nothing to plot"):
        figures.series_figure([{"metric": "loss", "split": "train", "points": []}])


# -- one metric across runs ----------------------------------------------------------------


def test_one_metric_across_runs_is_one_line_per_run() -> None:
    runs = [
        {
            "evaluation_run_id": f"run-{i}",
            "started_at": at(i),
            "split": "eval",
            "points": points([v + i for v in EVAL_LOSS]),
            "total": 50,
            "downsampled": False,
        }
        for i in (1, 2, 3)
    ]
    figure = figures.across_runs_figure(runs, metric="loss")
    found = lines_of(figure)["loss"]
    assert list(found) == ["run-1", "run-2", "run-3"]
    for i in (1, 2, 3):
        assert found[f"run-{i}"][:2] == (EPOCHS, [v + i for v in EVAL_LOSS])


def test_across_runs_names_the_split_when_several_show() -> None:
    runs = [
        {"evaluation_run_id": "r", "split": "train", "points": points(TRAIN_LOSS)},
        {"evaluation_run_id": "r", "split": "eval", "points": points(EVAL_LOSS)},
    ]
    figure = figures.across_runs_figure(runs, metric="loss")
    assert list(lines_of(figure)["loss"]) == ["r (train)", "r (eval)"]
    with pytest.raises(InvalidDataError, match="no run has points of 'loss'"):
        figures.across_runs_figure([], metric="loss")


# -- score trend, test history, cost -------------------------------------------------------


def test_score_trend_leaves_out_runs_without_a_score_and_marks_failed_runs() -> None:
    trend = [
        {"evaluation_run_id": "a", "started_at": at(1), "status": "completed", "score": 80.0},
        {"evaluation_run_id": "b", "started_at": at(2), "status": "failed", "score": 50.0},
        {"evaluation_run_id": "c", "started_at": at(3), "status": "completed", "score": None},
        {"evaluation_run_id": "d", "started_at": at(4), "status": "completed", "score": 90.0},
    ]
    found = lines_of(figures.score_trend_figure(trend))["score"]
    assert found["score"][:2] == ([at(1), at(2), at(4)], [80.0, 50.0, 90.0])
    assert found["failed runs"][:2] == ([at(2)], [50.0])
    with pytest.raises(InvalidDataError, match="no run in the window has a score"):
        figures.score_trend_figure(trend[2:3])


def history(scores: list[float | None], statuses: list[str]) -> list[dict[str, Any]]:
    """`get_test_history` documents: newest first."""
    rows = [
        {
            "finished_at": at(day),
            "score": score,
            "duration_ms": 100.0 * day,
            "status": status,
            "passed": status == "passed",
        }
        for day, (score, status) in enumerate(zip(scores, statuses, strict=True), start=1)
    ]
    return rows[::-1]


def test_a_test_history_is_drawn_oldest_first_with_its_failures() -> None:
    rows = history([90.0, 40.0, None, 95.0], ["passed", "failed", "error", "passed"])
    found = lines_of(figures.test_history_figure(rows, test_id="test_x"))["score"]
    assert found["score"][:2] == ([at(1), at(2), at(4)], [90.0, 40.0, 95.0])
    assert found["failed"][:2] == ([at(2)], [40.0])  # the error has no score to mark

    durations = lines_of(figures.test_history_figure(rows, value="duration_ms"))
    assert durations["duration (ms)"]["duration (ms)"][1] == [100.0, 200.0, 300.0, 400.0]


def test_a_test_without_scores_is_drawn_as_its_outcomes() -> None:
    rows = history([None, None, None], ["passed", "failed", "passed"])
    figure = figures.test_history_figure(rows, test_id="test_x")
    found = lines_of(figure)["outcome"]
    assert found["outcome"][:2] == ([at(1), at(2), at(3)], [1, 0, 1])
    assert found["failed"][:2] == ([at(2)], [0])
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["failed", "passed"]
    with pytest.raises(InvalidDataError, match="no run of test 'test_x'"):
        figures.test_history_figure([], test_id="test_x")


def test_cost_per_day_skips_unpriced_days_but_keeps_their_tokens() -> None:
    rows = [
        {"day": "2025-03-02", "cost": None, "input_tokens": 500, "output_tokens": 5},
        {"day": "2025-03-01", "cost": 1.25, "input_tokens": 1000, "output_tokens": 10},
        {"day": "2025-03-03", "cost": 0.5, "input_tokens": 200, "output_tokens": 2},
    ]
    figure = figures.cost_trend_figure(rows)
    cost_ax, tokens_ax = figure.axes
    days = [datetime(2025, 3, d, tzinfo=UTC).date() for d in (1, 2, 3)]
    assert [(list(line.get_xdata()), list(line.get_ydata())) for line in cost_ax.get_lines()] == [  # type: ignore[arg-type]
        ([days[0], days[2]], [1.25, 0.5])
    ]
    assert {
        str(line.get_label()): list(line.get_ydata())  # type: ignore[arg-type]
        for line in tokens_ax.get_lines()
    } == {"input tokens": [1000, 500, 200], "output tokens": [10, 5, 2]}
    with pytest.raises(InvalidDataError, match="no usage"):
        figures.cost_trend_figure([])


# -- saving -------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(1000, 600), (801, 333), (120, 100)])
def test_a_png_decodes_as_an_image_of_the_requested_size(
    tmp_path: Path, width: int, height: int
) -> None:
    path = figures.save(
        figures.series_figure(simulated_series()),
        tmp_path / "curves.png",
        width_px=width,
        height_px=height,
    )
    assert path == tmp_path / "curves.png"
    assert png_size(path) == (width, height)
    assert decoded_shape(path)[:2] == (height, width)
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no partial file left


def test_an_svg_parses_as_xml_of_the_requested_size(tmp_path: Path) -> None:
    figure = figures.series_figure(simulated_series())
    path = figures.save(figure, tmp_path / "curves.SVG", width_px=800, height_px=500)
    root = svg_root(path)
    assert (root.get("width"), root.get("height")) == ("576pt", "360pt")  # 8 x 5 inches
    assert root.get("viewBox") == "0 0 576 360"
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 3
    assert b"<dc:date>" not in path.read_bytes()  # no date: a plot rewritten diffs cleanly


def test_save_refuses_other_suffixes_and_sizes(tmp_path: Path) -> None:
    figure = figures.series_figure(simulated_series())
    with pytest.raises(InvalidDataError, match=r"\.png or \.svg, got '\.jpg'"):
        figures.save(figure, tmp_path / "curves.jpg")
    with pytest.raises(InvalidDataError, match="no suffix"):
        figures.save(figure, tmp_path / "curves")
    with pytest.raises(InvalidDataError, match="width must be"):
        figures.save(figure, tmp_path / "curves.png", width_px=10)
    with pytest.raises(InvalidDataError, match="height must be"):
        figures.save(figure, tmp_path / "curves.png", height_px=1.5)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        figures.save(figure, tmp_path / "missing" / "curves.png")
    assert list(tmp_path.iterdir()) == []


def test_the_package_imports_without_matplotlib_and_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert evalstore.plots.series_figure is figures.series_figure  # lazily, from figures
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigurationError) as caught:
        evalstore.plots.require_matplotlib()
    assert str(caught.value) == "plots need matplotlib: pip install 'evalstore[plot]'"
    with pytest.raises(ConfigurationError):
        _ = evalstore.plots.save


# -- plots written when a run finishes ------------------------------------------------------


def test_plot_names_are_safe_file_names_that_never_collide() -> None:
    assert plot_names("2025-03-01T10-00-00Z-main-abc", ["loss", "train/loss", "train_loss"]) == {
        "loss": "2025-03-01T10-00-00Z-main-abc-loss.png",
        "train/loss": "2025-03-01T10-00-00Z-main-abc-train_loss.png",
        "train_loss": "2025-03-01T10-00-00Z-main-abc-train_loss-2.png",
    }
    assert plot_names("r", ["../x", "Loss", "loss"]) == {
        "../x": "r-x.png",
        "Loss": "r-Loss.png",
        "loss": "r-loss-2.png",  # a case-insensitive file system would merge them
    }


async def record_training(service: MetricsStorageService, day: int = 1) -> dict[str, Any]:
    """The 50-epoch run, logged through `log_metrics`; its run document at the end."""
    recorder = evaluation_run(service, config={"model": "mlp"}, clock=RunClock(at(day)))
    async with recorder as run:
        for epoch, train, loss, accuracy in zip(
            EPOCHS, TRAIN_LOSS, EVAL_LOSS, ACCURACY, strict=True
        ):
            await run.log_metrics({"loss": train}, step=epoch, split="train")
            await run.log_metrics({"loss": loss, "accuracy": accuracy}, step=epoch, split="eval")
        await run.record_test("test_converges", passed=True, score=100.0)
    return recorder.document


async def test_a_finished_run_writes_one_png_per_metric(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    document = await record_training(service)
    run_id = document["evaluation_run_id"]

    written = await write_run_plots(service, document, tmp_path / "plots")

    assert written == [
        tmp_path / "plots" / f"{run_id}-accuracy.png",
        tmp_path / "plots" / f"{run_id}-loss.png",
    ]
    assert all(png_size(path) == (1000, 600) for path in written)
    # what was drawn: the series read back, exactly as logged
    found = lines_of(figures.series_figure(await service.get_series(document["_id"])))
    assert found["loss"]["train"][:2] == (EPOCHS, TRAIN_LOSS)
    assert found["loss"]["eval"][:2] == (EPOCHS, EVAL_LOSS)
    assert found["accuracy"]["eval"][:2] == (EPOCHS, ACCURACY)


async def test_a_run_without_series_writes_nothing(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    recorder = evaluation_run(service, config={"model": "mlp"}, clock=RunClock(at(1)))
    async with recorder as run:
        await run.record_test("test_a", passed=True, score=1.0)
    assert await write_run_plots(service, recorder.document, tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()


async def test_write_run_plots_never_raises_into_the_run(
    service: MetricsStorageService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = await record_training(service)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with caplog.at_level(logging.WARNING, logger="evalstore.plots.auto"):
        assert await write_run_plots(service, document, blocked) == []
        monkeypatch.setitem(sys.modules, "matplotlib", None)
        assert await write_run_plots(service, document, tmp_path / "plots") == []
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert warnings[1] == (
        f"plots of run {document['evaluation_run_id']} not written to {tmp_path / 'plots'}: "
        "plots need matplotlib: pip install 'evalstore[plot]'"
    )
    assert not (tmp_path / "plots").exists()


async def test_write_run_plots_of_a_run_that_is_not_stored_logs_and_returns_nothing(
    service: MetricsStorageService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bson import ObjectId

    ghost = {"_id": ObjectId(), "evaluation_run_id": "ghost", "started_at": at(1)}
    with caplog.at_level(logging.WARNING, logger="evalstore.plots.auto"):
        assert await write_run_plots(service, ghost, tmp_path) == []
    assert "plots of run ghost not written" in caplog.text


def test_times_are_utc_datetimes_on_the_x_axis() -> None:
    trend = [
        {"started_at": at(1) + timedelta(hours=h), "status": "completed", "score": float(h)}
        for h in range(3)
    ]
    figure = figures.score_trend_figure(trend)
    assert list(figure.axes[0].get_lines()[0].get_xdata()) == [t["started_at"] for t in trend]  # type: ignore[arg-type]
