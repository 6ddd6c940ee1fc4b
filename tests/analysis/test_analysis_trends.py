"""Item 1, trends: a run metric per day/week, the score of each run, one test over time.

The history (March 2025; each run has test `t`, its score given, metrics `wer` and
`completeness` as listed):

| run | started        | env  | tags                   | branch  | t                | wer | compl. |
|-----|----------------|------|------------------------|---------|------------------|-----|--------|
| R1  | Mon 3rd 10:00  | dev  | baseline               | -       | passed 80        | 70  | 90     |
| R2  | Mon 3rd 15:00  | dev  | baseline               | -       | failed 60        | 50  | -      |
| R3  | Wed 5th 09:00  | prod | config-tweak           | feature | passed 100       | 90  | 95     |
| R5  | Thu 6th 10:00  | dev  | -                      | -       | (still running)  | -   | -      |
| R6  | Fri 7th 11:00  | dev  | -                      | -       | skipped (failed) | -   | -      |
| R4  | Mon 10th 09:00 | dev  | baseline, config-tweak | main    | passed 70        | 75  | 65     |

R3 also runs `once` (passed 100), the only run of that test. R5 is still running;
R6 was finalised as failed. 3rd-9th March is ISO week 2025-W10, the 10th W11.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import Result, at, git_repo, invoke, record_run, record_running_run

from evalstore import InvalidDataError, MetricsStorageService

MARCH = {"since": at(1, 0), "until": at(1, 0, month=4)}


@pytest.fixture
async def history(service: MetricsStorageService, tmp_path: Path) -> dict[str, Any]:
    main = git_repo(tmp_path / "main", "main")
    feature = git_repo(tmp_path / "feature", "feature")
    runs = {
        "R1": await record_run(
            service,
            at(3, 10),
            [Result("t", "passed", 80, {"wer": 70, "completeness": 90})],
            tags=["baseline"],
        ),
        "R2": await record_run(
            service, at(3, 15), [Result("t", "failed", 60, {"wer": 50})], tags=["baseline"]
        ),
        "R3": await record_run(
            service,
            at(5, 9),
            [
                Result("t", "passed", 100, {"wer": 90, "completeness": 95}),
                Result("once", "passed", 100),
            ],
            tags=["config-tweak"],
            environment="prod",
            repo=feature,
        ),
        "R5": await record_running_run(service, at(6, 10)),
        "R6": await record_run(service, at(7, 11), [Result("t", "skipped")], status="failed"),
        "R4": await record_run(
            service,
            at(10, 9),
            [Result("t", "passed", 70, {"wer": 75, "completeness": 65})],
            tags=["baseline", "config-tweak"],
            repo=main,
        ),
    }
    return runs


def points(rows: list[Any]) -> list[tuple[str, float, int]]:
    return [(r["period"], r["mean"], r["runs"]) for r in rows]


async def test_metric_trend_per_day(service: MetricsStorageService, history: Any) -> None:
    wer = await service.get_metric_trend("wer", **MARCH)
    assert points(wer) == [
        ("2025-03-03", 60.0, 2),
        ("2025-03-05", 90.0, 1),
        ("2025-03-10", 75.0, 1),
    ]


async def test_metric_missing_in_some_runs_counts_only_runs_that_measured_it(
    service: MetricsStorageService, history: Any
) -> None:
    completeness = await service.get_metric_trend("completeness", **MARCH)
    assert points(completeness) == [
        ("2025-03-03", 90.0, 1),
        ("2025-03-05", 95.0, 1),
        ("2025-03-10", 65.0, 1),
    ]
    assert await service.get_metric_trend("latency", **MARCH) == []


async def test_metric_trend_per_iso_week(service: MetricsStorageService, history: Any) -> None:
    assert points(await service.get_metric_trend("wer", by="week", **MARCH)) == [
        ("2025-W10", 70.0, 3),
        ("2025-W11", 75.0, 1),
    ]
    # The run score: W10 = (80 + 60 + 100) / 3; R5 (running) and R6 (skipped only) have none.
    assert points(await service.get_metric_trend("score", by="week", **MARCH)) == [
        ("2025-W10", 80.0, 3),
        ("2025-W11", 70.0, 1),
    ]


async def test_metric_trend_filters(service: MetricsStorageService, history: Any) -> None:
    assert points(await service.get_metric_trend("wer", environment="prod", **MARCH)) == [
        ("2025-03-05", 90.0, 1)
    ]
    assert points(await service.get_metric_trend("wer", branch="main", **MARCH)) == [
        ("2025-03-10", 75.0, 1)
    ]
    assert points(await service.get_metric_trend("wer", tags=["baseline"], **MARCH)) == [
        ("2025-03-03", 60.0, 2),
        ("2025-03-10", 75.0, 1),
    ]
    both = await service.get_metric_trend(
        "wer", tags=["baseline", "config-tweak"], tags_match="all", **MARCH
    )
    assert points(both) == [("2025-03-10", 75.0, 1)]
    assert await service.get_metric_trend("wer", tags=["nope"], **MARCH) == []


async def test_window_bounds(service: MetricsStorageService, history: Any) -> None:
    # until is exclusive: R4 (10th, 09:00) is outside [4th, 10th 00:00).
    inside = await service.get_metric_trend("wer", since=at(4, 0), until=at(10, 0))
    assert points(inside) == [("2025-03-05", 90.0, 1)]
    # since is inclusive, to the millisecond.
    assert points(await service.get_metric_trend("wer", since=at(10, 9), until=at(11, 0))) == [
        ("2025-03-10", 75.0, 1)
    ]
    # window_days counts back from until: 7 days before the 11th is the 4th.
    week = await service.get_metric_trend("wer", until=at(11, 0), window_days=7)
    assert points(week) == [("2025-03-05", 90.0, 1), ("2025-03-10", 75.0, 1)]
    # An empty window.
    assert await service.get_metric_trend("wer", since=at(1, 0, month=4)) == []
    # The default window is the last 30 days: March 2025 is long gone.
    assert await service.get_metric_trend("wer") == []


async def test_score_trend_lists_finished_runs_oldest_first(
    service: MetricsStorageService, history: Any
) -> None:
    trend = await service.get_score_trend(**MARCH)
    assert [
        (t["evaluation_run_id"], t["status"], t["score"], t["num_passed"], t["num_tests"])
        for t in trend
    ] == [
        (history["R1"]["evaluation_run_id"], "completed", 80.0, 1, 1),
        (history["R2"]["evaluation_run_id"], "completed", 60.0, 0, 1),
        (history["R3"]["evaluation_run_id"], "completed", 100.0, 2, 2),
        (history["R6"]["evaluation_run_id"], "failed", None, 0, 1),
        (history["R4"]["evaluation_run_id"], "completed", 70.0, 1, 1),
    ]
    assert [t["started_at"] for t in trend] == [
        at(3, 10),
        at(3, 15),
        at(5, 9),
        at(7, 11),
        at(10, 9),
    ]
    assert set(trend[0]) == {
        "evaluation_run_id",
        "started_at",
        "status",
        "score",
        "num_passed",
        "num_tests",
    }


async def test_score_trend_filters(service: MetricsStorageService, history: Any) -> None:
    baseline = await service.get_score_trend(tags=["baseline"], **MARCH)
    assert [t["score"] for t in baseline] == [80.0, 60.0, 70.0]
    assert [t["score"] for t in await service.get_score_trend(environment="prod", **MARCH)] == [
        100.0
    ]
    assert await service.get_score_trend(tags=["nope"], **MARCH) == []
    assert await service.get_score_trend() == []


async def test_test_trend_is_every_run_of_the_test_oldest_first(
    service: MetricsStorageService, history: Any
) -> None:
    trend = await service.get_test_trend("t", **MARCH)
    assert [(t["finished_at"], t["score"], t["passed"], t["status"]) for t in trend] == [
        (at(3, 10, 1), 80.0, True, "passed"),
        (at(3, 15, 1), 60.0, False, "failed"),
        (at(5, 9, 1), 100.0, True, "passed"),
        (at(7, 11, 1), None, False, "skipped"),
        (at(10, 9, 1), 70.0, True, "passed"),
    ]
    assert trend[0]["test_run_id"].startswith(history["R1"]["evaluation_run_id"] + "/t/")


async def test_test_trend_of_a_test_seen_once_or_never(
    service: MetricsStorageService, history: Any
) -> None:
    once = await service.get_test_trend("once", **MARCH)
    assert [(t["finished_at"], t["score"], t["passed"]) for t in once] == [
        (at(5, 9, 2), 100.0, True)
    ]
    assert await service.get_test_trend("never", **MARCH) == []


async def test_test_trend_filters_by_its_runs(service: MetricsStorageService, history: Any) -> None:
    prod = await service.get_test_trend("t", environment="prod", **MARCH)
    assert [t["score"] for t in prod] == [100.0]
    baseline = await service.get_test_trend("t", tags=["baseline"], **MARCH)
    assert [t["score"] for t in baseline] == [80.0, 60.0, 70.0]
    assert [t["score"] for t in await service.get_test_trend("t", branch="main", **MARCH)] == [70.0]
    assert await service.get_test_trend("t", tags=["nope"], **MARCH) == []
    # The window is on the test runs' finished_at: R2 started at 15:00, its test finished at
    # 15:01, so a window from 15:00:30 keeps that test although its run started before it.
    late = await service.get_test_trend("t", environment="dev", since=at(3, 15, 0, 30), until=at(4))
    assert [t["score"] for t in late] == [60.0]
    assert await service.get_test_trend("t", since=at(3, 15, 1, 1), until=at(4)) == []


async def test_bad_arguments_are_one_line_errors(service: MetricsStorageService) -> None:
    with pytest.raises(InvalidDataError, match=r"^by must be 'day' or 'week', got 'month'$"):
        await service.get_metric_trend("wer", by="month")  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match=r"^metric: key 'a\.b' must not contain"):
        await service.get_metric_trend("a.b")
    with pytest.raises(InvalidDataError, match=r"^since is after until$"):
        await service.get_score_trend(since=at(5), until=at(4))
    with pytest.raises(InvalidDataError, match=r"^tags_match must be 'any' or 'all'"):
        await service.get_score_trend(tags=["x"], tags_match="some")  # type: ignore[typeddict-item]
    with pytest.raises(
        InvalidDataError, match=r"^window_days must be positive and at most 36525, got 0$"
    ):
        await service.get_test_trend("t", window_days=0)


async def test_trend_cli(service: MetricsStorageService, history: Any) -> None:
    window = ("--since", "2025-03-01", "--until", "2025-04-01")
    result = await invoke(service, "trend", "--metric", "wer", "--by", "week", *window, "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.count('"period"') == 2
    assert '"period": "2025-W10",\n    "mean": 70.0,\n    "runs": 3' in result.stdout

    result = await invoke(service, "trend", "--by", "run", "--tag", "baseline", *window)
    assert result.exit_code == 0, result.output
    assert "Score of each run (2025-03-01 to 2025-04-01)" in result.stdout
    assert history["R2"]["evaluation_run_id"] in result.stdout
    assert history["R3"]["evaluation_run_id"] not in result.stdout

    result = await invoke(service, "trend", "--test", "t", "--env", "prod", *window)
    assert result.exit_code == 0, result.output
    assert "t over time" in result.stdout
    assert "2025-03-05 09:01" in result.stdout
    assert "2025-03-03" not in result.stdout


async def test_trend_cli_errors(service: MetricsStorageService) -> None:
    await service.client.create_indexes()  # the store exists: only the arguments are wrong
    result = await invoke(service, "trend", "--by", "month")
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --by: expected one of day, week, run, got 'month'\n",
    )
    result = await invoke(service, "trend", "--since", "yesterday")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --since: expected a date (YYYY-MM-DD) or an ISO datetime, got 'yesterday'\n"
    )
    result = await invoke(service, "trend", "--by", "run", "--metric", "wer")
    assert result.exit_code == 2
    assert result.stderr == "error: --by run shows each run's score: leave out --metric\n"
    result = await invoke(service, "trend", "--since", "2025-03-05", "--until", "2025-03-01")
    assert (result.exit_code, result.stderr) == (1, "error: since is after until\n")
