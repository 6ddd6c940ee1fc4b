"""Items 2 and 3: per-test statistics and flaky tests.

Six runs, one a day (1st to 6th March 2025, 10:00); runs 1-3 are `dev` and
tagged `baseline`, runs 4-6 `prod` and tagged `tweak`. P = passed, F = failed,
E = error, S = skipped; the number is the score. Tests finish 1, 2, 3... minutes
after their run starts, in the order listed.

| run | steady | flaky | sometimes | erratic | fewflips | once | allskipped |
|-----|--------|-------|-----------|---------|----------|------|------------|
| 1   | P80    | P60   | P80       | F20     | P90      |      | S          |
| 2   | P90    | F40   | P80       | E0      | F10      |      |            |
| 3   | P70    | P60   | P80       | P80     | P90      | P100 |            |
| 4   | P80    | F40   | F30       | P80     | F10      |      |            |
| 5   | P90    | P60   | F30       | S       |          |      |            |
| 6   | P70    |       | F30       | F20     |          |      |            |
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from analysis_helpers import Result, at, invoke, record_run

from evalstore import InvalidDataError, MetricsStorageService
from evalstore.analysis.stats import flips, sort_rows

MARCH = {"since": at(1, 0), "until": at(1, 0, month=4)}
PLAN: list[list[Result]] = [
    [
        Result("steady", "passed", 80),
        Result("flaky", "passed", 60),
        Result("sometimes", "passed", 80),
        Result("erratic", "failed", 20),
        Result("fewflips", "passed", 90),
        Result("allskipped", "skipped"),
    ],
    [
        Result("steady", "passed", 90),
        Result("flaky", "failed", 40),
        Result("sometimes", "passed", 80),
        Result("erratic", "error", 0),
        Result("fewflips", "failed", 10),
    ],
    [
        Result("steady", "passed", 70),
        Result("flaky", "passed", 60),
        Result("sometimes", "passed", 80),
        Result("erratic", "passed", 80),
        Result("fewflips", "passed", 90),
        Result("once", "passed", 100),
    ],
    [
        Result("steady", "passed", 80),
        Result("flaky", "failed", 40),
        Result("sometimes", "failed", 30),
        Result("erratic", "passed", 80),
        Result("fewflips", "failed", 10),
    ],
    [
        Result("steady", "passed", 90),
        Result("flaky", "passed", 60),
        Result("sometimes", "failed", 30),
        Result("erratic", "skipped"),
    ],
    [
        Result("steady", "passed", 70),
        Result("sometimes", "failed", 30),
        Result("erratic", "failed", 20),
    ],
]


@pytest.fixture
async def history(service: MetricsStorageService) -> None:
    for day, results in enumerate(PLAN, start=1):
        early = day <= 3
        await record_run(
            service,
            at(day, 10),
            results,
            environment="dev" if early else "prod",
            tags=["baseline"] if early else ["tweak"],
        )


def stat_row(
    test_id: str,
    runs: int,
    passed: int,
    mean: float | None,
    low: float | None,
    high: float | None,
    pass_rate: float | None,
    last_status: str,
    last_seen: Any,
) -> dict[str, Any]:
    return {
        "test_id": test_id,
        "runs": runs,
        "passed": passed,
        "mean_score": mean,
        "min_score": low,
        "max_score": high,
        "pass_rate": pass_rate,
        "last_status": last_status,
        "last_seen": last_seen,
    }


async def test_stats_of_every_test(service: MetricsStorageService, history: None) -> None:
    assert await service.get_test_stats(**MARCH) == [
        stat_row("allskipped", 1, 0, None, None, None, None, "skipped", at(1, 10, 6)),
        stat_row("erratic", 6, 2, 40.0, 0.0, 80.0, 0.4, "failed", at(6, 10, 3)),
        stat_row("fewflips", 4, 2, 50.0, 10.0, 90.0, 0.5, "failed", at(4, 10, 5)),
        stat_row("flaky", 5, 3, 52.0, 40.0, 60.0, 0.6, "passed", at(5, 10, 2)),
        stat_row("once", 1, 1, 100.0, 100.0, 100.0, 1.0, "passed", at(3, 10, 6)),
        stat_row("sometimes", 6, 3, 55.0, 30.0, 80.0, 0.5, "failed", at(6, 10, 2)),
        stat_row("steady", 6, 6, 80.0, 70.0, 90.0, 1.0, "passed", at(6, 10, 1)),
    ]


async def test_stats_are_sortable_on_any_key(service: MetricsStorageService, history: None) -> None:
    async def order(sort: str, descending: bool) -> list[str]:
        rows = await service.get_test_stats(sort=sort, descending=descending, **MARCH)  # type: ignore[arg-type]
        return [r["test_id"] for r in rows]

    # None last either way; ties in test id order.
    assert await order("mean_score", True) == [
        "once",
        "steady",
        "sometimes",
        "flaky",
        "fewflips",
        "erratic",
        "allskipped",
    ]
    assert await order("runs", True) == [
        "erratic",
        "sometimes",
        "steady",
        "flaky",
        "fewflips",
        "allskipped",
        "once",
    ]
    assert await order("pass_rate", False) == [
        "erratic",
        "fewflips",
        "sometimes",
        "flaky",
        "once",
        "steady",
        "allskipped",
    ]
    assert await order("last_seen", True) == [
        "erratic",
        "sometimes",
        "steady",
        "flaky",
        "fewflips",
        "once",
        "allskipped",
    ]
    with pytest.raises(InvalidDataError, match=r"^sort must be one of test_id, runs, "):
        await order("speed", False)


async def test_stats_filters(service: MetricsStorageService, history: None) -> None:
    prod = await service.get_test_stats(environment="prod", **MARCH)
    assert [(r["test_id"], r["runs"], r["mean_score"], r["pass_rate"]) for r in prod] == [
        ("erratic", 3, 50.0, 0.5),
        ("fewflips", 1, 10.0, 0.0),
        ("flaky", 2, 50.0, 0.5),
        ("sometimes", 3, 30.0, 0.0),
        ("steady", 3, 80.0, 1.0),
    ]
    one = await service.get_test_stats(test_id="flaky", tags=["baseline"], **MARCH)
    assert one == [stat_row("flaky", 3, 2, 160 / 3, 40.0, 60.0, 2 / 3, "passed", at(3, 10, 2))]
    assert await service.get_test_stats(tags=["nope"], **MARCH) == []
    assert await service.get_test_stats(since=at(1, 0, month=4)) == []
    # Runs 5 and 6 only: [5th, 7th).
    late = await service.get_test_stats(since=at(5, 0), until=at(7, 0))
    assert [(r["test_id"], r["runs"]) for r in late] == [
        ("erratic", 2),
        ("flaky", 1),
        ("sometimes", 2),
        ("steady", 2),
    ]


# Wilson 95% bounds, z = 1.959964: 3 passes in 5 runs give (0.6 + 0.384146) / 1.768292 -/+
# 1.959964 * sqrt(0.048 + 0.038415) / 1.768292 = 0.556552 -/+ 0.325827; 2 in 5 the mirror image.
WILSON_3_OF_5 = (0.230724, 0.882379)
WILSON_2_OF_5 = (0.117621, 0.769276)


def flaky_row(
    test_id: str,
    runs: int,
    pass_rate: float,
    count: int,
    rate: float,
    recent: str,
    seen: Any,
    wilson: tuple[float, float],
) -> dict[str, Any]:
    return {
        "test_id": test_id,
        "runs": runs,
        "pass_rate": pass_rate,
        "flips": count,
        "flip_rate": rate,
        "recent": recent,
        "last_seen": seen,
        "pass_rate_low": wilson[0],
        "pass_rate_high": wilson[1],
    }


async def test_flaky_tests_ranked_by_flip_rate(
    service: MetricsStorageService, history: None
) -> None:
    # steady always passes, once ran once, fewflips has 4 runs (< 5), allskipped never ran.
    # sometimes (PPPFFF) changed once and stayed: a regression, not a flake.
    assert await service.get_flaky_tests(**MARCH) == [
        flaky_row("flaky", 5, 0.6, 4, 1.0, "PFPFP", at(5, 10, 2), WILSON_3_OF_5),
        flaky_row("erratic", 5, 0.4, 2, 0.5, "FEPPF", at(6, 10, 3), WILSON_2_OF_5),
    ]


async def test_a_lasting_change_is_told_from_a_flake(
    service: MetricsStorageService, history: None
) -> None:
    # sometimes: passed in runs 1-3, failed from run 4 (its third result that day) on.
    assert await service.get_outcome_changes(**MARCH) == [
        {
            "test_id": "sometimes",
            "runs": 6,
            "change": "broke",
            "changed_at": at(4, 10, 3),
            "pass_rate": 0.5,
            "recent": "PPPFFF",
            "last_seen": at(6, 10, 2),
        }
    ]
    # Runs 3-5 with 3 runs at least: flaky went PFP (a flake), sometimes PFF (one change);
    # erratic (PP, then skipped) and fewflips (PF) ran twice.
    assert await service.get_outcome_changes(3, since=at(3, 0), until=at(6, 0)) == [
        {
            "test_id": "sometimes",
            "runs": 3,
            "change": "broke",
            "changed_at": at(4, 10, 3),
            "pass_rate": 1 / 3,
            "recent": "PFF",
            "last_seen": at(5, 10, 3),
        }
    ]


async def test_flaky_min_runs_and_ties(service: MetricsStorageService, history: None) -> None:
    four = await service.get_flaky_tests(4, **MARCH)
    # fewflips and flaky both flip every time: the lower pass rate ranks first.
    assert [(f["test_id"], f["flip_rate"], f["pass_rate"]) for f in four] == [
        ("fewflips", 1.0, 0.5),
        ("flaky", 1.0, 0.6),
        ("erratic", 0.5, 0.4),
    ]
    assert four[0]["recent"] == "PFPF"
    # erratic has 6 runs but one was skipped: 5 executed runs; sometimes changed once.
    assert await service.get_flaky_tests(6, **MARCH) == []
    assert [c["test_id"] for c in await service.get_outcome_changes(6, **MARCH)] == ["sometimes"]


async def test_flaky_strip_and_filters(service: MetricsStorageService, history: None) -> None:
    short = await service.get_flaky_tests(strip_length=3, **MARCH)
    assert [f["recent"] for f in short] == ["PFP", "PPF"]
    # In prod each of them changed once over two runs: no flake, two changes.
    assert await service.get_flaky_tests(2, environment="prod", **MARCH) == []
    prod = await service.get_outcome_changes(2, environment="prod", **MARCH)
    assert [(c["test_id"], c["change"], c["recent"]) for c in prod] == [
        ("erratic", "broke", "PF"),
        ("flaky", "fixed", "FP"),
    ]
    assert await service.get_flaky_tests(2, tags=["nope"], **MARCH) == []
    only = await service.get_flaky_tests(test_id="erratic", **MARCH)
    assert [(f["test_id"], f["recent"]) for f in only] == [("erratic", "FEPPF")]
    assert await service.get_flaky_tests(test_id="steady", **MARCH) == []
    assert await service.get_flaky_tests(since=at(1, 0, month=4)) == []
    with pytest.raises(InvalidDataError, match=r"^min_runs must be a positive integer, got 0$"):
        await service.get_flaky_tests(0)


def test_flips_counts_changes_between_neighbours() -> None:
    assert flips([]) == 0
    assert flips([True]) == 0
    assert flips([True, True, False, False]) == 1
    assert flips([True, False, True]) == 2


def test_sort_rows_puts_missing_values_last_both_ways() -> None:
    rows = [{"test_id": "b", "v": None}, {"test_id": "c", "v": 1}, {"test_id": "a", "v": 1}]
    assert [r["test_id"] for r in sort_rows(rows, "v")] == ["a", "c", "b"]
    assert [r["test_id"] for r in sort_rows(rows, "v", descending=True)] == ["a", "c", "b"]


async def test_stats_and_flaky_cli(service: MetricsStorageService, history: None) -> None:
    window = ("--since", "2025-03-01", "--until", "2025-04-01")
    result = await invoke(service, "stats", "--sort", "mean_score", "--desc", *window, "--json")
    assert result.exit_code == 0, result.output
    assert [line.split('"')[3] for line in result.stdout.splitlines() if '"test_id"' in line] == [
        "once",
        "steady",
        "sometimes",
        "flaky",
        "fewflips",
        "erratic",
        "allskipped",
    ]
    result = await invoke(service, "stats", "--env", "prod", *window)
    assert result.exit_code == 0, result.output
    assert "Tests (5, 2025-03-01 to 2025-04-01)" in result.stdout
    assert "allskipped" not in result.stdout

    # A long table shows its first rows and says how many more there are (on stderr).
    result = await invoke(service, "stats", "--env", "prod", "--limit", "2", *window)
    assert result.exit_code == 0, result.output
    assert "Tests (2 of 5, 2025-03-01 to 2025-04-01)" in result.stdout
    assert result.stderr == "note: 3 more test(s): --limit 0 shows all of them, --json too\n"
    result = await invoke(service, "stats", "--env", "prod", "--limit", "2", "--json", *window)
    assert len(json.loads(result.stdout)) == 5

    result = await invoke(service, "flaky", "--min-runs", "4", *window)
    assert result.exit_code == 0, result.output
    assert "Flaky tests (3, 2025-03-01 to 2025-04-01)" in result.stdout
    flaky_part, changed_part = result.stdout.split("Changed once, not flaky (1, 2025-03-01")
    assert "sometimes" not in flaky_part
    line = next(line for line in changed_part.splitlines() if "sometimes" in line)
    assert [cell.strip() for cell in line.split("│")[1:7]] == [
        "sometimes",
        "broke",
        "2025-03-04 10:03",
        "6",
        "50%",
        "PPPFFF",
    ]
    result = await invoke(service, "flaky", "--changed", "--json", *window)
    assert [(r["test_id"], r["change"]) for r in json.loads(result.stdout)] == [
        ("sometimes", "broke")
    ]
    line = next(line for line in flaky_part.splitlines() if "fewflips" in line)
    # The Wilson 95% interval of 2 passes in 4: 0.5 -/+ 1.959964 * sqrt(0.0625 + 0.060037)
    # / 1.960365 = 0.5 -/+ 0.349981.
    assert [cell.strip() for cell in line.split("│")[1:7]] == [
        "fewflips",
        "4",
        "50%",
        "15-85%",
        "100%",
        "PFPF",
    ]

    result = await invoke(service, "stats", "--sort", "speed")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --sort: expected one of test_id, runs, passed,")


async def test_test_outcomes_are_flaky_and_changed_from_one_read(
    service: MetricsStorageService, history: None
) -> None:
    window: dict[str, Any] = {"since": at(1, 0), "until": at(1, 0, month=4)}
    outcomes = await service.get_test_outcomes(4, **window)
    assert outcomes == {
        "flaky": await service.get_flaky_tests(4, **window),
        "changed": await service.get_outcome_changes(4, **window),
    }
    assert [f["test_id"] for f in outcomes["flaky"]] == ["fewflips", "flaky", "erratic"]
    assert [c["test_id"] for c in outcomes["changed"]] == ["sometimes"]
