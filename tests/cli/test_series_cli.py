"""`evalstore series RUN`, `series show RUN` and `series best RUN` (issue 14, item 3).

The run `train-7`: loss on train (steps 0-4: 1.0, 0.5, 0.25, 0.5, 0.75) and on eval
(steps 0-4: 2.0, 1.5, 1.0, 1.0, 1.25), accuracy on eval (0.1, 0.4, 0.8, 0.6, 0.8).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from bson import ObjectId
from typer.testing import CliRunner

from evalstore import MetricsStorageService
from evalstore.cli.app import app
from evalstore.ids import point_id

UTC = timezone.utc
runner = CliRunner()
SERIES = {
    ("loss", "train"): [1.0, 0.5, 0.25, 0.5, 0.75],
    ("loss", "eval"): [2.0, 1.5, 1.0, 1.0, 1.25],
    ("accuracy", "eval"): [0.1, 0.4, 0.8, 0.6, 0.8],
}


@pytest.fixture
async def stored(service: MetricsStorageService) -> MetricsStorageService:
    oid = ObjectId()
    started = datetime(2025, 3, 3, 9, tzinfo=UTC)
    await service.upsert_evaluation_run(
        {"_id": oid, "evaluation_run_id": "train-7", "status": "running", "started_at": started}
    )
    await service.store_points(
        [
            {
                "_id": point_id(oid, metric, split, step),
                "evaluation_run_id": oid,
                "metric": metric,
                "split": split,
                "step": step,
                "value": value,
                "recorded_at": started,
            }
            for (metric, split), values in SERIES.items()
            for step, value in enumerate(values)
        ]
    )
    return service


async def invoke(service: MetricsStorageService, *args: str) -> tuple[int, str, str]:
    """The CLI (in a thread: it calls asyncio.run) against the test's database."""
    client = service.client
    argv = [*args, "--url", client.connection_string, "--db", client.database_name]
    result = await asyncio.to_thread(runner.invoke, app, argv)
    return result.exit_code, result.stdout, result.stderr


def cells(output: str, *first: str) -> list[str]:
    """The cells of the table row starting with the cells `first`."""
    for line in output.splitlines():
        row = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if row[: len(first)] == list(first):
            return row
    raise AssertionError(f"no row {first} in:\n{output}")


async def test_series_run_prints_a_summary_line_per_metric_and_split(
    stored: MetricsStorageService,
) -> None:
    code, out, err = await invoke(stored, "series", "train-7")

    assert (code, err) == (0, "")
    assert cells(out, "loss", "train") == [
        "loss", "train", "5", "0-4", "0.75", "0.6", "0.25@2", "1@0"
    ]  # fmt: skip
    assert cells(out, "loss", "eval")[6:] == ["1@2", "2@0"]  # earliest step of a tie
    assert cells(out, "accuracy", "eval")[7] == "0.8@2"
    shown = await invoke(stored, "series", "show", "train-7", "--metric", "loss")
    assert shown[0] == 0
    assert "accuracy" not in shown[1]
    assert cells(shown[1], "loss", "eval")[2] == "5"


async def test_series_json_gives_the_points(stored: MetricsStorageService) -> None:
    code, out, _ = await invoke(
        stored, "series", "train-7", "-m", "loss", "-m", "accuracy", "--split", "eval", "--json"
    )

    assert code == 0
    answer = json.loads(out)
    assert [(s["metric"], s["split"]) for s in answer] == [("accuracy", "eval"), ("loss", "eval")]
    assert answer[1]["points"] == [
        {"step": step, "value": value} for step, value in enumerate(SERIES[("loss", "eval")])
    ]
    code, out, _ = await invoke(stored, "series", "train-7", "--max-points", "2", "--json")
    assert code == 0
    for entry in json.loads(out):
        assert entry["downsampled"] is True
        assert len(entry["points"]) <= 2


async def test_series_best_gives_the_best_step_and_steps_since(
    stored: MetricsStorageService,
) -> None:
    code, out, err = await invoke(
        stored, "series", "best", "train-7", "--metric", "loss", "--split", "train"
    )

    assert (code, err) == (0, "")
    assert out.strip() == (
        "best loss (train, min): 0.25 at step 2; last step 4, 2 steps since the best"
    )
    code, out, _ = await invoke(
        stored, "series", "best", "train-7", "--metric", "accuracy", "--mode", "max", "--json"
    )
    assert code == 0
    assert json.loads(out) == {
        "metric": "accuracy",
        "split": "eval",
        "mode": "max",
        "step": 2,
        "value": 0.8,
        "last_step": 4,
        "steps_since_best": 2,
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("series", "best", "train-7", "--metric", "loss"), "several splits (eval, train)"),
        (("series", "best", "train-7", "--metric", "val_loss"), "no metric 'val_loss'"),
        (("series", "train-7", "--metric", "val_loss"), "its metrics: accuracy, loss"),
        (("series", "train-7", "--split", "test"), "no series of split 'test'"),
        (("series", "no-such-run"), "no evaluation run 'no-such-run'"),
        (("series", "best", "no-such-run", "--metric", "loss"), "no evaluation run"),
    ],
)
async def test_what_cannot_be_answered_is_one_line_and_exit_1(
    stored: MetricsStorageService, args: tuple[str, ...], message: str
) -> None:
    code, out, err = await invoke(stored, *args)

    assert code == 1
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ("series", "best", "train-7", "--metric", "loss", "--mode", "median"),
        ("series", "best", "train-7"),  # --metric is required
        ("series", "train-7", "--max-points", "1"),
        ("series", "train-7", "--max-points", "-3"),
        ("series", "train-7", "--no-such-option"),
    ],
)
async def test_bad_options_exit_2(stored: MetricsStorageService, args: tuple[str, ...]) -> None:
    code, _, _ = await invoke(stored, *args)

    assert code == 2


async def test_a_run_without_series_says_so(service: MetricsStorageService) -> None:
    await service.upsert_evaluation_run(
        {
            "_id": ObjectId(),
            "evaluation_run_id": "empty",
            "status": "running",
            "started_at": datetime(2025, 3, 3, tzinfo=UTC),
        }
    )

    code, out, err = await invoke(service, "series", "empty")

    assert (code, out) == (0, "")
    assert "logged no metric series" in err


def test_series_help_names_both_forms() -> None:
    result = runner.invoke(app, ["series", "--help"])

    assert result.exit_code == 0
    assert "series RUN" in result.stdout
    assert "best" in result.stdout
