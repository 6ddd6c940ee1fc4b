"""Metric series read back (issue 14, item 3): points, downsampling, summary, best step,
one metric across runs; on every backend.

The 50-epoch run is seed 004's acceptance scenario: train and eval loss decreasing with
noise, accuracy increasing, a learning rate decaying. Every expected value is computed
here from the same generated lists.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from bson import ObjectId

from evalstore import MetricsStorageService
from evalstore.errors import InvalidDataError, RunNotFoundError
from evalstore.ids import point_id

UTC = timezone.utc
START = datetime(2025, 3, 3, 9, tzinfo=UTC)
EPOCHS = 50


def simulated_training(seed: int = 4) -> dict[tuple[str, str], list[float]]:
    """Values per (metric, split), one per epoch."""
    rng = random.Random(seed)
    series: dict[tuple[str, str], list[float]] = {}
    for split, offset in (("train", 0.0), ("eval", 0.15)):
        series[("loss", split)] = [
            2.3 * math.exp(-epoch / 12) + offset + rng.gauss(0, 0.03) for epoch in range(EPOCHS)
        ]
        series[("accuracy", split)] = [
            min(1.0, 0.1 + 0.85 * (1 - math.exp(-epoch / 10)) - offset / 3 + rng.gauss(0, 0.01))
            for epoch in range(EPOCHS)
        ]
    series[("lr", "train")] = [1e-3 * 0.95**epoch for epoch in range(EPOCHS)]
    return series


def point(
    run_oid: ObjectId, metric: str, split: str, step: int, value: float, offset_ms: int = 0
) -> dict[str, Any]:
    return {
        "_id": point_id(run_oid, metric, split, step),
        "evaluation_run_id": run_oid,
        "metric": metric,
        "split": split,
        "step": step,
        "value": value,
        "recorded_at": START + timedelta(minutes=step, milliseconds=offset_ms),
    }


def documents(run_oid: ObjectId, series: dict[tuple[str, str], list[float]]) -> list[Any]:
    return [
        point(run_oid, metric, split, step, value)
        for (metric, split), values in series.items()
        for step, value in enumerate(values)
    ]


async def new_run(
    service: MetricsStorageService, run_id: str, started_at: datetime = START
) -> ObjectId:
    oid = ObjectId()
    await service.upsert_evaluation_run(
        {"_id": oid, "evaluation_run_id": run_id, "status": "running", "started_at": started_at}
    )
    return oid


def first_index(values: Sequence[float], target: float) -> int:
    return values.index(target)


def expected_downsample(steps: Sequence[int], values: Sequence[float], max_points: int) -> list:
    """The rule, written independently: per bucket of the step range, the min and the max
    point (earliest step on ties), in step order."""
    buckets = max_points // 2
    lo, hi = min(steps), max(steps)
    chosen: dict[int, tuple[tuple[float, int], tuple[float, int]]] = {}
    for step, value in sorted(zip(steps, values, strict=True)):
        bucket = (step - lo) * buckets // (hi - lo + 1)
        low, high = chosen.get(bucket, ((value, step), (value, step)))
        if value < low[0]:
            low = (value, step)
        if value > high[0]:
            high = (value, step)
        chosen[bucket] = (low, high)
    kept = {step: value for pair in chosen.values() for value, step in pair}
    return [{"step": step, "value": kept[step]} for step in sorted(kept)]


@pytest.fixture
async def training(service: MetricsStorageService) -> dict[tuple[str, str], list[float]]:
    """The 50-epoch run `train-50` stored, then finalised."""
    series = simulated_training()
    oid = await new_run(service, "train-50")
    await service.store_points(documents(oid, series))
    await service.finalize_evaluation_run(oid, finished_at=START + timedelta(hours=1))
    return series


async def test_a_50_epoch_run_reads_back_exactly(
    service: MetricsStorageService, training: dict[tuple[str, str], list[float]]
) -> None:
    for max_points in (None, 500):
        answer = await service.get_series("train-50", max_points=max_points)

        assert [(s["metric"], s["split"]) for s in answer] == sorted(training)
        for entry in answer:
            values = training[(entry["metric"], entry["split"])]
            assert entry["points"] == [
                {"step": step, "value": value} for step, value in enumerate(values)
            ]
            assert entry["total"] == EPOCHS
            assert entry["downsampled"] is False


async def test_series_of_some_metrics_and_one_split(
    service: MetricsStorageService, training: dict[tuple[str, str], list[float]]
) -> None:
    answer = await service.get_series("train-50", metrics=["loss", "lr"], split="train")

    assert [(s["metric"], s["split"]) for s in answer] == [("loss", "train"), ("lr", "train")]
    assert [p["value"] for p in answer[1]["points"]] == training[("lr", "train")]
    by_prefix = await service.get_series("train", metrics="accuracy")  # a prefix; a bare name
    assert [(s["metric"], s["split"]) for s in by_prefix] == [
        ("accuracy", "eval"),
        ("accuracy", "train"),
    ]


async def test_best_epoch_for_min_and_max_and_steps_since_best(
    service: MetricsStorageService, training: dict[tuple[str, str], list[float]]
) -> None:
    eval_loss, eval_acc = training[("loss", "eval")], training[("accuracy", "eval")]
    best_loss = first_index(eval_loss, min(eval_loss))
    best_acc = first_index(eval_acc, max(eval_acc))

    assert await service.get_best_step("train-50", "loss", mode="min", split="eval") == {
        "metric": "loss",
        "split": "eval",
        "mode": "min",
        "step": best_loss,
        "value": min(eval_loss),
        "last_step": EPOCHS - 1,
        "steps_since_best": EPOCHS - 1 - best_loss,
    }
    best = await service.get_best_step("train-50", "accuracy", mode="max", split="eval")
    assert (best["step"], best["value"]) == (best_acc, max(eval_acc))
    assert best["steps_since_best"] == EPOCHS - 1 - best_acc
    only_split = await service.get_best_step("train-50", "lr")  # one split: no --split needed
    assert (only_split["split"], only_split["step"], only_split["steps_since_best"]) == (
        "train",
        EPOCHS - 1,
        0,
    )


async def test_summary_values(
    service: MetricsStorageService, training: dict[tuple[str, str], list[float]]
) -> None:
    summary = await service.get_series_summary("train-50")

    assert [(row["metric"], row["split"]) for row in summary] == sorted(training)
    for row in summary:
        values = training[(row["metric"], row["split"])]
        assert row == {
            "metric": row["metric"],
            "split": row["split"],
            "count": EPOCHS,
            "first_step": 0,
            "last_step": EPOCHS - 1,
            "last": values[-1],
            "mean": pytest.approx(statistics.fmean(values), rel=1e-12),
            "min": min(values),
            "min_step": first_index(values, min(values)),
            "max": max(values),
            "max_step": first_index(values, max(values)),
        }
    # finalising stored the same summary on the run: run lists never read the points
    run = await service.get_evaluation_run("train-50")
    assert run is not None
    assert run["series"] == summary


async def test_a_run_without_points_has_no_series(service: MetricsStorageService) -> None:
    oid = await new_run(service, "no-points")
    finalized = await service.finalize_evaluation_run(oid)

    assert "series" not in finalized
    assert await service.get_series("no-points") == []
    assert await service.get_series_summary("no-points") == []


async def test_downsampling_keeps_the_spike_and_the_global_extremes(
    service: MetricsStorageService,
) -> None:
    rng = random.Random(14)
    steps = list(range(0, 1_200, 2))  # 600 points (the embedded backend's writes are slow)
    values = [1.0 + rng.random() * 0.01 for _ in steps]
    values[401] = 50.0  # one spike at step 802: the global max
    values[123] = -3.0  # one dip at step 246: the global min
    oid = await new_run(service, "long")
    await service.store_points(
        [point(oid, "loss", "train", s, v) for s, v in zip(steps, values, strict=True)]
    )

    for max_points in (100, 101, 2, 500):
        [entry] = await service.get_series("long", max_points=max_points)

        kept = entry["points"]
        assert entry["downsampled"] is True
        assert entry["total"] == len(steps)
        assert len(kept) <= max_points
        assert {"step": 802, "value": 50.0} in kept
        assert {"step": 246, "value": -3.0} in kept
        assert kept == expected_downsample(steps, values, max_points)
        assert all(values[p["step"] // 2] == p["value"] for p in kept)  # real points and steps


async def test_downsampling_takes_the_first_point_of_a_bucket_on_ties(
    service: MetricsStorageService,
) -> None:
    oid = await new_run(service, "flat")
    # sparse steps (every 3rd), a constant value: each bucket keeps its first point only
    await service.store_points([point(oid, "acc", "eval", 3 * i, 0.5) for i in range(400)])

    [entry] = await service.get_series("flat", max_points=10)

    bucket_starts = [0, 240, 480, 720, 960]  # 5 buckets of 239.6 steps over 0-1197
    assert entry["points"] == [{"step": s, "value": 0.5} for s in bucket_starts]
    [summary] = await service.get_series_summary("flat")
    assert (summary["min_step"], summary["max_step"]) == (0, 0)


async def test_a_step_logged_twice_is_one_point_with_the_latest_value(
    service: MetricsStorageService,
) -> None:
    oid = await new_run(service, "twice")
    await service.store_points([point(oid, "loss", "train", s, 1.0 + s) for s in range(5)])
    await service.store_points([point(oid, "loss", "train", 3, 0.25, offset_ms=500)])

    [entry] = await service.get_series("twice")

    assert entry["points"] == [
        {"step": 0, "value": 1.0},
        {"step": 1, "value": 2.0},
        {"step": 2, "value": 3.0},
        {"step": 3, "value": 0.25},
        {"step": 4, "value": 5.0},
    ]
    assert entry["total"] == 5
    best = await service.get_best_step("twice", "loss")
    assert (best["step"], best["value"], best["steps_since_best"]) == (3, 0.25, 1)


async def test_unknown_metric_split_run_and_bad_arguments_are_one_clear_error(
    service: MetricsStorageService, training: dict[tuple[str, str], list[float]]
) -> None:
    with pytest.raises(InvalidDataError, match=r"^run train-50 has no metric 'val_loss' "):
        await service.get_best_step("train-50", "val_loss")
    with pytest.raises(InvalidDataError, match=r"its metrics: accuracy, loss, lr\)$"):
        await service.get_series("train-50", metrics=["loss", "val_loss"])
    with pytest.raises(InvalidDataError, match=r"several splits \(eval, train\).*--split"):
        await service.get_best_step("train-50", "loss")
    with pytest.raises(InvalidDataError, match=r"no metric 'lr' of split 'eval' .*splits: train"):
        await service.get_best_step("train-50", "lr", split="eval")
    with pytest.raises(InvalidDataError, match=r"no series of split 'test'"):
        await service.get_series_summary("train-50", split="test")
    with pytest.raises(InvalidDataError, match="mode must be 'min' or 'max'"):
        await service.get_best_step("train-50", "loss", mode="median", split="eval")  # type: ignore[arg-type]
    for bad in (1, 0, -5, True, 2.5):
        with pytest.raises(InvalidDataError, match="max_points"):
            await service.get_series("train-50", max_points=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match="metric"):
        await service.get_series("train-50", metrics=[{"$ne": None}])  # type: ignore[list-item]
    with pytest.raises(RunNotFoundError):
        await service.get_series("no-such-run")


async def test_one_metric_across_runs(service: MetricsStorageService) -> None:
    curves = {}
    for index, run_id in enumerate(("r1", "r2", "r3", "r4")):
        oid = await new_run(service, run_id, START + timedelta(days=index))
        values = [1.0 / (step + index + 1) for step in range(20)]
        curves[run_id] = values
        docs = [point(oid, "val_loss", "eval", s, v) for s, v in enumerate(values)]
        docs += [point(oid, "loss", "train", s, v) for s, v in enumerate(values)]
        await service.store_points(docs)
        if run_id != "r4":  # r4 still running: not among the finished runs
            await service.finalize_evaluation_run(oid)
    other = await new_run(service, "no-val", START + timedelta(days=9))
    await service.store_points([point(other, "loss", "train", 0, 1.0)])
    await service.finalize_evaluation_run(other)  # newest, but without val_loss

    newest = await service.get_metric_across_runs("val_loss", last=2)

    assert [(e["evaluation_run_id"], e["split"]) for e in newest] == [
        ("r2", "eval"),
        ("r3", "eval"),
    ]
    assert newest[0]["started_at"] == START + timedelta(days=1)
    assert [p["value"] for p in newest[1]["points"]] == curves["r3"]
    assert (newest[1]["total"], newest[1]["downsampled"]) == (20, False)
    named = await service.get_metric_across_runs("val_loss", runs=["r4", "r1"], max_points=4)
    assert [e["evaluation_run_id"] for e in named] == ["r4", "r1"]
    assert all(len(e["points"]) <= 4 and e["downsampled"] for e in named)
    assert await service.get_metric_across_runs("val_loss", split="train") == []
    assert [e["evaluation_run_id"] for e in await service.get_metric_across_runs("loss")] == [
        "r1",
        "r2",
        "r3",
        "no-val",
    ]
    with pytest.raises(InvalidDataError, match="run no-val has no metric 'val_loss'"):
        await service.get_metric_across_runs("val_loss", runs=["r1", "no-val"])
