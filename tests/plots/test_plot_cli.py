"""`evalstore plot ...` and `evalstore report run`, on each engine.

Two runs of seed 004's 50-epoch training (train loss, eval loss, eval accuracy), March 1st
and 2nd 2025. The second, in a git repository on branch `feature/plots`, also has a failing
test whose message holds `|`, a newline and `<script>`, a usage record of $0.25 and an
alert whose message holds markup: what the report must show literally.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))  # the shared history helpers
from analysis_helpers import RunClock, at, git_repo, invoke
from bson import ObjectId
from plot_helpers import ACCURACY, EPOCHS, EVAL_LOSS, TRAIN_LOSS, png_size, svg_root

from evalstore import MetricsStorageService, evaluation_run

MISSING = "error: plots need matplotlib: pip install 'evalstore[plot]'\n"
FAILING_TEST = "test_generalises[a|b]"
MESSAGE = "eval loss 0.61 | limit 0.5\nsee <script>alert(1)</script>"
ALERT_MESSAGE = "<b>eval loss</b> rose | twice"


async def record_training(
    service: MetricsStorageService, day: int, *, repo: Path | None = None, fail: bool = False
) -> dict[str, Any]:
    recorder = evaluation_run(
        service, config={"model": "mlp"}, clock=RunClock(at(day)), repo_path=repo or "."
    )
    async with recorder as run:
        for epoch, train, loss, accuracy in zip(
            EPOCHS, TRAIN_LOSS, EVAL_LOSS, ACCURACY, strict=True
        ):
            await run.log_metrics({"loss": train}, step=epoch, split="train")
            await run.log_metrics({"loss": loss, "accuracy": accuracy}, step=epoch, split="eval")
        await run.record_test("test_converges", passed=True, score=100.0)
        if fail:
            await run.record_test(FAILING_TEST, passed=False, score=20.0, message=MESSAGE)
            await run.record_usage("acme-small", input_tokens=1000, output_tokens=50, cost=0.25)
    return recorder.document


@pytest.fixture
async def runs(service: MetricsStorageService, tmp_path: Path) -> list[dict[str, Any]]:
    first = await record_training(service, 1)
    repo = git_repo(tmp_path / "repo", "feature/plots")
    second = await record_training(service, 2, repo=repo, fail=True)
    await service.save_alert(
        {
            "_id": ObjectId(),
            "key": "loss-rise",
            "rule": "loss-rise",
            "level": "warning",
            "state": "firing",
            "metric": "metrics.loss",
            "value": 0.61,
            "threshold": 0.5,
            "message": ALERT_MESSAGE,
            "evaluation_run_id": second["_id"],
            "fired_at": at(2, 11),
        }
    )
    return [first, second]


def wrote(result: Any, path: Path, size: str, lines: int) -> None:
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {path} ({size}, {lines} line{'s' if lines != 1 else ''})\n"
    assert result.stderr == ""


# -- plot series -----------------------------------------------------------------------------


async def test_plot_series_writes_a_png_of_the_requested_size(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "curves.png"
    run_id = runs[0]["evaluation_run_id"]
    result = await invoke(
        service, "plot", "series", run_id, "-o", str(path), "--width", "800", "--height", "500"
    )
    wrote(result, path, "800x500", 3)  # accuracy (eval), loss (eval, train)
    assert png_size(path) == (800, 500)


async def test_plot_series_of_one_metric_and_split_as_svg(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "loss.svg"
    result = await invoke(
        service, "plot", "series", "latest", "--metric", "loss", "--split", "train", "-o", str(path)
    )
    wrote(result, path, "1000x600", 1)
    assert svg_root(path).get("viewBox") == "0 0 720 432"


async def test_plot_series_of_a_metric_never_logged_writes_nothing(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "none.png"
    result = await invoke(service, "plot", "series", "latest", "-m", "f1", "-o", str(path))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert not path.exists()


async def test_plot_series_of_an_unknown_run_is_one_error(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    result = await invoke(service, "plot", "series", "nope", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1


# -- usage errors and a missing matplotlib ---------------------------------------------------

COMMANDS = [
    ("series", "RUN"),
    ("across", "--metric", "loss"),
    ("trend",),
    ("test", "test_converges"),
    ("cost",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
@pytest.mark.parametrize("name", ["plot.jpg", "plot", "plot.png.txt"])
async def test_a_file_that_is_not_png_or_svg_is_a_usage_error(
    service: MetricsStorageService, tmp_path: Path, command: tuple[str, ...], name: str
) -> None:
    result = await invoke(service, "plot", *command, "-o", str(tmp_path / name))
    assert result.exit_code == 2, result.output
    assert "a plot is written as .png or .svg" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
async def test_without_matplotlib_every_plot_command_says_how_to_install_it(
    service: MetricsStorageService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = await invoke(service, "plot", *command, "-o", str(tmp_path / "plot.png"))
    assert result.exit_code == 1
    assert result.stderr == MISSING
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


async def test_a_size_out_of_range_is_a_usage_error(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    result = await invoke(service, "plot", "trend", "-o", str(tmp_path / "t.png"), "--width", "5")
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []


# -- across, trend, test, cost ---------------------------------------------------------------


async def test_plot_across_named_runs_and_the_last_runs(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    ids = [run["evaluation_run_id"] for run in runs]
    path = tmp_path / "across.png"
    result = await invoke(
        service, "plot", "across", "-m", "loss", "--split", "eval", "--runs", ",".join(ids),
        "-o", str(path),
    )  # fmt: skip
    wrote(result, path, "1000x600", 2)

    result = await invoke(service, "plot", "across", "-m", "loss", "--last", "5", "-o", str(path))
    wrote(result, path, "1000x600", 4)  # two runs, train and eval each
    assert png_size(path) == (1000, 600)


async def test_plot_trend_test_and_cost(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    window = ("--since", "2025-03-01", "--until", "2025-04-01")
    path = tmp_path / "trend.svg"
    result = await invoke(service, "plot", "trend", *window, "-o", str(path))
    assert result.exit_code == 0, result.output
    wrote(result, path, "1000x600", 1)  # every run completed: no failed-run markers
    svg_root(path)

    path = tmp_path / "test.png"
    result = await invoke(service, "plot", "test", "test_converges", *window, "-o", str(path))
    wrote(result, path, "1000x600", 1)

    path = tmp_path / "cost.png"
    result = await invoke(service, "plot", "cost", "-o", str(path))
    wrote(result, path, "1000x600", 3)  # cost; input and output tokens
    assert png_size(path) == (1000, 600)


async def test_nothing_to_plot_is_an_error_and_writes_no_file(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    await record_training(service, 1)  # no usage recorded
    result = await invoke(service, "plot", "cost", "-o", str(tmp_path / "cost.png"))
    assert result.exit_code == 1
    assert result.stderr == "error: nothing to plot: no usage recorded in this window\n"
    assert not (tmp_path / "cost.png").exists()


# -- report run --------------------------------------------------------------------------------

SECTIONS = ["Provenance", "Aggregates", "Failures (1)", "Alerts (1)", "Cost", "Metric series",
            "Plots"]  # fmt: skip


async def test_report_run_as_markdown(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    run = runs[1]
    report = tmp_path / "out" / "report.md"
    report.parent.mkdir()
    result = await invoke(service, "report", "run", run["evaluation_run_id"], "-o", str(report))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {report} (1 failing tests, 1 alerts, 2 plots)\n"
    text = report.read_text()

    assert re.findall(r"^## (.*)$", text, re.MULTILINE) == SECTIONS
    assert "| branch | feature/plots |" in text
    assert f"| commit | {run['git_commit']} |" in text
    assert "| dirty | no |" in text
    assert "| tests | 2 |" in text
    assert "| passed | 1 |" in text
    # recorded text stays inside its cell, literally
    assert "test\\_generalises\\[a&#124;b\\]" in text
    assert "eval loss 0.61 &#124; limit 0.5<br>see &lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>" not in text
    assert "<b>" not in text
    assert "&lt;b&gt;eval loss&lt;/b&gt; rose &#124; twice" in text
    assert "| cost | $0.2500 |" in text
    assert "| acme-small |" in text
    # the series summary: eval loss is lowest at epoch 30
    (loss_eval,) = [line for line in text.splitlines() if line.startswith("| loss | eval |")]
    assert f"{min(EVAL_LOSS):.6g} (step 30)" in loss_eval
    # the plots, next to the report, linked by relative name
    run_id = run["evaluation_run_id"]
    for metric in ("accuracy", "loss"):
        name = f"{run_id}-{metric}.png"
        assert f"![{metric}]({name})" in text
        assert png_size(report.parent / name) == (1000, 600)
    # every table row has as many cells as its header
    for table in re.findall(r"((?:^\|.*\|\n)+)", text, re.MULTILINE):
        widths = {row.count("|") - row.count("\\|") for row in table.splitlines()}
        assert len(widths) == 1, table


async def test_report_run_as_html_escapes_every_recorded_value(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    result = await invoke(
        service, "report", "run", "latest", "-o", str(report), "--width", "640", "--height", "480"
    )
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert html.escape(MESSAGE) in text
    assert html.escape(ALERT_MESSAGE) in text
    assert html.escape(FAILING_TEST) in text
    assert "<script>" not in text
    assert "<b>" not in text
    for section in SECTIONS:
        assert f"<h2>{html.escape(section)}</h2>" in text
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert sources == [f"{runs[1]['evaluation_run_id']}-{m}.png" for m in ("accuracy", "loss")]
    assert all(png_size(tmp_path / source) == (640, 480) for source in sources)


async def test_report_run_without_matplotlib_still_writes_the_report(
    service: MetricsStorageService,
    runs: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    report = tmp_path / "out" / "report.md"
    report.parent.mkdir()
    result = await invoke(service, "report", "run", "latest", "-o", str(report))
    assert result.exit_code == 0, result.output
    note = "Plots not drawn: plots need matplotlib: pip install 'evalstore[plot]'"
    assert result.stderr == f"note: {note}\n"
    assert "(1 failing tests, 1 alerts, 0 plots)" in result.stdout
    assert "Plots not drawn: plots need matplotlib" in report.read_text()
    assert [p.name for p in report.parent.iterdir()] == ["report.md"]


async def test_report_run_without_plots_or_series_or_failures(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    report = tmp_path / "out" / "first.md"
    report.parent.mkdir()
    run_id = runs[0]["evaluation_run_id"]
    result = await invoke(service, "report", "run", run_id, "-o", str(report), "--no-plots")
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert "## Failures (0)\n\nNo test failed or errored." in text
    assert "## Alerts (0)\n\nNo alert was raised for this run." in text
    assert "No usage was recorded for this run." in text
    assert "Plots not drawn (--no-plots)." in text
    assert [p.name for p in report.parent.iterdir()] == ["first.md"]


async def test_report_run_refuses_other_suffixes(
    service: MetricsStorageService, runs: list[dict[str, Any]], tmp_path: Path
) -> None:
    result = await invoke(service, "report", "run", "latest", "-o", str(tmp_path / "r.pdf"))
    assert result.exit_code == 2
    assert "a report is written as .md or .html" in result.stderr
    result = await invoke(service, "report", "run", "nope", "-o", str(tmp_path / "r.md"))
    assert result.exit_code == 1
    assert not (tmp_path / "r.md").exists()
