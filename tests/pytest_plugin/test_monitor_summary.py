"""The plugin checks the monitor rules when the session ends and prints their alerts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from plugin_helpers import summary_lines

SUITE = """
def test_a():
    pass

def test_b():
    assert False

def test_c():
    assert False
"""
FLOOR = """
[[rules]]
name = "floor"
metric = "score"
check = "below"
threshold = {warning = 60.0, error = 50.0}
"""


def test_the_terminal_summary_lists_the_alerts_of_the_run(
    inner: pytest.Pytester, run_recorded: Callable[..., pytest.RunResult]
) -> None:
    inner.makepyfile(SUITE)
    (inner.path / "evalstore.toml").write_text(FLOOR)
    result = run_recorded()
    assert result.ret == 1  # the tests' own outcome: alerts do not change pytest's exit code
    [summary, alert] = summary_lines(result)
    assert summary.startswith("evalstore: run ")
    # 1 passed (100) and 2 failed (0): (100 + 0 + 0) / 3 = 33.33, below both bounds
    assert alert == "evalstore: ERROR floor: score is 33.33, below 50"


def test_invalid_rules_are_one_warning_and_the_results_are_still_stored(
    inner: pytest.Pytester,
    run_recorded: Callable[..., pytest.RunResult],
    stored: Callable[[], tuple[list[dict[str, object]], list[dict[str, object]]]],
) -> None:
    inner.makepyfile(SUITE)
    (inner.path / "evalstore.toml").write_text(FLOOR.replace("60.0", '"sixty"'))
    result = run_recorded()
    lines = summary_lines(result)
    assert lines[0].startswith("evalstore: run ")
    assert lines[1] == (
        f"evalstore: WARNING: monitor rules not checked: {inner.path / 'evalstore.toml'}: "
        "rule 'floor': threshold: threshold.warning must be a finite number, got 'sixty'"
    )
    runs, tests = stored()
    assert (len(runs), len(tests)) == (1, 3)


USAGE_SUITE = """
def test_agent(evalstore_metrics):
    evalstore_metrics.usage("acme-small", input_tokens=500_000, output_tokens=1_000)
    evalstore_metrics.agent(attempts=2, tool_calls={"search": {"count": 3, "failures": 1}})

def test_bad_usage(evalstore_metrics):
    evalstore_metrics.usage("acme-small", input_tokens=-5)
"""


def test_the_fixture_records_usage_with_its_test_and_refuses_bad_values(
    inner: pytest.Pytester,
    run_recorded: Callable[..., pytest.RunResult],
    stored: Callable[[], tuple[list[dict[str, object]], list[dict[str, object]]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prices = inner.path / "prices.toml"
    prices.write_text('[models."acme-small"]\ninput = 2.0\noutput = 8.0\n')
    monkeypatch.setenv("EVALSTORE_PRICES", str(prices))
    inner.makepyfile(USAGE_SUITE)
    result = run_recorded()
    result.assert_outcomes(passed=1, failed=1)  # the bad value fails the test that gave it
    result.stdout.fnmatch_lines(["*InvalidDataError: input_tokens*"])
    [run], tests = stored()
    [agent_test] = [t for t in tests if t["test_id"].endswith("test_agent")]
    assert agent_test["agent"]["attempts"] == 2
    assert agent_test["agent"]["first_time_right"] is False
    assert agent_test["agent"]["tool_calls"] == [
        {"name": "search", "count": 3, "failures": 1, "duration_ms": 0.0}
    ]
    usage = run["usage"]
    assert (usage["records"], usage["input_tokens"]) == (1, 500_000)
    assert usage["cost"] == pytest.approx((500_000 * 2.0 + 1_000 * 8.0) / 1e6)  # 1.008
