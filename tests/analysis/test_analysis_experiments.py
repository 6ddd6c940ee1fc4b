"""Item 6: experiments, the runs of two tag sets compared metric by metric.

Each run has one test whose score and metrics become the run's:

| run | started | tags               | env  | score | wer | completeness |
|-----|---------|--------------------|------|-------|-----|--------------|
| B1  | 1st     | baseline, nightly  | dev  | 70    | 60  |              |
| B2  | 2nd     | baseline           | dev  | 80    | 70  |              |
| B3  | 3rd     | baseline           | dev  | 90    |     | 50           |
| T1  | 4th     | config-tweak       | dev  | 85    | 75  |              |
| T2  | 5th     | config-tweak       | dev  | 90    | 80  |              |
| T3  | 6th     | config-tweak       | prod | 95    | 85  |              |

plus a run tagged baseline still running on the 7th (left out). Standard
deviations are sample ones (n - 1): sd(70, 80, 90) = sqrt(200 / 2) = 10,
sd(85, 90, 95) = sd(75, 80, 85) = sqrt(50 / 2) = 5, sd(60, 70) = sqrt(50).
"""

from __future__ import annotations

import json

import pytest
from analysis_helpers import Result, at, invoke, record_run, record_running_run

from evalstore import InvalidDataError, MetricsStorageService

MARCH = {"since": at(1, 0), "until": at(1, 0, month=4)}


@pytest.fixture
async def history(service: MetricsStorageService) -> None:
    plan = [
        (1, ["baseline", "nightly"], "dev", 70, {"wer": 60}),
        (2, ["baseline"], "dev", 80, {"wer": 70}),
        (3, ["baseline"], "dev", 90, {"completeness": 50}),
        (4, ["config-tweak"], "dev", 85, {"wer": 75}),
        (5, ["config-tweak"], "dev", 90, {"wer": 80}),
        (6, ["config-tweak"], "prod", 95, {"wer": 85}),
    ]
    for day, tags, environment, score, metrics in plan:
        await record_run(
            service,
            at(day),
            [Result("t", "passed", score, metrics)],
            tags=tags,
            environment=environment,
        )
    await record_running_run(service, at(7), tags=["baseline"])


async def test_compare_two_tag_sets(service: MetricsStorageService, history: None) -> None:
    rows = await service.compare_experiments(["baseline"], ["config-tweak"], **MARCH)
    assert rows == [
        {
            "metric": "score",
            "a_mean": 80.0,
            "a_std": 10.0,
            "a_runs": 3,
            "b_mean": 90.0,
            "b_std": 5.0,
            "b_runs": 3,
            "difference": 10.0,
        },
        {
            "metric": "completeness",
            "a_mean": 50.0,
            "a_std": None,
            "a_runs": 1,
            "b_mean": None,
            "b_std": None,
            "b_runs": 0,
            "difference": None,
        },
        {
            "metric": "wer",
            "a_mean": 65.0,
            "a_std": pytest.approx(50**0.5),
            "a_runs": 2,
            "b_mean": 80.0,
            "b_std": 5.0,
            "b_runs": 3,
            "difference": 15.0,
        },
    ]


async def test_tags_match_all_and_filters(service: MetricsStorageService, history: None) -> None:
    nightly = await service.compare_experiments(
        ["baseline", "nightly"], ["config-tweak"], tags_match="all", **MARCH
    )
    assert [
        (r["metric"], r["a_mean"], r["a_std"], r["a_runs"], r["difference"]) for r in nightly
    ] == [
        ("score", 70.0, None, 1, 20.0),
        ("wer", 60.0, None, 1, 20.0),
    ]
    prod = await service.compare_experiments(
        ["baseline"], ["config-tweak"], environment="prod", **MARCH
    )
    assert [
        (r["metric"], r["a_runs"], r["b_mean"], r["b_runs"], r["difference"]) for r in prod
    ] == [
        ("score", 0, 95.0, 1, None),
        ("wer", 0, 85.0, 1, None),
    ]


async def test_tags_matching_no_run(service: MetricsStorageService, history: None) -> None:
    rows = await service.compare_experiments(["nope"], ["config-tweak"], **MARCH)
    assert [(r["metric"], r["a_mean"], r["a_runs"], r["b_mean"]) for r in rows] == [
        ("score", None, 0, 90.0),
        ("wer", None, 0, 80.0),
    ]
    assert await service.compare_experiments(["nope"], ["none"], **MARCH) == []
    assert await service.compare_experiments(["baseline"], ["config-tweak"]) == []
    with pytest.raises(InvalidDataError, match=r"^tags_b must name at least one experiment tag$"):
        await service.compare_experiments(["baseline"], [])


async def test_a_metric_named_score_keeps_its_own_row(service: MetricsStorageService) -> None:
    await record_run(service, at(1), [Result("t", "passed", 50, {"score": 42})], tags=["odd"])
    rows = await service.compare_experiments("odd", "odd", **MARCH)
    assert [(r["metric"], r["a_mean"], r["b_mean"]) for r in rows] == [
        ("score", 50.0, 50.0),
        ("metrics.score", 42.0, 42.0),
    ]


async def test_experiments_cli(service: MetricsStorageService, history: None) -> None:
    window = ("--since", "2025-03-01", "--until", "2025-04-01")
    args = ("experiments", "compare", "--a", "baseline", "--b", "config-tweak", *window)
    result = await invoke(service, *args, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["metric"], r["a_runs"], r["b_runs"], r["difference"]) for r in rows] == [
        ("score", 3, 3, 10.0),
        ("completeness", 1, 0, None),
        ("wer", 2, 3, 15.0),
    ]
    table = await invoke(service, *args)
    assert "A = baseline  vs  B = config-tweak (2025-03-01 to 2025-04-01)" in table.stdout
    wer = next(line for line in table.stdout.splitlines() if "│ wer" in line)
    assert [cell.strip() for cell in wer.split("│")[1:9]] == [
        "wer",
        "65.0",
        "7.1",
        "2",
        "80.0",
        "5.0",
        "3",
        "+15.0",
    ]
    bad = await invoke(service, "experiments", "compare", "--a", "x", "--b", "y", "--match", "most")
    assert (bad.exit_code, bad.stderr) == (
        2,
        "error: --match: expected one of any, all, got 'most'\n",
    )
