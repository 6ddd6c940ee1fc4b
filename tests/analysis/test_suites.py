"""One database, many suites (issue 17.5): `suite` keeps them apart in every history query."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import Result, RunClock, at, git_repo, invoke

from evalstore import MetricsStorageService, evaluation_run

WINDOW = ("--since", "2025-03-01", "--until", "2025-04-01")


async def record(
    service: MetricsStorageService, day: int, suite: str | None, results: list[Result], repo: Path
) -> dict[str, Any]:
    recorder = evaluation_run(
        service,
        environment="dev",
        suite=suite,
        tags=["t"],
        clock=RunClock(at(day)),
        repo_path=repo,
    )
    async with recorder as run:
        for result in results:
            await run.record_test(result.test_id, status=result.status, score=result.score)
    return recorder.document


@pytest.fixture
async def suites(service: MetricsStorageService, tmp_path: Path) -> dict[str, list[str]]:
    main = git_repo(tmp_path / "main", "main")
    ids: dict[str, list[str]] = {"itertools": [], "boltons": [], "none": []}
    for day in (1, 2):
        run = await record(service, day, "itertools", [Result("it::a", "passed", 100)], main)
        ids["itertools"].append(run["evaluation_run_id"])
    for day in (3, 4):  # the newest runs of the database are another suite's
        failing = Result("bo::b", "failed" if day == 4 else "passed", 0 if day == 4 else 100)
        run = await record(service, day, "boltons", [failing], main)
        ids["boltons"].append(run["evaluation_run_id"])
    run = await record(service, 5, None, [Result("old::c", "passed", 50)], main)
    ids["none"].append(run["evaluation_run_id"])  # a run stored before suites existed
    return ids


async def test_latest_and_previous_stay_within_a_suite(
    service: MetricsStorageService, suites: dict[str, list[str]]
) -> None:
    itertools = await service.compare_runs("previous", "latest", suite="itertools")
    assert [itertools["base"]["evaluation_run_id"], itertools["head"]["evaluation_run_id"]] == (
        suites["itertools"]
    )
    assert itertools["regressed"] is False
    boltons = await service.compare_runs("previous", "latest", suite="boltons")
    assert boltons["newly_failing"] == ["bo::b"]
    result = await invoke(service, "compare", "previous", "latest", "--suite", "boltons", "--json")
    assert json.loads(result.stdout)["newly_failing"] == ["bo::b"]
    result = await invoke(
        service, "compare", "previous", "latest", "--suite", "itertools", "--fail-on-regression"
    )
    assert result.exit_code == 0, result.output


async def test_every_history_query_takes_the_suite(
    service: MetricsStorageService, suites: dict[str, list[str]]
) -> None:
    march = {"since": at(1, 0), "until": at(1, 0, month=4)}
    stats = await service.get_test_stats(suite="itertools", **march)
    assert [(s["test_id"], s["runs"]) for s in stats] == [("it::a", 2)]
    trend = await service.get_score_trend(suite="boltons", **march)
    assert [p["evaluation_run_id"] for p in trend] == suites["boltons"]
    assert len(await service.get_score_trend(**march)) == 5  # no suite: every run
    assert [
        c["runs"] for c in await service.compare_configurations(suite="itertools", **march)
    ] == [2]
    result = await invoke(service, "stats", "--suite", "boltons", *WINDOW, "--json")
    assert [row["test_id"] for row in json.loads(result.stdout)] == ["bo::b"]
    result = await invoke(service, "trend", "--suite", "nosuch", *WINDOW)
    assert result.stderr.startswith(
        "note: no finished evaluation run in 2025-03-01 to 2025-04-01 with suite 'nosuch'"
    )


async def test_runs_list_shows_and_filters_the_suite(
    service: MetricsStorageService, suites: dict[str, list[str]]
) -> None:
    result = await invoke(service, "runs", "list", "--json")
    assert [r.get("suite") for r in json.loads(result.stdout)] == [
        None,
        "boltons",
        "boltons",
        "itertools",
        "itertools",
    ]
    result = await invoke(service, "runs", "list", "--suite", "itertools", "--json")
    assert [r["evaluation_run_id"] for r in json.loads(result.stdout)] == suites["itertools"][::-1]
    # The suite is part of the tag query, before its limit: the newest run tagged `t` is
    # of no suite, and the newest of itertools is still found.
    args = ("runs", "list", "-n", "1", "--tag", "t", "--suite", "itertools", "--json")
    [found] = json.loads((await invoke(service, *args)).stdout)
    assert found["evaluation_run_id"] == suites["itertools"][1]
    table = await invoke(service, "runs", "list")
    assert "suite" in table.stdout
    assert "itertools" in table.stdout


async def test_the_suite_comes_from_evalstore_suite(
    service: MetricsStorageService, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("EVALSTORE_SUITE", "nightly-asr")
    async with evaluation_run(service, environment="dev") as run:
        await run.record_test("t", passed=True)
    assert run.document["suite"] == "nightly-asr"
    async with evaluation_run(service, environment="dev", suite="explicit") as run:
        await run.record_test("t", passed=True)
    assert run.document["suite"] == "explicit"
