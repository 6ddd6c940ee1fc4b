"""`configs compare --by`, `configs best`, `trend --direction` and `report configs` (issue 13.6).

Three configurations (`system_information.config`), one test per run, March 2025:

| run | started | config                               | test       | usage.cost |
|-----|---------|--------------------------------------|------------|------------|
| r1  | 1st     | A = {temperature: 0.2, note: "a|b\\nc"} | passed 80  | 1.0        |
| r2  | 2nd     | A                                    | failed 50  | 2.0        |
| r3  | 3rd     | B = {temperature: 0.7, note: "x"}    | passed 70  | 0.5        |
| r4  | 4th     | C = {note: "y"}                      | passed 90  | (none)     |

By temperature: 0.2 has 2 runs, 1 success (50%), mean score 65, mean cost 1.50, cost per
success 3.00; 0.7 has 1 run, 100%, 70, 0.50, 0.50; C's run lacks the key: "(missing)".
Best by score: C (90); by cost per success: B (0.50); with --max-cost 0.1: none.
Every run lasts one hour.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))  # the shared history helpers
from analysis_helpers import Result, at, invoke, record_run

from evalstore import MetricsStorageService
from evalstore.cli.render import to_jsonable

WINDOW = ("--since", "2025-03-01", "--until", "2025-04-01")
A = {"temperature": 0.2, "note": "a|b\nc"}
B = {"temperature": 0.7, "note": "x"}
C = {"note": "y"}


@pytest.fixture
async def hashes(service: MetricsStorageService) -> dict[str, str]:
    found = {}
    for day, config, result, cost in (
        (1, A, Result("t", "passed", 80), 1.0),
        (2, A, Result("t", "failed", 50), 2.0),
        (3, B, Result("t", "passed", 70), 0.5),
        (4, C, Result("t", "passed", 90), None),
    ):
        run = await record_run(service, at(day), [result], config=config)
        if cost is not None:
            await service.client.update_run(
                {"_id": run["_id"]}, {"usage": {"cost": cost}}, action="test"
            )
        found[config["note"]] = run["system_info_hash"]
    return {"a": found[A["note"]], "b": found["x"], "c": found["y"]}


def rows(output: str) -> list[list[str]]:
    """The cells of a Rich table's body rows (lines between `│`)."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.lstrip().startswith("│")
    ]


async def test_compare_by_a_key_as_a_table(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    result = await invoke(service, "configs", "compare", "--by", "config.temperature", *WINDOW)
    assert result.exit_code == 0, result.output
    assert "Runs by config.temperature (3 values, 2025-03-01 to 2025-04-01)" in result.stdout
    assert rows(result.stdout) == [
        ["0.2", "2", "50%", "65.0", "1.50", "3.00", "3600.0", "1"],
        ["0.7", "1", "100%", "70.0", "0.50", "0.50", "3600.0", "1"],
        ["(missing)", "1", "100%", "90.0", "-", "-", "3600.0", "1"],
    ]
    assert result.stderr == ""


async def test_compare_by_a_key_as_json(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    result = await invoke(
        service, "configs", "compare", "--by", "config.temperature", *WINDOW, "--json"
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert [(g["value"], g["label"], g["missing"]) for g in answer] == [
        (0.2, "0.2", False),
        (0.7, "0.7", False),
        (None, "(missing)", True),
    ]
    assert answer[0] == {
        "value": 0.2,
        "label": "0.2",
        "missing": False,
        "configurations": 1,
        "runs": 2,
        "successes": 1,
        "success_rate": 0.5,
        "mean_score": 65.0,
        "cost_runs": 2,
        "mean_cost": 1.5,
        "total_cost": 3.0,
        "cost_per_success": 3.0,
        "mean_duration_s": 3600.0,
    }


async def test_empty_answers_say_why(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    january = ("--since", "2025-01-01", "--until", "2025-02-01")
    note = "note: no finished evaluation run in 2025-01-01 to 2025-02-01"
    compared = await invoke(service, "configs", "compare", "--by", "config.x", *january, "--json")
    assert (compared.exit_code, json.loads(compared.stdout)) == (0, [])
    assert compared.stderr.startswith(note)
    best = await invoke(service, "configs", "best", *january, "--json")
    assert best.exit_code == 0
    assert json.loads(best.stdout) == {
        "objective": "score",
        "max_cost": None,
        "min_runs": 1,
        "best": None,
        "ranking": [],
        "excluded": [],
    }
    assert best.stderr.startswith(note)
    direction = await invoke(service, "trend", "--direction", *january)
    assert direction.exit_code == 0
    assert "verdict: not enough runs (0 finished run(s) with a score value" in direction.stdout
    assert direction.stderr.startswith(note)


async def test_a_window_without_costs_says_so(service: MetricsStorageService) -> None:
    await record_run(service, at(1), [Result("t", "passed", 80)], config=C)
    result = await invoke(service, "configs", "compare", "--by", "config.note", *WINDOW)
    assert result.exit_code == 0
    assert rows(result.stdout) == [["y", "1", "100%", "80.0", "-", "-", "3600.0", "1"]]
    assert "note: no finished run in 2025-03-01 to 2025-04-01 has a cost" in result.stderr


async def test_best_configuration(service: MetricsStorageService, hashes: dict[str, str]) -> None:
    result = await invoke(service, "configs", "best", *WINDOW)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"Best by mean score (2025-03-01 to 2025-04-01): {hashes['c'][:12]}  90.0"
    )
    snapshot_end = lines.index("}")
    assert json.loads("\n".join(lines[2 : snapshot_end + 1])) == C
    assert [row[0] for row in rows(result.stdout) if row[0]] == [
        hashes["c"][:12],
        hashes["b"][:12],
        hashes["a"][:12],
    ]
    cheapest = await invoke(
        service, "configs", "best", "--objective", "cost-per-success", *WINDOW, "--json"
    )
    answer = json.loads(cheapest.stdout)
    assert answer["best"]["system_info_hash"] == hashes["b"]
    assert answer["best"]["config"] == B
    assert [(c["system_info_hash"], c["cost_per_success"]) for c in answer["ranking"]] == [
        (hashes["b"], 0.5),
        (hashes["a"], 3.0),
    ]
    assert [(c["system_info_hash"], c["excluded"]) for c in answer["excluded"]] == [
        (hashes["c"], "no run with a cost")
    ]
    two = await invoke(service, "configs", "best", "--min-runs", "2", *WINDOW, "--json")
    assert json.loads(two.stdout)["best"]["system_info_hash"] == hashes["a"]


async def test_no_configuration_under_the_cost_cap(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    result = await invoke(service, "configs", "best", "--max-cost", "0.1", *WINDOW, "--json")
    assert result.exit_code == 0
    answer = json.loads(result.stdout)
    assert (answer["best"], answer["ranking"], answer["max_cost"]) == (None, [], 0.1)
    assert result.stderr.startswith(
        "note: none of the 3 configuration(s) in 2025-03-01 to 2025-04-01 qualifies for score: "
    )
    assert "1 with no run with a cost, so it cannot be held to the cost cap" in result.stderr
    assert "1 with mean cost 1.5 above the cap of 0.1" in result.stderr
    table = await invoke(service, "configs", "best", "--max-cost", "0.1", *WINDOW)
    assert "Not eligible (3)" in table.stdout
    assert "Best by" not in table.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("configs", "compare"), "Missing option '--by'"),
        (("configs", "compare", "--by", "config..x"), "--by: key must be a dotted path"),
        (("configs", "compare", "--by", "$where"), "--by: key must be a dotted path"),
        (("configs", "best", "--objective", "fast"), "--objective: expected one of score"),
        (("configs", "best", "--max-cost", "-1"), "--max-cost"),
        (("configs", "best", "--max-cost", "nan"), "--max-cost"),
        (("configs", "best", "--max-cost", "inf"), "--max-cost: expected a finite number"),
        (("configs", "best", "--min-runs", "0"), "--min-runs"),
        (("trend", "--last", "5"), "--last counts the runs of --direction"),
        (("trend", "--direction", "--last", "0"), "--last"),
        (("trend", "--direction", "--test", "t"), "--direction fits the runs' score"),
        (("trend", "--direction", "--by", "week"), "leave out --by"),
        (("report", "configs"), "Missing option '--output'"),
        (("report", "configs", "-o", "r.md", "--by", "a."), "--by: key must be a dotted path"),
    ],
)
async def test_bad_options_exit_2(
    service: MetricsStorageService, args: tuple[str, ...], message: str
) -> None:
    result = await invoke(service, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert result.stdout == ""


async def _series(service: MetricsStorageService, scores: list[float]) -> None:
    for day, score in enumerate(scores, start=1):
        await record_run(service, at(day), [Result("t", "passed", score)])


async def test_trend_direction(service: MetricsStorageService) -> None:
    # y = 50 + 2i + (-1)^i, one run a day: slope 64/33 = 1.94 per run (and per day)
    await _series(service, [50 + 2 * i + (-1) ** i for i in range(10)])
    result = await invoke(service, "trend", "--direction", *WINDOW)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "score: the last 10 finished run(s) (2025-03-01 to 2025-04-01, started 2025-03-01 "
        "10:00 to 2025-03-10 10:00 UTC)"
    )
    assert re.fullmatch(r"  per run: \+1\.94 \(95% interval \+1\.\d+ to \+2\.\d+\)", lines[1])
    assert lines[2] == lines[1].replace("per run", "per day")
    assert lines[3] == "verdict: improving (the 95% interval of the slope per run is above 0)"
    as_json = await invoke(service, "trend", "--direction", "--last", "3", *WINDOW, "--json")
    answer = json.loads(as_json.stdout)
    # the last three: 63, 67, 67
    assert (answer["runs"], answer["per_run"]["slope"], answer["first"]) == (
        3,
        pytest.approx(2.0),
        "2025-03-08T10:00:00Z",
    )
    assert answer["verdict"] == "flat"  # three noisy points do not pin the slope down
    unknown = await invoke(service, "trend", "--direction", "--metric", "wer", *WINDOW)
    assert "verdict: not enough runs (0 finished run(s) with a wer value" in unknown.stdout
    assert "recorded the metric 'wer'" in unknown.stderr


async def test_trend_direction_without_scipy(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _series(service, [50.0, 60.0, 70.0])
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    result = await invoke(service, "trend", "--direction", *WINDOW)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: trend --direction needs scipy: pip install 'evalstore[stats]'\n"
    )
    # The report is still written, and says what is missing.
    report = await invoke(service, "report", "configs", "-o", "report.md", *WINDOW)
    assert report.exit_code == 0, report.output
    assert "trend --direction needs scipy" in Path("report.md").read_text()


def _table_widths(text: str) -> list[int]:
    """How many cell separators each table line of a Markdown text has."""
    return [line.count("|") for line in text.splitlines() if line.startswith("|")]


async def test_report_by_configuration(
    service: MetricsStorageService, hashes: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "report.md"
    result = await invoke(service, "report", "configs", "-o", str(target), *WINDOW)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {target} (3 configurations, 4 runs)\n"
    text = target.read_text()
    assert text.startswith("# Configurations report\n\nGenerated at ")
    assert re.search(r"Generated at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by evalstore\. ", text)
    assert "Window: 2025-03-01 to 2025-04-01. 4 finished run(s), 3 configuration(s)." in text
    # The note "a|b\nc" stays in its cell: every line of a table has the same separators.
    assert (
        f"| {hashes['a'][:12]} | config.note=a&#124;b<br>c, config.temperature=0.2 | 2 | 50% | "
        "65.0 | 1.50 | 3.00 | 3600.0 |"
    ) in text
    header = "| configuration | differs in | runs | success rate | mean score | mean cost |"
    assert header in text
    assert _table_widths(text.split("## Best configuration")[0]) == [9] * 5
    best = text.split("## Best configuration")[1].split("## Score direction")[0]
    assert f"| mean score | {hashes['c'][:12]} | " in best
    assert f"| cost per success | {hashes['b'][:12]} | " in best
    assert "| 90.0 | 1 |" in best
    assert _table_widths(best) == [6] * 5
    assert '```json\n{\n  "note": "y"\n}\n```' in best
    direction = text.split("## Score direction")[1]
    assert (
        "score of the last 4 finished run(s) (started 2025-03-01 10:00 to 2025-03-04 10:00 UTC)"
        in direction
    )
    assert "**flat** (the 95% interval of the slope per run holds 0" in direction
    assert "| per run | +5 | " in direction  # 80, 50, 70, 90: Sxy = 25 over Sxx = 5


async def test_report_by_a_key(
    service: MetricsStorageService, hashes: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "by-note.md"
    result = await invoke(
        service, "report", "configs", "-o", str(target), "--by", "config.note", *WINDOW
    )
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "## Runs by config.note\n" in text
    assert "| a&#124;b<br>c | 2 | 50% | 65.0 | 1.50 | 3.00 | 3600.0 | 1 |" in text
    assert "| (missing) |" not in text
    assert _table_widths(text.split("## Best configuration")[0]) == [9] * 5


def test_markdown_cells_hold_any_text() -> None:
    from evalstore.analysis.reports import md_cell, md_code

    assert md_cell("a|b\r\nc\nd") == "a&#124;b<br>c<br>d"
    assert md_cell("x_*[y]*<b>&") == r"x\_\*\[y\]\*&lt;b&gt;&amp;"
    assert md_cell("back\\slash|") == "back\\\\slash&#124;"
    assert md_code("a ``` b") == "````\na ``` b\n````"


async def test_json_answers_are_the_service_answers(
    service: MetricsStorageService, hashes: dict[str, str]
) -> None:
    since, until = at(1, 0), at(1, 0, month=4)
    expected: Any = await service.best_configuration("success", since=since, until=until)
    result = await invoke(service, "configs", "best", "--objective", "success", *WINDOW, "--json")
    assert json.loads(result.stdout) == to_jsonable(expected)
