"""Item 5: run comparison, `latest`/`previous`, and the CI gate (`--fail-on-regression`).

BASE (1st March, branch main) and HEAD (2nd March, main); P = passed,
F = failed, S = skipped, with the score; `wer` (and `latency`) where listed:

| test | BASE          | HEAD                      | change                 |
|------|---------------|---------------------------|------------------------|
| a    | P80, wer 80   | F50, wer 50               | newly failing, -30     |
| b    | P90, wer 90   | P89.5, wer 89.5, latency 20 | score drop, -0.5     |
| c    | F40           | P85                       | newly passing, +45     |
| d    | P70           | P70                       | same                   |
| e    | P60           | -                         | removed                |
| f    | -             | P100                      | added                  |
| s    | S             | F30                       | same (from skipped)    |

Run aggregates: BASE score (80+90+40+70+60)/5 = 68, wer (80+90)/2 = 85;
HEAD score (50+89.5+85+70+100+30)/6 = 70.75, wer (50+89.5)/2 = 69.75, latency 20.
Later runs: OTHER (3rd, branch feature, completed, a P80), a running run on
main (4th) and a run on main that failed before recording any test (5th);
neither of the last two is `latest`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from analysis_helpers import (
    Result,
    RunClock,
    at,
    git_repo,
    invoke,
    record_run,
    record_running_run,
)

from evalstore import InvalidDataError, MetricsStorageService, RunNotFoundError, evaluation_run
from evalstore.analysis.comparison import compare_tests
from evalstore.models import utcnow


@pytest.fixture
async def runs(service: MetricsStorageService, tmp_path: Path) -> dict[str, str]:
    main = git_repo(tmp_path / "main", "main")
    feature = git_repo(tmp_path / "feature", "feature")
    base = await record_run(
        service,
        at(1),
        [
            Result("a", "passed", 80, {"wer": 80}),
            Result("b", "passed", 90, {"wer": 90}),
            Result("c", "failed", 40),
            Result("d", "passed", 70),
            Result("e", "passed", 60),
            Result("s", "skipped"),
        ],
        repo=main,
    )
    head = await record_run(
        service,
        at(2),
        [
            Result("a", "failed", 50, {"wer": 50}),
            Result("b", "passed", 89.5, {"wer": 89.5, "latency": 20}),
            Result("c", "passed", 85),
            Result("d", "passed", 70),
            Result("f", "passed", 100),
            Result("s", "failed", 30),
        ],
        repo=main,
    )
    other = await record_run(service, at(3), [Result("a", "passed", 80)], repo=feature)
    await record_running_run(service, at(4), branch="main")
    await record_run(service, at(5), [], repo=main, status="failed")  # crashed before any test
    return {
        "base": base["evaluation_run_id"],
        "head": head["evaluation_run_id"],
        "other": other["evaluation_run_id"],
        "base_oid": str(base["_id"]),
    }


def row(
    test_id: str,
    base: tuple[str | None, float | None],
    head: tuple[str | None, float | None],
    delta: float | None,
    change: str,
    regressed: bool,
) -> dict[str, Any]:
    return {
        "test_id": test_id,
        "base_status": base[0],
        "head_status": head[0],
        "base_score": base[1],
        "head_score": head[1],
        "delta": delta,
        "head_message": None,
        "change": change,
        "regressed": regressed,
        "known_flaky": False if change == "newly_failing" else None,
        # Every test of these runs lasts 30 s (it starts 30 s before it finishes).
        "base_duration_ms": None if base[0] is None else 30_000.0,
        "head_duration_ms": None if head[0] is None else 30_000.0,
        "duration_delta_ms": None if None in (base[0], head[0]) else 0.0,
        "duration_change_pct": None if None in (base[0], head[0]) else 0.0,
        "slower": False,
    }


async def test_compare_two_runs(service: MetricsStorageService, runs: dict[str, str]) -> None:
    result = await service.compare_runs(runs["base"], runs["head"])
    assert result["tests"] == [
        row("a", ("passed", 80.0), ("failed", 50.0), -30.0, "newly_failing", True),
        row("b", ("passed", 90.0), ("passed", 89.5), -0.5, "score_drop", True),
        row("c", ("failed", 40.0), ("passed", 85.0), 45.0, "newly_passing", False),
        row("d", ("passed", 70.0), ("passed", 70.0), 0.0, "same", False),
        row("e", ("passed", 60.0), (None, None), None, "removed", False),
        row("f", (None, None), ("passed", 100.0), None, "added", False),
        row("s", ("skipped", None), ("failed", 30.0), None, "same", False),
    ]
    assert result["newly_failing"] == ["a"]
    assert result["newly_passing"] == ["c"]
    assert result["added"] == ["f"]
    assert result["removed"] == ["e"]
    assert result["score_drops"] == ["a", "b"]
    assert result["regressions"] == ["a", "b"]
    assert result["regressed"] is True
    assert result["tolerance"] == 0.0
    assert result["metric_deltas"] == [
        {"metric": "score", "base": 68.0, "head": 70.75, "delta": 2.75},
        {"metric": "latency", "base": None, "head": 20.0, "delta": None},
        {"metric": "wer", "base": 85.0, "head": 69.75, "delta": -15.25},
    ]
    assert result["base"]["evaluation_run_id"] == runs["base"]
    assert result["head"]["evaluation_run_id"] == runs["head"]
    assert (result["head"]["git_branch"], result["head"]["status"]) == ("main", "completed")


async def test_tolerance(service: MetricsStorageService, runs: dict[str, str]) -> None:
    half = await service.compare_runs(runs["base"], runs["head"], tolerance=0.5)
    assert (half["score_drops"], half["regressions"]) == (["a"], ["a"])
    assert next(t for t in half["tests"] if t["test_id"] == "b")["change"] == "same"
    # A newly failing test regresses whatever the tolerance.
    lenient = await service.compare_runs(runs["base"], runs["head"], tolerance=30)
    assert (lenient["score_drops"], lenient["regressions"], lenient["regressed"]) == (
        [],
        ["a"],
        True,
    )
    with pytest.raises(InvalidDataError, match=r"^tolerance must be a non-negative number"):
        await service.compare_runs(runs["base"], runs["head"], tolerance=-1)


def test_score_drop_is_judged_on_rounded_deltas() -> None:
    base = {"g": {"status": "passed", "score": 80.3}}
    head = {"g": {"status": "passed", "score": 80.0}}
    # 80.0 - 80.3 is -0.30000000000000426 in floating point.
    assert compare_tests(base, head, 0.3)[0]["delta"] == -0.3
    assert compare_tests(base, head, 0.3)[0]["regressed"] is False
    assert compare_tests(base, head, 0.0)[0]["regressed"] is True


async def test_same_run_did_not_regress(
    service: MetricsStorageService, runs: dict[str, str]
) -> None:
    result = await service.compare_runs(runs["head"], runs["head"])
    assert {t["change"] for t in result["tests"]} == {"same"}
    assert result["regressed"] is False
    assert [m["delta"] for m in result["metric_deltas"]] == [0.0, 0.0, 0.0]


async def test_latest_and_previous(service: MetricsStorageService, runs: dict[str, str]) -> None:
    on_main = await service.compare_runs("previous", "latest", branch="main")
    assert on_main["base"]["evaluation_run_id"] == runs["base"]
    assert on_main["head"]["evaluation_run_id"] == runs["head"]
    assert on_main["regressions"] == ["a", "b"]
    # Anywhere: the newest finished runs with tests are OTHER (3rd) and HEAD (2nd).
    anywhere = await service.compare_runs("previous", "latest")
    assert anywhere["base"]["evaluation_run_id"] == runs["head"]
    assert anywhere["head"]["evaluation_run_id"] == runs["other"]
    assert anywhere["newly_passing"] == ["a"]
    assert anywhere["removed"] == ["b", "c", "d", "f", "s"]
    assert anywhere["regressed"] is False
    # A run id and an ObjectId hex mix with a selector.
    mixed = await service.compare_runs(runs["base_oid"], "latest", branch="main")
    assert mixed["base"]["evaluation_run_id"] == runs["base"]
    assert mixed["head"]["evaluation_run_id"] == runs["head"]


async def test_latest_is_the_newest_finished_run_even_when_its_tests_failed(
    service: MetricsStorageService, runs: dict[str, str], tmp_path: Path
) -> None:
    main = git_repo(tmp_path / "main6", "main")
    broken = await record_run(
        service,
        at(6),
        [Result("a", "failed", 50), Result("b", "passed", 89.5), Result("d", "failed", 0)],
        repo=main,
        status="failed",
    )
    gate = await service.compare_runs("previous", "latest", branch="main")
    assert gate["base"]["evaluation_run_id"] == runs["head"]
    assert (gate["head"]["evaluation_run_id"], gate["head"]["status"]) == (
        broken["evaluation_run_id"],
        "failed",
    )
    assert gate["newly_failing"] == ["d"]
    assert gate["regressed"] is True
    result = await invoke(
        service, "compare", "previous", "latest", "--branch", "main", "--fail-on-regression"
    )
    assert result.exit_code == 3, result.output


async def test_a_run_dated_a_year_ahead_is_never_latest(
    service: MetricsStorageService, runs: dict[str, str], tmp_path: Path
) -> None:
    main = git_repo(tmp_path / "ahead", "main")
    ahead = utcnow() + timedelta(days=365)
    await record_run(service, ahead, [Result("a", "passed", 100)], repo=main)
    gate = await service.compare_runs("previous", "latest", branch="main")
    assert (gate["base"]["evaluation_run_id"], gate["head"]["evaluation_run_id"]) == (
        runs["base"],
        runs["head"],
    )
    assert (await service.select_evaluation_run("latest"))["evaluation_run_id"] == runs["other"]


async def test_a_run_cut_short_is_never_previous(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    repo = git_repo(tmp_path / "cut", "cut")
    three = [Result("a", "passed", 100), Result("b", "passed", 100), Result("x", "passed", 100)]
    whole = await record_run(service, at(10), three, repo=repo)
    cut = evaluation_run(service, environment="dev", clock=RunClock(at(11)), repo_path=repo)

    async def cut_short() -> None:  # cancelled (Ctrl-C, SIGTERM, a timeout) after one test
        async with cut:
            await cut.record_test("a", passed=True)
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await cut_short()
    assert cut.document["status"] == "interrupted"
    broken = [Result("a", "passed", 100), Result("b", "passed", 100), Result("x", "failed", 0)]
    await record_run(service, at(12), broken, repo=repo)
    gate = await service.compare_runs("previous", "latest", branch="cut")
    assert gate["base"]["evaluation_run_id"] == whole["evaluation_run_id"]
    assert (gate["newly_failing"], gate["regressed"]) == (["x"], True)


async def test_latest_per_environment(
    service: MetricsStorageService, runs: dict[str, str], tmp_path: Path
) -> None:
    main = git_repo(tmp_path / "main6", "main")
    staging = await record_run(
        service, at(6), [Result("a", "passed", 80)], repo=main, environment="stage"
    )
    mixed = await service.compare_runs("previous", "latest", branch="main")
    assert mixed["head"]["evaluation_run_id"] == staging["evaluation_run_id"]
    dev = await service.compare_runs("previous", "latest", branch="main", environment="dev")
    assert (dev["base"]["evaluation_run_id"], dev["head"]["evaluation_run_id"]) == (
        runs["base"],
        runs["head"],
    )
    with pytest.raises(
        RunNotFoundError,
        match=r"^no previous finished evaluation run on branch 'main' and environment 'stage': "
        r"found 1 finished run\(s\) with tests$",
    ):
        await service.compare_runs("previous", "latest", branch="main", environment="stage")
    result = await invoke(service, "compare", "previous", "latest", "--env", "dev", "--json")
    assert json.loads(result.stdout)["head"]["evaluation_run_id"] == runs["other"]
    result = await invoke(service, "compare", "previous", "latest", "--env", "stage")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: no previous finished evaluation run on environment")


async def test_a_run_is_named_by_a_unique_prefix_or_latest(
    service: MetricsStorageService, runs: dict[str, str]
) -> None:
    # Run ids start with their start time: 2025-03-01T10-00-00Z-main-xxxxxx.
    prefix = runs["base"][: len("2025-03-01")]
    assert (await service.select_evaluation_run(prefix))["evaluation_run_id"] == runs["base"]
    by_prefix = await service.compare_runs(prefix, runs["head"][:13])
    assert by_prefix["base"]["evaluation_run_id"] == runs["base"]
    assert by_prefix["head"]["evaluation_run_id"] == runs["head"]
    # The newest finished run with tests is OTHER (3rd); previous is HEAD.
    assert (await service.select_evaluation_run("latest"))["evaluation_run_id"] == runs["other"]
    assert (await service.select_evaluation_run("previous"))["evaluation_run_id"] == runs["head"]
    tests = await service.get_test_runs("latest")
    assert [(t["test_id"], t["status"]) for t in tests] == [("a", "passed")]
    with pytest.raises(
        InvalidDataError, match=r"^run id prefix '2025-03-0' matches several runs \("
    ):
        await service.select_evaluation_run("2025-03-0")
    with pytest.raises(RunNotFoundError, match=r"^no evaluation run '2024': list the recent"):
        await service.select_evaluation_run("2024")
    # Regex characters in a prefix are literal.
    with pytest.raises(RunNotFoundError):
        await service.select_evaluation_run("2025.03")
    with pytest.raises(InvalidDataError, match=r"^evaluation_run_id must be a non-empty string"):
        await service.select_evaluation_run({"$ne": None})  # type: ignore[arg-type]
    result = await invoke(service, "compare", prefix, runs["head"][:13], "--json")
    assert json.loads(result.stdout)["base"]["evaluation_run_id"] == runs["base"]


async def test_previous_and_latest_come_from_one_query(
    service: MetricsStorageService, runs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    actions: list[str] = []
    rows = service.client.rows

    async def counting(query: Any, *, action: str) -> Any:
        actions.append(action)
        return await rows(query, action=action)

    monkeypatch.setattr(service.client, "rows", counting)
    await service.compare_runs("previous", "latest", branch="main")
    # ... then, as `a` is newly failing, one read of the flaky tests (is `a` known flaky).
    assert actions == ["find the latest runs", "compare runs", "compare runs", "find flaky tests"]


async def test_missing_runs(service: MetricsStorageService, runs: dict[str, str]) -> None:
    with pytest.raises(
        RunNotFoundError,
        match=r"^no previous finished evaluation run on branch 'feature': "
        r"found 1 finished run\(s\) with tests$",
    ):
        await service.compare_runs("previous", "latest", branch="feature")
    with pytest.raises(RunNotFoundError, match=r"^no latest finished evaluation run on branch"):
        await service.compare_runs("latest", "latest", branch="nope")
    with pytest.raises(RunNotFoundError, match=r"^no evaluation run 'nope': list the recent"):
        await service.compare_runs("nope", runs["head"])


async def test_compare_cli_gates_on_regressions(
    service: MetricsStorageService, runs: dict[str, str]
) -> None:
    result = await invoke(service, "compare", runs["base"], runs["head"])
    assert result.exit_code == 0, result.output
    assert "newly failing: a\n" in result.stdout
    assert "added: f\nremoved: e\n" in result.stdout
    assert "regressed: a, b (tolerance 0.0 points)" in result.stdout
    # Unchanged tests are left out of the table unless --all.
    assert "│ d " not in result.stdout
    assert "│ d " in (await invoke(service, "compare", runs["base"], runs["head"], "--all")).stdout

    gate = ("--fail-on-regression",)
    assert (await invoke(service, "compare", runs["base"], runs["head"], *gate)).exit_code == 3
    strict = await invoke(service, "compare", runs["base"], runs["head"], *gate, "--tolerance", "1")
    assert strict.exit_code == 3
    assert "regressed: a (tolerance 1.0 points)" in strict.stdout
    fine = await invoke(service, "compare", "previous", "latest", *gate)
    assert fine.exit_code == 0, fine.output
    assert "no regression (tolerance 0.0 points)" in fine.stdout

    as_json = await invoke(service, "compare", "previous", "latest", "--branch", "main", "--json")
    assert as_json.exit_code == 0
    data = json.loads(as_json.stdout)
    assert (data["regressions"], data["regressed"]) == (["a", "b"], True)
    assert data["base"]["started_at"] == "2025-03-01T10:00:00Z"


async def test_compare_cli_errors(service: MetricsStorageService, runs: dict[str, str]) -> None:
    result = await invoke(service, "compare", "nope", "latest", "--fail-on-regression")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: no evaluation run 'nope': list the recent ones with `evalstore runs list`\n"
    )
