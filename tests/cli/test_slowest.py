"""`evalstore slowest` and `evalstore trend --test ID --duration` (issue 12, item 6).

The history (March 2025, durations in ms; tests finish 1, 2, 3 minutes after the start):

| run | started       | a            | b            | s                  |
|-----|---------------|--------------|--------------|--------------------|
| R1  | Mon 3rd 10:00 | passed 100   | passed 300   | skipped 50         |
| R2  | Tue 4th 10:00 | passed 200   | failed 100   | skipped 70         |
| R3  | Thu 20th 10:00| -            | -            | skipped 80         |

Over 1st-19th March: b mean 200, max 300, last 100 (-50%); a mean 150, max 200,
last 200 (+33%); s never ran (only skipped). From the 20th: runs, but no executed test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from typer.testing import CliRunner

from evalstore import MetricsStorageService, evaluation_run
from evalstore.cli.app import app

UTC = timezone.utc
WINDOW = ("--since", "2025-03-01", "--until", "2025-03-20")
runner = CliRunner()


def at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


async def record(
    service: MetricsStorageService, started_at: datetime, tests: Sequence[tuple[str, str, float]]
) -> None:
    times = iter([started_at, started_at + timedelta(hours=1)])
    async with evaluation_run(
        service, config={"model": "m"}, clock=lambda: next(times), repo_path="."
    ) as run:
        for index, (test_id, status, duration) in enumerate(tests):
            await run.record_test(
                test_id,
                status=status,  # type: ignore[arg-type]
                finished_at=started_at + timedelta(minutes=index + 1),
                duration_ms=duration,
            )


@pytest.fixture
async def history(service: MetricsStorageService) -> MetricsStorageService:
    await record(
        service, at(3), [("a", "passed", 100.0), ("b", "passed", 300.0), ("s", "skipped", 50.0)]
    )
    await record(
        service, at(4), [("a", "passed", 200.0), ("b", "failed", 100.0), ("s", "skipped", 70.0)]
    )
    await record(service, at(20), [("s", "skipped", 80.0)])
    return service


async def invoke(service: MetricsStorageService, *args: str) -> tuple[int, str, str]:
    """The CLI (in a thread: it calls asyncio.run) against the test's database."""
    client = service.client
    argv = [*args, "--url", client.connection_string, "--db", client.database_name]
    result = await asyncio.to_thread(runner.invoke, app, argv)
    return result.exit_code, result.stdout, result.stderr


def flat(text: str) -> str:
    """`text` on one line: Rich wraps titles and boxes messages."""
    return " ".join(text.replace("│", " ").split())


def cells(output: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    for line in output.splitlines():
        parts = [part.strip() for part in line.strip("│┃ ").split("│")]
        if parts and parts[0] == first:
            return parts
    raise AssertionError(f"no row {first!r} in:\n{output}")


async def test_the_table_lists_the_slowest_first(history: MetricsStorageService) -> None:
    code, out, err = await invoke(history, "slowest", *WINDOW)
    assert code == 0, err
    assert "Slowest tests (2, 2025-03-01 to 2025-03-20)" in flat(out)
    assert out.index("│ b ") < out.index("│ a ")
    assert cells(out, "b") == ["b", "2", "200.0", "300.0", "100.0", "-50%", "2025-03-04 10:02"]
    assert cells(out, "a") == ["a", "2", "150.0", "200.0", "200.0", "+33%", "2025-03-04 10:01"]
    assert "│ s " not in out  # only ever skipped
    assert err == ""


async def test_limit(history: MetricsStorageService) -> None:
    code, out, _ = await invoke(history, "slowest", "--limit", "1", *WINDOW)
    assert code == 0
    assert "Slowest tests (1, " in out
    assert cells(out, "b")[0] == "b"
    assert "│ a " not in out
    code, out, _ = await invoke(history, "slowest", "-n", "0", *WINDOW)
    assert code == 0
    assert "Slowest tests (2, " in out


async def test_json(history: MetricsStorageService) -> None:
    code, out, err = await invoke(history, "slowest", "--json", *WINDOW)
    assert code == 0, err
    assert json.loads(out) == [
        {
            "test_id": "b",
            "runs": 2,
            "mean_ms": 200.0,
            "max_ms": 300.0,
            "last_ms": 100.0,
            "change": -0.5,
            "last_seen": "2025-03-04T10:02:00Z",
        },
        {
            "test_id": "a",
            "runs": 2,
            "mean_ms": 150.0,
            "max_ms": 200.0,
            "last_ms": 200.0,
            "change": 50 / 150,
            "last_seen": "2025-03-04T10:01:00Z",
        },
    ]


@pytest.mark.parametrize(
    ("window", "note"),
    [
        (
            ("--since", "2025-05-01"),
            "note: no finished evaluation run in since 2025-05-01: widen the window "
            "(--days, --since) or drop a filter\n",
        ),
        (
            ("--since", "2025-03-20", "--until", "2025-04-01"),
            "note: no test ran (other than skipped) in 2025-03-20 to 2025-04-01\n",
        ),
        (
            ("--since", "2025-03-01", "--env", "lab"),
            "note: no finished evaluation run in since 2025-03-01 with environment 'lab': "
            "widen the window (--days, --since) or drop a filter\n",
        ),
    ],
)
async def test_an_empty_window_is_explained_in_one_line(
    history: MetricsStorageService, window: tuple[str, ...], note: str
) -> None:
    code, out, err = await invoke(history, "slowest", *window)
    assert code == 0
    assert "Slowest tests (0, " in out
    assert err == note
    code, out, err = await invoke(history, "slowest", "--json", *window)
    assert code == 0
    assert json.loads(out) == []
    assert err == note


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "-1"], "Input should be greater than or equal to 0"),
        (["--limit", "many"], "parse string as an integer"),
        (["--since", "March"], "error: --since: expected a date (YYYY-MM-DD)"),
        (["--match", "some"], "error: --match: expected one of any, all, got 'some'"),
        (["--days", "0"], "Input should be greater than or equal to 1"),
        (["--sort", "mean"], "No such option: --sort"),
    ],
)
async def test_bad_options_exit_2(
    history: MetricsStorageService, args: list[str], message: str
) -> None:
    code, out, err = await invoke(history, "slowest", *args)
    assert code == 2, out + err
    assert message in flat(out + err)
    assert "Traceback" not in out + err


async def test_trend_of_one_tests_duration(history: MetricsStorageService) -> None:
    code, out, err = await invoke(history, "trend", "--test", "a", "--duration", *WINDOW)
    assert code == 0, err
    assert "a: duration of each run (2025-03-01 to 2025-03-20)" in flat(out)
    assert cells(out, "2025-03-03 10:01")[:3] == ["2025-03-03 10:01", "passed", "100.0"]
    assert cells(out, "2025-03-04 10:01")[:3] == ["2025-03-04 10:01", "passed", "200.0"]
    code, out, _ = await invoke(history, "trend", "--test", "b", "--duration", "--json", *WINDOW)
    assert code == 0
    rows: list[dict[str, Any]] = json.loads(out)
    assert [(r["finished_at"], r["status"], r["duration_ms"]) for r in rows] == [
        ("2025-03-03T10:02:00Z", "passed", 300.0),
        ("2025-03-04T10:02:00Z", "failed", 100.0),
    ]
    # Without --duration, the score trend as before.
    code, out, _ = await invoke(history, "trend", "--test", "b", "--json", *WINDOW)
    assert code == 0
    assert [set(r) for r in json.loads(out)] == [
        {"test_run_id", "finished_at", "score", "passed", "status"}
    ] * 2


async def test_trend_of_one_tests_duration_per_week(history: MetricsStorageService) -> None:
    args = ("trend", "--test", "b", "--duration", "--by", "week", "--json", *WINDOW)
    code, out, _ = await invoke(history, *args)
    assert code == 0
    assert json.loads(out) == [{"period": "2025-W10", "mean": 200.0, "runs": 2}]
    code, out, _ = await invoke(
        history, "trend", "--test", "a", "--duration", "--by", "day", *WINDOW
    )
    assert code == 0
    assert "a: mean duration per day (2025-03-01 to 2025-03-20)" in flat(out)
    assert cells(out, "2025-03-03") == ["2025-03-03", "100.0", "1"]
    assert cells(out, "2025-03-04") == ["2025-03-04", "200.0", "1"]
    # Only skipped runs: nothing to average, said in one line.
    since = ("--since", "2025-03-01")
    code, out, err = await invoke(
        history, "trend", "--test", "s", "--duration", "--by", "day", *since
    )
    assert code == 0
    assert err == "note: test 's' was skipped in every run in since 2025-03-01\n"
    code, out, err = await invoke(
        history, "trend", "--test", "x", "--duration", "--by", "day", *since
    )
    assert code == 0
    assert err == "note: test 'x' did not run in since 2025-03-01\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration"], "error: --duration follows one test: add --test ID"),
        (["--duration", "--test", "a", "--metric", "wer"], "error: --duration shows the test's"),
        (["--duration", "--test", "a", "--by", "month"], "error: --by: expected one of day"),
    ],
)
async def test_bad_duration_trends_exit_2(
    history: MetricsStorageService, args: list[str], message: str
) -> None:
    code, out, err = await invoke(history, "trend", *args)
    assert code == 2, out + err
    assert message in err
