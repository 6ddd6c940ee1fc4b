"""Issue 13, item 6: configurations compared by any key, the best one, and the score direction.

Four configurations (`system_information.config`):

    C1 = {llm: {model: gpt-4o, temperature: 0.2}, max_retries: 3}
    C2 = {llm: {model: gpt-4o, temperature: 0.7}, max_retries: 3}
    C3 = {llm: {model: mini}, max_retries: 5}                 (no temperature)
    C4 = {llm: {model: mini, temperature: None}, max_retries: 5}

| run | started | config | tests                  | score | success | usage.cost | duration |
|-----|---------|--------|------------------------|-------|---------|------------|----------|
| r1  | 1st     | C1     | passed 80, passed 100  | 90    | yes     | 1.0        | 2 h      |
| r2  | 2nd     | C1     | passed 60, failed 20   | 40    | no      | 2.0        | 1 h      |
| r3  | 3rd     | C2     | passed 70 (env prod)   | 70    | yes     | 0.5        | 1 h      |
| r4  | 4th     | C3     | passed 50              | 50    | yes     | (no usage) | 1 h      |
| r5  | 5th     | C3     | passed 40, error       | 20    | no      | (no usage) | 1 h      |
| r6  | 6th     | C4     | skipped                | None  | no      | 0.25       | 1 h      |
| r7  | 7th     | C2     | still running: not finished, never counted                       |

A run's score is the mean of its tests' (an error counts 0); a success has a
test passed and none failed or errored (r6's tests were all skipped).
"""

from __future__ import annotations

import math
import sys
from datetime import timedelta
from typing import Any

import pytest
from analysis_helpers import Result, at, record_run, record_running_run
from index_coverage import coverage_problems, match_shape

from evalstore import ConfigurationError, InvalidDataError, MetricsStorageService
from evalstore.analysis.config_choice import (
    MISSING_LABEL,
    RUN_FIELDS,
    compare_groups,
    figures,
    group_key,
)
from evalstore.analysis.direction import ols_slope, t_quantile
from evalstore.analysis.filters import RunFilters
from evalstore.analysis.pipelines import FINISHED
from evalstore.storage.indexes import EVALUATION_RUNS

MARCH = {"since": at(1, 0), "until": at(1, 0, month=4)}
C1 = {"llm": {"model": "gpt-4o", "temperature": 0.2}, "max_retries": 3}
C2 = {"llm": {"model": "gpt-4o", "temperature": 0.7}, "max_retries": 3}
C3 = {"llm": {"model": "mini"}, "max_retries": 5}
C4 = {"llm": {"model": "mini", "temperature": None}, "max_retries": 5}
HOUR = 3600.0


async def _cost(service: MetricsStorageService, run: dict[str, Any], cost: float) -> None:
    await service.client.update_run({"_id": run["_id"]}, {"usage": {"cost": cost}}, action="test")


@pytest.fixture
async def hashes(service: MetricsStorageService) -> dict[str, str]:
    r1 = await record_run(
        service, at(1), [Result("t1", "passed", 80), Result("t2", "passed", 100)], config=C1
    )
    await _cost(service, r1, 1.0)
    await service.client.update_run({"_id": r1["_id"]}, {"finished_at": at(1, 12)}, action="test")
    r2 = await record_run(
        service, at(2), [Result("t1", "passed", 60), Result("t2", "failed", 20)], config=C1
    )
    await _cost(service, r2, 2.0)
    r3 = await record_run(
        service, at(3), [Result("t1", "passed", 70)], config=C2, environment="prod"
    )
    await _cost(service, r3, 0.5)
    r4 = await record_run(service, at(4), [Result("t1", "passed", 50)], config=C3)
    await record_run(service, at(5), [Result("t1", "passed", 40), Result("t2", "error")], config=C3)
    r6 = await record_run(service, at(6), [Result("t1", "skipped")], config=C4)
    await _cost(service, r6, 0.25)
    await record_running_run(service, at(7), config=C2)
    return {
        "c1": r1["system_info_hash"],
        "c2": r3["system_info_hash"],
        "c3": r4["system_info_hash"],
        "c4": r6["system_info_hash"],
    }


def _figures(
    runs: int,
    successes: int,
    mean_score: float | None,
    costs: list[float],
    cost_per_success: float | None,
    mean_duration_s: float,
) -> dict[str, Any]:
    return {
        "runs": runs,
        "successes": successes,
        "success_rate": successes / runs,
        "mean_score": mean_score,
        "cost_runs": len(costs),
        "mean_cost": sum(costs) / len(costs) if costs else None,
        "total_cost": sum(costs) if costs else None,
        "cost_per_success": cost_per_success,
        "mean_duration_s": mean_duration_s,
    }


async def test_runs_grouped_by_a_nested_key_with_the_key_missing_in_some(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    groups = await service.compare_configurations_by("config.llm.temperature", **MARCH)
    assert groups == [
        # None sorts first (as in MongoDB), the runs lacking the key last
        {
            "value": None,
            "label": "None",
            "missing": False,
            "configurations": 1,
            **_figures(1, 0, None, [0.25], None, HOUR),
        },
        {
            "value": 0.2,
            "label": "0.2",
            "missing": False,
            "configurations": 1,
            # cost per success: (1.0 + 2.0) / 1; duration: (2 h + 1 h) / 2
            **_figures(2, 1, 65.0, [1.0, 2.0], 3.0, 1.5 * HOUR),
        },
        {
            "value": 0.7,
            "label": "0.7",
            "missing": False,
            "configurations": 1,
            **_figures(1, 1, 70.0, [0.5], 0.5, HOUR),
        },
        {
            "value": None,
            "label": MISSING_LABEL,
            "missing": True,
            "configurations": 1,
            **_figures(2, 1, 35.0, [], None, HOUR),
        },
    ]
    # Figures over all 6 finished runs: the running r7 is never counted.
    assert sum(group["runs"] for group in groups) == 6


async def test_group_by_other_keys_and_run_fields(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    by_retries = await service.compare_configurations_by("config.max_retries", **MARCH)
    assert [(g["value"], g["configurations"], g["runs"], g["successes"]) for g in by_retries] == [
        (3, 2, 3, 2),
        (5, 2, 3, 1),
    ]
    three = by_retries[0]
    # r1, r2, r3: scores 90, 40, 70; costs 1.0, 2.0, 0.5 over the successes r1 and r3
    assert three["mean_score"] == pytest.approx(200 / 3)
    assert (three["mean_cost"], three["total_cost"]) == (pytest.approx(3.5 / 3), 3.5)
    assert three["cost_per_success"] == 1.75
    assert three["mean_duration_s"] == pytest.approx(4 * HOUR / 3)
    # `system_information.` may be written; a key of the snapshot above `config` works too
    spelled_out = await service.compare_configurations_by(
        "system_information.config.max_retries", **MARCH
    )
    assert spelled_out == by_retries
    by_model = await service.compare_configurations_by("config.llm", **MARCH)
    assert [g["label"] for g in by_model] == [
        "{'model': 'gpt-4o', 'temperature': 0.2}",
        "{'model': 'gpt-4o', 'temperature': 0.7}",
        "{'model': 'mini'}",
        "{'model': 'mini', 'temperature': None}",
    ]
    by_environment = await service.compare_configurations_by("environment", **MARCH)
    assert [(g["value"], g["runs"]) for g in by_environment] == [("dev", 5), ("prod", 1)]
    by_hash = await service.compare_configurations_by("system_info_hash", **MARCH)
    assert [(g["value"], g["runs"]) for g in by_hash] == sorted(
        [(hashes["c1"], 2), (hashes["c2"], 1), (hashes["c3"], 2), (hashes["c4"], 1)]
    )
    # A key no run has: every run in one missing group, never dropped.
    [nowhere] = await service.compare_configurations_by("config.nope.deeper", **MARCH)
    assert (nowhere["label"], nowhere["missing"], nowhere["runs"]) == (MISSING_LABEL, True, 6)
    # The filters apply; an empty window is an empty answer.
    prod = await service.compare_configurations_by(
        "config.llm.temperature", environment="prod", **MARCH
    )
    assert [(g["value"], g["runs"]) for g in prod] == [(0.7, 1)]
    january = {"since": at(1, month=1), "until": at(1, month=2)}
    assert await service.compare_configurations_by("config.x", **january) == []


@pytest.mark.parametrize("key", ["", "config..x", ".config", "config.", "$where", 3, None])
async def test_a_bad_key_is_refused(service: MetricsStorageService, key: Any) -> None:
    with pytest.raises(InvalidDataError, match=r"^key must be a dotted path"):
        await service.compare_configurations_by(key, **MARCH)


def _run(index: int, value: Any = None, *, missing: bool = False) -> dict[str, Any]:
    info = {} if missing else {"config": {"x": value}}
    return {
        "evaluation_run_id": f"r{index}",
        "started_at": at(1 + index),
        "system_information": info,
        "system_info_hash": f"h{index}",
        "num_tests": 1,
        "num_passed": 1,
    }


def test_mixed_values_are_ordered_and_told_apart() -> None:
    values = [True, "5", 5, [1], {"a": 1}, None, "(missing)", 5.0, float("nan"), "b", 0.5]
    runs = [_run(i, v) for i, v in enumerate(values)] + [_run(20, missing=True)]
    groups = compare_groups(runs, "config.x")
    # MongoDB's order of types: null, numbers, strings, objects, arrays, booleans; missing last.
    # 5 and 5.0 are one group (the first run's value is shown); True is not 1.
    assert [(g["label"], g["runs"]) for g in groups] == [
        ("None", 1),
        ("0.5", 1),
        ("5", 2),
        ("nan", 1),
        ("'(missing)'", 1),  # quoted: it would read like the missing group
        ("'5'", 1),  # quoted: it would read like the number
        ("b", 1),
        ("{'a': 1}", 1),
        ("[1]", 1),
        ("True", 1),
        (MISSING_LABEL, 1),
    ]
    assert type(groups[2]["value"]) is int
    assert group_key(True) != group_key(1)
    assert group_key(5) == group_key(5.0)


def test_figures_of_no_success_and_of_partly_priced_runs() -> None:
    priced = {"num_tests": 2, "num_passed": 2, "usage": {"cost": 0.4, "unpriced": 0}}
    partly = {"num_tests": 1, "num_passed": 1, "usage": {"cost": 0.1, "unpriced": 2}}
    no_cost = {"num_tests": 1, "num_passed": 1, "usage": {"cost": None}}
    errored = {"num_tests": 1, "num_passed": 1, "num_errors": 1, "usage": {"cost": 9.0}}
    result = figures([priced, partly, no_cost, errored])
    # partly priced and unpriced runs have no known cost; the errored run is not a success
    assert (result["runs"], result["successes"], result["cost_runs"]) == (4, 3, 2)
    assert (result["total_cost"], result["mean_cost"]) == (9.4, 4.7)
    assert result["cost_per_success"] == 9.4  # one success among the two runs with a cost
    assert result["mean_duration_s"] is None


async def test_best_configuration_per_objective(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    c1, c2, c3, c4 = (hashes[name] for name in ("c1", "c2", "c3", "c4"))
    by_score = await service.best_configuration("score", **MARCH)
    best = by_score["best"]
    assert best is not None
    assert best["system_info_hash"] == c2
    assert best["config"] == C2
    assert (
        best["label"] == "config.llm.model=gpt-4o, config.llm.temperature=0.7, config.max_retries=3"
    )
    assert best["last_seen"] == at(3)  # r7 is still running
    assert (best["runs"], best["successes"], best["mean_score"], best["mean_cost"]) == (
        1,
        1,
        70.0,
        0.5,
    )
    assert (best["cost_per_success"], best["mean_duration_s"], best["excluded"]) == (
        0.5,
        HOUR,
        None,
    )
    assert [(c["system_info_hash"], c["mean_score"]) for c in by_score["ranking"]] == [
        (c2, 70.0),
        (c1, 65.0),
        (c3, 35.0),
    ]
    assert [(c["system_info_hash"], c["excluded"]) for c in by_score["excluded"]] == [
        (c4, "no run with a score")
    ]
    by_success = await service.best_configuration("success", **MARCH)
    # C1 and C3 tie at 50% with 2 runs each: the hash decides
    assert [(c["system_info_hash"], c["success_rate"]) for c in by_success["ranking"]] == [
        (c2, 1.0),
        *sorted([(c1, 0.5), (c3, 0.5)]),
        (c4, 0.0),
    ]
    cheapest = await service.best_configuration("cost-per-success", **MARCH)
    assert [(c["system_info_hash"], c["cost_per_success"]) for c in cheapest["ranking"]] == [
        (c2, 0.5),
        (c1, 3.0),
    ]
    assert sorted((c["system_info_hash"], c["excluded"]) for c in cheapest["excluded"]) == sorted(
        [(c3, "no run with a cost"), (c4, "no success among the runs with a cost")]
    )


async def test_best_configuration_with_a_cost_cap_and_a_minimum_of_runs(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    c1, c2, c3, c4 = (hashes[name] for name in ("c1", "c2", "c3", "c4"))
    capped = await service.best_configuration("score", max_cost=1.0, **MARCH)
    assert capped["max_cost"] == 1.0
    assert [c["system_info_hash"] for c in capped["ranking"]] == [c2]
    assert capped["best"] == capped["ranking"][0]
    assert sorted((c["system_info_hash"], c["excluded"]) for c in capped["excluded"]) == sorted(
        [
            (c1, "mean cost 1.5 above the cap of 1"),  # (1.0 + 2.0) / 2
            (c3, "no run with a cost, so it cannot be held to the cost cap"),
            (c4, "no run with a score"),  # 0.25 is under the cap
        ]
    )
    # At exactly the cap a configuration qualifies.
    at_cap = await service.best_configuration("success", max_cost=1.5, **MARCH)
    assert [c["system_info_hash"] for c in at_cap["ranking"]] == [c2, c1, c4]
    nothing = await service.best_configuration("score", max_cost=0.1, **MARCH)
    assert (nothing["best"], nothing["ranking"], len(nothing["excluded"])) == (None, [], 4)
    two_runs = await service.best_configuration("score", min_runs=2, **MARCH)
    assert [c["system_info_hash"] for c in two_runs["ranking"]] == [c1, c3]
    assert [c["excluded"] for c in two_runs["excluded"]] == [
        "1 run(s), fewer than the 2 required"
    ] * 2
    empty = await service.best_configuration(since=at(1, month=1), until=at(1, month=2))
    assert (empty["best"], empty["ranking"], empty["excluded"]) == (None, [], [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": "fast"}, r"^objective must be one of score, success, cost-per-success"),
        ({"max_cost": -1}, r"^max_cost must be a finite number of at least 0"),
        ({"max_cost": math.inf}, r"^max_cost must be a finite number"),
        ({"max_cost": True}, r"^max_cost must be a number"),
        ({"max_cost": "1"}, r"^max_cost must be a number"),
        ({"min_runs": 0}, r"^min_runs must be a positive integer"),
    ],
)
async def test_best_configuration_refuses_bad_arguments(
    service: MetricsStorageService, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidDataError, match=message):
        await service.best_configuration(**kwargs)


IMPROVING_NOISE = [1, -1] * 5
"""y = 50 + 2i + (-1)^i for i = 0..9: Sxy of the noise is -5 and Sxx is 82.5, so the slope is
2 - 5/82.5 = 64/33 per run; the runs start two days apart, so 32/33 per day."""
FLAT = [72.0, 69.0, 74.0, 67.0, 71.0, 66.0, 73.0, 70.0, 68.0, 71.0]


async def _series(service: MetricsStorageService, scores: list[float], step_days: int) -> None:
    for index, score in enumerate(scores):
        started = at(1) + timedelta(days=step_days * index)
        metrics = {"acc": 100 - score}
        await record_run(service, started, [Result("t", "passed", score, metrics)])


def _scipy_slope(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    from scipy import stats

    fit = stats.linregress(xs, ys)
    half = stats.t.ppf(0.975, len(xs) - 2) * fit.stderr
    return fit.slope, fit.slope - half, fit.slope + half


async def test_direction_of_an_improving_series(service: MetricsStorageService) -> None:
    scores = [50 + 2 * i + e for i, e in enumerate(IMPROVING_NOISE)]
    await _series(service, scores, step_days=2)
    answer = await service.get_score_direction(**MARCH)
    assert answer["verdict"] == "improving"
    assert (answer["metric"], answer["runs"], answer["confidence"]) == ("score", 10, 0.95)
    assert (answer["first"], answer["last"]) == (at(1), at(19))
    per_run, per_day = answer["per_run"], answer["per_day"]
    assert per_run["slope"] == pytest.approx(64 / 33, rel=1e-12)
    assert per_day["slope"] == pytest.approx(32 / 33, rel=1e-12)
    xs = [float(i) for i in range(10)]
    expected = _scipy_slope(xs, scores)
    assert (per_run["slope"], per_run["low"], per_run["high"]) == pytest.approx(expected)
    days = _scipy_slope([2 * x for x in xs], scores)
    assert (per_day["slope"], per_day["low"], per_day["high"]) == pytest.approx(days)
    assert per_run["low"] is not None
    assert per_run["low"] > 0
    # The metric `acc` is 100 - score: the same line, downwards.
    down = await service.get_score_direction(metric="acc", **MARCH)
    assert down["verdict"] == "degrading"
    assert down["per_run"]["slope"] == pytest.approx(-64 / 33, rel=1e-12)
    # The last 5 runs: 59, 63, 63, 67, 67; their noise (-1, 1, -1, 1, -1) is symmetric about
    # the middle run, so the slope is exactly 2 (Sxy = 20 over Sxx = 10).
    last5 = await service.get_score_direction(last=5, **MARCH)
    assert (last5["runs"], last5["first"]) == (5, at(11))
    assert last5["per_run"]["slope"] == pytest.approx(2.0, rel=1e-12)
    assert (last5["per_run"]["low"], last5["per_run"]["high"]) == pytest.approx(
        _scipy_slope(xs[:5], scores[5:])[1:]
    )


async def test_direction_of_a_flat_noisy_series(service: MetricsStorageService) -> None:
    await _series(service, FLAT, step_days=1)
    answer = await service.get_score_direction(**MARCH)
    assert answer["verdict"] == "flat"
    # Sxy = sum((i - 4.5) * (y - 70.1)) = -11.5 over Sxx = 82.5
    assert answer["per_run"]["slope"] == pytest.approx(-11.5 / 82.5, rel=1e-12)
    expected = _scipy_slope([float(i) for i in range(10)], FLAT)
    per_run = answer["per_run"]
    assert (per_run["slope"], per_run["low"], per_run["high"]) == pytest.approx(expected)
    assert per_run["low"] is not None
    assert per_run["high"] is not None
    assert per_run["low"] < 0 < per_run["high"]
    assert answer["per_day"] == answer["per_run"]  # one run a day


async def test_direction_needs_three_runs(service: MetricsStorageService) -> None:
    await _series(service, [50.0, 90.0], step_days=1)
    answer = await service.get_score_direction(**MARCH)
    assert answer == {
        "metric": "score",
        "runs": 2,
        "first": at(1),
        "last": at(2),
        "per_run": {"slope": None, "low": None, "high": None},
        "per_day": {"slope": None, "low": None, "high": None},
        "confidence": 0.95,
        "verdict": "not enough runs",
    }
    never = await service.get_score_direction(metric="never-recorded", **MARCH)
    assert (never["metric"], never["runs"], never["verdict"]) == (
        "never-recorded",
        0,
        "not enough runs",
    )
    with pytest.raises(InvalidDataError, match=r"^last must be a positive integer"):
        await service.get_score_direction(last=0)
    with pytest.raises(InvalidDataError, match=r"must not contain"):
        await service.get_score_direction(metric="a.b")


def test_slope_of_runs_started_together_and_of_a_perfect_line() -> None:
    t = t_quantile(0.975, 1)
    assert t == pytest.approx(12.706204736, rel=1e-9)
    assert ols_slope([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], t) == {
        "slope": None,
        "low": None,
        "high": None,
    }
    assert ols_slope([0.0, 1.0, 2.0], [5.0, 7.0, 9.0], t) == {"slope": 2.0, "low": 2.0, "high": 2.0}


async def test_direction_without_scipy_says_how_to_install_it(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _series(service, [50.0, 60.0, 70.0], step_days=1)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(
        ConfigurationError,
        match=r"^trend --direction needs scipy: pip install 'evalstore\[stats\]'$",
    ):
        await service.get_score_direction(**MARCH)
    # Fewer than three runs need no scipy.
    assert (await service.get_score_direction(last=2, **MARCH))["verdict"] == "not enough runs"


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"branch": "main"},
        {"suite": "s"},
        {"environment": "dev", "tags": ("x",)},
    ],
)
def test_the_read_of_finished_runs_is_served_by_an_index(filters: dict[str, Any]) -> None:
    query = {**RunFilters.of(**filters).match(), "status": {"$in": list(FINISHED)}}
    assert coverage_problems(match_shape(EVALUATION_RUNS, query)) == []
    assert {"usage", "system_information", "finished_at"} <= set(RUN_FIELDS)
