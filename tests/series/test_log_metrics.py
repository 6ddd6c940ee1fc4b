"""`log_metrics`: points per step, journaled, stored once per (run, metric, split, step)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import RunClock, at

from evalstore import InvalidDataError, MetricsStorageService, evaluation_run, training_run


def recorder(service: MetricsStorageService) -> Any:
    return evaluation_run(service, config={"m": 1}, clock=RunClock(at(1)), monitor=False)


def epochs(n: int = 50) -> list[dict[str, float]]:
    """Seed 004's scenario: loss falling, accuracy rising, a learning rate decaying."""
    return [
        {
            "loss": round(2.0 * math.exp(-epoch / 12) + 0.01 * (epoch % 3), 6),
            "accuracy": round(1 - math.exp(-epoch / 10) * 0.9, 6),
            "lr": 1e-3 * 0.95**epoch,
        }
        for epoch in range(n)
    ]


async def points_of(service: MetricsStorageService, run_oid: Any) -> list[dict[str, Any]]:
    return await service.client.read(
        "metric_points",
        {"evaluation_run_id": run_oid},
        sort=[("metric", 1), ("split", 1), ("step", 1)],
        action="read points",
    )


async def test_a_50_epoch_run_reads_back_exactly(service: MetricsStorageService) -> None:
    values = epochs()
    async with recorder(service) as run:
        for epoch, step_values in enumerate(values):
            await run.log_metrics(step_values, step=epoch)
            await run.log_metrics({"loss": step_values["loss"] + 0.05}, step=epoch, split="eval")
    points = await points_of(service, run.document["_id"])
    assert len(points) == 50 * 4
    got = {(p["metric"], p["split"], p["step"]): p["value"] for p in points}
    for epoch, step_values in enumerate(values):
        for name, value in step_values.items():
            assert got[(name, "train", epoch)] == value
        assert got[("loss", "eval", epoch)] == step_values["loss"] + 0.05


async def test_a_step_logged_again_replaces_its_value(service: MetricsStorageService) -> None:
    async with recorder(service) as run:
        await run.log_metrics({"loss": 1.0}, step=3)
        await run.log_metrics({"loss": 0.5}, step=3)  # the same batch
    points = await points_of(service, run.document["_id"])
    assert [(p["step"], p["value"]) for p in points] == [(3, 0.5)]

    async with recorder(service) as later:
        await later.log_metrics({"loss": 2.0}, step=0)
        await later._store_points(service)  # stored, then logged again in another batch
        await later.log_metrics({"loss": 1.5}, step=0)
    points = await points_of(service, later.document["_id"])
    assert [(p["step"], p["value"]) for p in points] == [(0, 1.5)]


@pytest.mark.parametrize(
    ("values", "step", "split", "message"),
    [
        ({"loss": math.nan}, 0, "train", "metrics.loss must be finite"),
        ({"loss": math.inf}, 0, "train", "metrics.loss must be finite"),
        ({"loss": "0.3"}, 0, "train", "metrics.loss must be a number"),
        ({"loss": True}, 0, "train", "metrics.loss must be a number"),
        ({"loss": 1.0}, -1, "train", "step must be a non-negative integer"),
        ({"loss": 1.0}, 1.5, "train", "step must be a non-negative integer"),
        ({"val.loss": 1.0}, 0, "train", "must not contain '$' or '.'"),
        ({"$loss": 1.0}, 0, "train", "must not contain '$' or '.'"),
        ({"loss": 1.0}, 0, "train set", "split must be letters, digits"),
        ({}, 0, "train", "non-empty dict"),
    ],
)
async def test_bad_input_is_one_line_and_nothing_is_logged(
    service: MetricsStorageService, values: Any, step: Any, split: Any, message: str
) -> None:
    async with recorder(service) as run:
        with pytest.raises(InvalidDataError) as error:
            await run.log_metrics(values, step=step, split=split)
        await run.log_metrics({"ok": 1.0}, step=0)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert [p["metric"] for p in await points_of(service, run.document["_id"])] == ["ok"]


def train(run: Any, epochs_run: int) -> None:
    """A plain training loop that diverges at the end."""
    for epoch, step_values in enumerate(epochs(epochs_run)):
        run.log_metrics(step_values, step=epoch)
    raise RuntimeError("diverged")


def test_a_plain_training_loop_records_through_training_run(tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'store'}"
    run = training_run(config={"lr": 1e-3}, monitor=False, **_stored_in(store))
    with pytest.raises(RuntimeError, match="diverged"), run:
        train(run, 10)
    assert run.document["status"] == "failed"  # the block raised: finalised as failed

    import asyncio

    async def count() -> int:
        from evalstore import MongoDBClient

        async with MongoDBClient(store, "local") as client:
            return await client.count("metric_points", {}, action="count")

    assert asyncio.run(count()) == 30


def _stored_in(store: str) -> dict[str, Any]:
    from evalstore import MetricsStorageService, MongoDBClient

    return {"service": MetricsStorageService(MongoDBClient(store, "local"))}


KILLED = textwrap.dedent(
    """
    import asyncio, os, sys
    from evalstore import evaluation_run

    async def main():
        run = evaluation_run(config={"m": 1}, monitor=False)
        await run.start()
        for step in range(10_000):
            await run.log_metrics({f"m{i}": step + i / 10 for i in range(10)}, step=step)
        print("acknowledged", flush=True)  # every log_metrics call returned
        os._exit(9)  # killed: no finish

    asyncio.run(main())
    """
)


def test_100000_points_survive_a_kill_and_a_replay_exactly_once(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        MONGODB_ENABLED="true",
        MONGODB_CONNECTION_STRING=f"file://{tmp_path / 'store'}",
        MONGODB_DATABASE="local",
        EVALSTORE_SPOOL_DIR=str(tmp_path / "spool"),
    )
    started = time.monotonic()
    killed = subprocess.run([sys.executable, "-c", KILLED], env=env, capture_output=True, text=True)
    assert (killed.returncode, killed.stdout) == (9, "acknowledged\n"), killed.stderr
    evalstore = str(Path(sys.executable).parent / "evalstore")
    for _ in range(2):  # a second sync finds nothing more to do, and duplicates nothing
        synced = subprocess.run(
            [evalstore, "sync", "--json"], env=env, capture_output=True, text=True
        )
        assert synced.returncode == 0, synced.stderr
    import asyncio

    from evalstore import MongoDBClient

    async def read() -> tuple[int, list[dict[str, Any]]]:
        async with MongoDBClient(env["MONGODB_CONNECTION_STRING"], "local") as client:
            total = await client.count("metric_points", {}, action="count")
            last = await client.read(
                "metric_points", {"metric": "m9", "step": 9_999}, action="read"
            )
            return total, last

    total, [last] = asyncio.run(read())
    assert total == 100_000
    assert last["value"] == 9_999 + 0.9
    assert time.monotonic() - started < 120
    assert json.loads(synced.stdout)["journals"] == 0


async def test_curves_are_written_when_a_training_run_finishes(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    run = evaluation_run(
        service, config={"m": 1}, clock=RunClock(at(1)), monitor=False, plots_dir=tmp_path / "p"
    )
    async with run:
        for epoch, step_values in enumerate(epochs(5)):
            await run.log_metrics(step_values, step=epoch)
    names = sorted(path.name for path in run.plots)
    assert names == [f"{run.evaluation_run_id}-{m}.png" for m in ("accuracy", "loss", "lr")]
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in run.plots)
