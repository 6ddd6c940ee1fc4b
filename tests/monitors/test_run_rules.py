"""Rules checked when a run finishes and by `evalstore check`: on every engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from analysis_helpers import Result, RunClock, at, invoke, record_run

from evalstore import MetricsStorageService, evaluation_run

ISSUE_EXAMPLE = """
[[tool.evalstore.rules]]
name = "score-drop"
metric = "score"
check = "delta"
below = -2.0          # alert when the score fell by more than 2 points against the baseline
baseline = "last:5"   # mean of the last 5 comparable completed runs
level = "error"

[[tool.evalstore.rules]]
name = "wer-limit"
metric = "metrics.wer"
check = "above"
threshold = 30.0
level = "critical"
"""


def one_test(score: float, wer: float) -> list[Result]:
    return [Result("t1", "passed", score, {"wer": wer})]


async def stored_alerts(service: MetricsStorageService) -> list[dict[str, object]]:
    return await service.get_alerts(limit=0)


async def test_the_readme_rules_fire_as_written_and_resolve_when_the_run_recovers(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text(ISSUE_EXAMPLE)
    for day in range(1, 6):
        await record_run(service, at(day), one_test(85.0, 20.0))
    assert await stored_alerts(service) == []

    await record_run(service, at(6), one_test(82.0, 31.0))  # -3 points; wer 31 > 30

    alerts = await stored_alerts(service)
    by_rule = {a["rule"]: a for a in alerts}
    assert sorted(by_rule) == ["score-drop", "wer-limit"]
    drop, wer = by_rule["score-drop"], by_rule["wer-limit"]
    assert (drop["level"], drop["state"], drop["value"], drop["threshold"]) == (
        "error",
        "firing",
        82.0,
        -2.0,
    )
    assert drop["baseline"] == {"mean": 85.0, "std": 0.0, "n": 5}
    assert drop["message"] == ("score fell by 3 to 82 (baseline 85 over 5 runs; bound -2)")
    assert (wer["level"], wer["value"], wer["threshold"]) == ("critical", 31.0, 30.0)

    # baseline now runs 2-6: (4 * 85 + 82) / 5 = 84.4; 85 is +0.6
    await record_run(service, at(7), one_test(85.0, 20.0))
    states = {a["rule"]: a["state"] for a in await stored_alerts(service)}
    assert states == {"score-drop": "resolved", "wer-limit": "resolved"}


async def test_consecutive_fires_on_the_nth_breaching_run_and_one_breach_is_one_alert(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    (tmp_path / "evalstore.toml").write_text(
        '[[rules]]\nname = "floor"\nmetric = "score"\ncheck = "below"\n'
        'threshold = 50\nconsecutive = 2\nlevel = "error"\n'
    )
    await record_run(service, at(1), one_test(40.0, 0.0))
    assert await stored_alerts(service) == []  # one breaching run: not yet
    await record_run(service, at(2), one_test(45.0, 0.0))
    [alert] = await stored_alerts(service)
    assert (alert["rule"], alert["value"], alert["runs"]) == ("floor", 45.0, 1)
    await record_run(service, at(3), one_test(30.0, 0.0))
    [alert] = await stored_alerts(service)  # still one alert, now seen in two runs
    assert (alert["value"], alert["runs"], alert["state"]) == (30.0, 2, "firing")
    await record_run(service, at(4), one_test(60.0, 0.0))
    [alert] = await stored_alerts(service)
    assert alert["state"] == "resolved"


async def record_durations(
    service: MetricsStorageService, day: int, durations: dict[str, float]
) -> dict[str, object]:
    async with evaluation_run(service, config={"model": "default"}, clock=RunClock(at(day))) as run:
        for test_id, duration_ms in durations.items():
            await run.record_test(test_id, passed=True, score=90.0, duration_ms=duration_ms)
    return run.document


async def test_a_test_glob_checks_each_matching_test_against_its_own_history(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    (tmp_path / "evalstore.toml").write_text(
        '[[rules]]\nname = "slower"\nmetric = "duration"\ntests = "api_*"\n'
        'check = "percent"\nabove = 50.0\nbetter = "lower"\nbaseline = "last:2"\n'
    )
    await record_durations(service, 1, {"api_a": 100.0, "api_b": 200.0, "ui_c": 100.0})
    await record_durations(service, 2, {"api_a": 120.0, "api_b": 200.0, "ui_c": 100.0})
    # api_a: 170 against (100 + 120) / 2 = 110 is +54.5 %; api_b: 290 / 200 is +45 %;
    # ui_c tripled but is not an api_* test
    await record_durations(service, 3, {"api_a": 170.0, "api_b": 290.0, "ui_c": 300.0})
    [alert] = await stored_alerts(service)
    assert (alert["rule"], alert["test_id"], alert["value"]) == ("slower", "api_a", 170.0)
    assert alert["baseline"] == {"mean": 110.0, "std": pytest.approx(14.142135623730951), "n": 2}
    assert alert["statistic"]["change"] == pytest.approx(54.545454545)


async def test_check_gates_a_ci_job_with_exit_3_and_alerts_can_be_listed_and_acknowledged(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text(ISSUE_EXAMPLE)
    for day in range(1, 6):
        await record_run(service, at(day), one_test(85.0, 20.0))
    (tmp_path / "pyproject.toml").write_text("")  # recorded without monitors
    await record_run(service, at(6), one_test(82.0, 25.0))
    assert await stored_alerts(service) == []

    (tmp_path / "pyproject.toml").write_text(ISSUE_EXAMPLE)
    dry = await invoke(service, "check", "--dry-run", "--json")
    assert dry.exit_code == 3, dry.output
    assert [a["rule"] for a in json.loads(dry.stdout)["alerts"]] == ["score-drop"]
    assert await stored_alerts(service) == []  # --dry-run stores nothing

    checked = await invoke(service, "check")
    assert checked.exit_code == 3, checked.output
    assert "score-drop" in checked.stdout
    assert "fell by 3" in checked.stdout
    again = await invoke(service, "check", "latest", "--json")  # the same answer, one alert
    assert again.exit_code == 3
    [alert] = await stored_alerts(service)

    warn_only = tmp_path / "warn.toml"
    warn_only.write_text(
        '[[rules]]\nname = "soft"\nmetric = "score"\ncheck = "below"\nthreshold = 90\n'
    )
    soft = await invoke(service, "check", "--rules", str(warn_only))
    assert soft.exit_code == 0, soft.output
    strict = await invoke(service, "check", "--rules", str(warn_only), "--strict")
    assert strict.exit_code == 3

    listed = await invoke(service, "alerts", "list", "--level", "error", "--json")
    assert listed.exit_code == 0, listed.output
    assert [a["rule"] for a in json.loads(listed.stdout)] == ["score-drop"]
    acked = await invoke(service, "alerts", "ack", str(alert["_id"]))
    assert acked.exit_code == 0, acked.output
    [stored] = await service.get_alerts(level=["error"])
    assert stored["acknowledged"] is True

    wrong = await invoke(service, "alerts", "ack", "nope")
    assert wrong.exit_code == 1
    assert wrong.stderr.startswith("error: 'nope' is not an alert id")


async def test_check_without_rules_and_with_bad_rules_is_one_line_and_exit_1(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    await record_run(service, at(1), one_test(85.0, 20.0))
    none = await invoke(service, "check")
    assert none.exit_code == 1
    assert none.stderr.startswith("error: no monitor rules found")
    (tmp_path / "evalstore.toml").write_text(
        '[[rules]]\nname = "wer"\nmetric = "metrics.wer"\ncheck = "above"\nthreshold = "x"\n'
    )
    bad = await invoke(service, "check")
    assert bad.exit_code == 1
    assert bad.stderr.strip() == (
        f"error: {tmp_path / 'evalstore.toml'}: rule 'wer': threshold: threshold must be "
        "a finite number, got 'x'"
    )


@pytest.mark.parametrize("option", [["--level", "loud"], ["--state", "open"]])
async def test_alerts_list_refuses_bad_options_with_exit_2(
    service: MetricsStorageService, option: list[str]
) -> None:
    result = await invoke(service, "alerts", "list", *option)
    assert result.exit_code == 2


async def test_checking_an_older_run_again_changes_no_alert(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    (tmp_path / "evalstore.toml").write_text(
        '[[rules]]\nname = "floor"\nmetric = "score"\ncheck = "below"\nthreshold = 50\n'
        'level = "error"\n'
    )
    old = await record_run(service, at(1), one_test(40.0, 0.0))
    await record_run(service, at(2), one_test(60.0, 0.0))  # resolves it
    [resolved] = await stored_alerts(service)
    again = await invoke(service, "check", old["evaluation_run_id"], "--json")
    assert again.exit_code == 3  # the old run did breach
    assert json.loads(again.stdout)["new"] == []  # ...but nothing is sent or reopened
    assert await stored_alerts(service) == [resolved]


async def test_a_level_follows_the_latest_run_and_an_improvement_resolves_a_regression(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    (tmp_path / "evalstore.toml").write_text(
        '[[rules]]\nname = "floor"\nmetric = "score"\ncheck = "below"\n'
        "threshold = { warning = 60.0, critical = 30.0 }\n"
    )
    await record_run(service, at(1), one_test(20.0, 0.0))
    [alert] = await stored_alerts(service)
    assert (alert["level"], alert["max_level"]) == ("critical", "critical")
    await record_run(service, at(2), one_test(55.0, 0.0))
    [alert] = await stored_alerts(service)
    assert (alert["level"], alert["max_level"], alert["threshold"]) == ("warning", "critical", 60.0)
    checked = await invoke(service, "check")
    assert checked.exit_code == 0  # a warning only, now


async def test_a_significant_improvement_resolves_the_regression_and_is_an_info_alert(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    (tmp_path / "evalstore.toml").write_text(
        '[[rules]]\nname = "z"\nmetric = "score"\ncheck = "zscore"\nthreshold = 2.0\n'
        'min_samples = 3\nbaseline = "last:3"\nimprovement = true\nlevel = "error"\n'
    )
    for day, score in enumerate([80.0, 81.0, 79.0], start=1):
        await record_run(service, at(day), one_test(score, 0.0))
    await record_run(service, at(4), one_test(60.0, 0.0))  # far below: a regression
    # baseline of day 5: 60, 79, 81: mean 73.33, sample std 11.59; 99 is z = +2.21
    await record_run(service, at(5), one_test(99.0, 0.0))
    states = sorted((a["kind"], a["level"], a["state"]) for a in await stored_alerts(service))
    assert states == [("improvement", "info", "firing"), ("regression", "error", "resolved")]
    checked = await invoke(service, "check", "--strict")
    assert checked.exit_code == 0  # an improvement never fails a gate
    await record_run(service, at(6), one_test(79.0, 0.0))  # back within noise
    states = sorted((a["kind"], a["state"]) for a in await stored_alerts(service))
    assert states == [("improvement", "resolved"), ("regression", "resolved")]


async def test_a_bracketed_pytest_id_is_its_own_pattern(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    (tmp_path / "evalstore.toml").write_text(
        '[[rules]]\nname = "gone"\nmetric = "score"\ntests = "test_m.py::test_x[1]"\n'
        'check = "below"\nthreshold = 50\n'
    )
    await record_run(service, at(1), [Result("test_m.py::test_x[1]", "failed", 10.0)])
    [alert] = await stored_alerts(service)
    assert (alert["test_id"], alert["value"]) == ("test_m.py::test_x[1]", 10.0)
