"""Issue 12.5/12.6: `evalstore compare --stats` and `--duration-tolerance`, and the gate.

Each scenario records a BASE run and a HEAD run of twelve tests (`t00`..`t11`),
every test passing with BASE score 80 and 1000 ms:

* noisy: HEAD scores 80 + [-3, 2, -1, 1, -2, 3, -4, 1, 0, -1, 2, -2] (mean -1/3), 1000 ms;
* drop:  HEAD scores 80 + [-10, -11, -9, -10, -12, -8, -10, -11, -9, -10, -10, -10]
  (mean -10), 1500 ms (+500 ms, +50%).

BASE also has `gone` (removed) and HEAD `new` (added): paired 12, unmatched 2.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from evalstore import MetricsStorageService, evaluation_run
from evalstore.cli.app import app
from evalstore.cli.demo import DemoClock

runner = CliRunner()
NOISE = [-3, 2, -1, 1, -2, 3, -4, 1, 0, -1, 2, -2]
DROP = [-10, -11, -9, -10, -12, -8, -10, -11, -9, -10, -10, -10]
REGRESSION_EXIT = 3


async def record(
    service: MetricsStorageService,
    clock: DemoClock,
    results: Sequence[tuple[str, str, float, float]],
) -> str:
    """One run of `(test_id, status, score, duration_ms)`; its id."""
    clock.advance(3600)
    async with evaluation_run(service, config={"model": "m"}, clock=clock) as run:
        for test_id, status, score, ms in results:
            clock.advance(1)
            await run.record_test(
                test_id,
                status=status,  # type: ignore[arg-type]
                score=score,
                metrics={"wer": score},
                duration_ms=ms,
            )
    return run.evaluation_run_id


async def two_runs(service: MetricsStorageService, deltas: list[int], head_ms: float) -> None:
    clock = DemoClock(datetime.now(timezone.utc) - timedelta(days=1))
    base = [(f"t{i:02}", "passed", 80.0, 1000.0) for i in range(12)]
    head = [(f"t{i:02}", "passed", 80.0 + d, head_ms) for i, d in enumerate(deltas)]
    await record(service, clock, [*base, ("gone", "passed", 90.0, 10.0)])
    await record(service, clock, [*head, ("new", "passed", 90.0, 10.0)])


async def invoke(service: MetricsStorageService, *args: str) -> tuple[int, str, str]:
    client = service.client
    argv = [*args, "--url", client.connection_string, "--db", client.database_name]
    result = await asyncio.to_thread(runner.invoke, app, argv)
    return result.exit_code, result.stdout, result.stderr


async def compare_json(service: MetricsStorageService, *args: str) -> tuple[int, Any]:
    code, out, err = await invoke(service, "compare", "previous", "latest", "--json", *args)
    assert err == ""
    return code, json.loads(out)


async def test_a_noisy_small_drop_passes_the_statistical_gate(
    service: MetricsStorageService,
) -> None:
    await two_runs(service, NOISE, 1000.0)
    gate = ("--fail-on-regression",)
    # Without --stats the raw drops regress; with --stats they are within noise.
    code, raw = await compare_json(service, *gate)
    assert (code, raw["statistics"]) == (REGRESSION_EXIT, None)
    assert raw["regressions"] == ["t00", "t02", "t04", "t06", "t09", "t11"]
    code, result = await compare_json(service, *gate, "--stats")
    assert code == 0
    stats = result["statistics"]
    assert (stats["paired"], stats["unmatched"]) == (12, ["gone", "new"])
    score = stats["score"]
    assert score["pairs"] == 12
    assert score["mean_difference"] == round(-1 / 3, 6)
    assert score["ci_low"] < -1 / 3 < score["ci_high"]
    assert score["ci_high"] > 0
    nonzero = [d for d in NOISE if d]
    assert score["wilcoxon_p"] == pytest.approx(scipy_stats.wilcoxon(nonzero).pvalue, abs=1e-12)
    assert score["verdict"] == "within_noise"
    assert [m["metric"] for m in stats["metrics"]] == ["wer"]
    assert stats["pass_fail"] == {
        "pairs": 12,
        "newly_failing": 0,
        "newly_passing": 0,
        "p_value": 1.0,
        "verdict": "no_regression",
    }
    assert stats["duration"]["mean_difference"] == 0.0
    assert stats["regressed"] is False
    # The table says so.
    code, out, _ = await invoke(service, "compare", "previous", "latest", "--stats", *gate)
    assert code == 0
    assert "paired 12 test(s) present in both runs; unmatched: gone, new" in out
    [row] = [line for line in out.splitlines() if line.startswith("│ score ") and "12" in line]
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        "score",
        "12",
        "-0.33",
        f"[{score['ci_low']:+.2f}, {score['ci_high']:+.2f}]",
        f"{score['wilcoxon_p']:.3f}",
        "within noise",
    ]
    assert "McNemar exact p = 1.000: no regression" in out
    assert "regression within noise: 6 test(s) dropped or newly failing, not significant" in out


async def test_a_consistent_large_drop_fails_the_statistical_gate(
    service: MetricsStorageService,
) -> None:
    await two_runs(service, DROP, 1500.0)
    args = ("--fail-on-regression", "--stats", "--tolerance", "2", "--duration-tolerance", "20")
    code, result = await compare_json(service, *args)
    assert code == REGRESSION_EXIT
    stats = result["statistics"]
    assert stats["score"]["mean_difference"] == -10.0
    assert stats["score"]["ci_high"] < -2
    assert stats["score"]["verdict"] == "significant"
    assert stats["metrics"][0]["verdict"] == "significant"
    # Every test is 500 ms slower: the interval is that point, beyond 20% of 1000 ms.
    assert stats["duration"] == {
        "metric": "duration_ms",
        "pairs": 12,
        "mean_difference": 500.0,
        "ci_low": 500.0,
        "ci_high": 500.0,
        "wilcoxon_p": scipy_stats.wilcoxon([500.0] * 12).pvalue,
        "note": None,
        "verdict": "significant",
    }
    assert stats["regressed"] is True
    first = result["tests"][0]
    assert (first["test_id"], first["base_duration_ms"], first["head_duration_ms"]) == (
        "gone",
        10.0,
        None,
    )
    t00 = next(t for t in result["tests"] if t["test_id"] == "t00")
    assert (t00["duration_delta_ms"], t00["duration_change_pct"], t00["slower"]) == (
        500.0,
        50.0,
        True,
    )
    assert result["duration_tolerance"] == 20.0
    assert result["duration_regressions"] == [f"t{i:02}" for i in range(12)]
    code, out, _ = await invoke(service, "compare", "previous", "latest", *args)
    assert code == REGRESSION_EXIT
    assert "regressed (significant): score, duration (tolerance 2.0 points)" in out
    assert "+500 (+50.0%)" in out


async def test_durations_without_stats(service: MetricsStorageService) -> None:
    await two_runs(service, [0] * 12, 1500.0)
    # Scores unchanged: no regression; durations are reported, not judged, by default.
    code, result = await compare_json(service, "--fail-on-regression")
    assert code == 0
    assert (result["duration_tolerance"], result["duration_regressions"]) == (None, [])
    t00 = next(t for t in result["tests"] if t["test_id"] == "t00")
    assert (t00["duration_delta_ms"], t00["duration_change_pct"], t00["slower"]) == (
        500.0,
        50.0,
        False,
    )
    # Slower than 49%: each test regressed on its duration, and the gate fails.
    code, result = await compare_json(service, "--fail-on-regression", "--duration-tolerance", "49")
    assert (code, result["regressed"], result["duration_regressed"]) == (
        REGRESSION_EXIT,
        False,
        True,
    )
    code, result = await compare_json(service, "--fail-on-regression", "--duration-tolerance", "50")
    assert (code, result["duration_regressions"]) == (0, [])


@pytest.mark.parametrize(
    ("option", "value"), [("--duration-tolerance", "-1"), ("--duration-tolerance", "nan")]
)
async def test_bad_duration_tolerance_is_exit_2(
    service: MetricsStorageService, option: str, value: str
) -> None:
    code, _, err = await invoke(service, "compare", "previous", "latest", option, value)
    assert code == 2
    assert "--duration-tolerance" in err


async def test_without_scipy_compare_stats_is_one_line_and_exit_1(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await two_runs(service, NOISE, 1000.0)
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    code, out, err = await invoke(service, "compare", "previous", "latest", "--stats")
    assert (code, out) == (1, "")
    assert err == "error: compare --stats needs scipy: pip install 'evalstore[stats]'\n"
    # Without --stats compare needs no scipy.
    code, _, err = await invoke(service, "compare", "previous", "latest")
    assert (code, err) == (0, "")


async def test_a_known_flaky_test_is_marked_when_newly_failing(
    service: MetricsStorageService,
) -> None:
    clock = DemoClock(datetime.now(timezone.utc) - timedelta(days=2))
    # `shaky` goes P F P F P (base) F (head): flaky; `steady` P P P P P (base) F (head): not.
    shaky = ("passed", "failed", "passed", "failed", "passed", "failed")
    steady = ("passed",) * 5 + ("failed",)
    for one, other in zip(shaky, steady, strict=True):
        await record(service, clock, [("shaky", one, 80.0, 5.0), ("steady", other, 80.0, 5.0)])
    code, result = await compare_json(service)
    assert code == 0
    assert result["newly_failing"] == ["shaky", "steady"]
    assert result["known_flaky"] == ["shaky"]
    assert [(t["test_id"], t["known_flaky"]) for t in result["tests"]] == [
        ("shaky", True),
        ("steady", False),
    ]
    code, out, _ = await invoke(service, "compare", "previous", "latest")
    assert "newly_failing (known flaky)" in out
    assert "known flaky: shaky" in out
    # And `flaky` gives its pass rate's Wilson interval: 3 of 6 is 0.5 -/+ 1.959964 *
    # sqrt(0.25/6 + 3.841459/144) / (1 + 3.841459/6) = 0.5 -/+ 0.312384.
    code, out, _ = await invoke(service, "flaky", "--json")
    [flaky] = json.loads(out)
    assert (flaky["test_id"], flaky["pass_rate_low"], flaky["pass_rate_high"]) == (
        "shaky",
        0.187616,
        0.812384,
    )
