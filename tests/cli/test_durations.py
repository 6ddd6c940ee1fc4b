"""One parser for every age and duration option; huge values are one clear line (issue 18.4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import typer
from typer.testing import CliRunner

from evalstore import InvalidDataError, MetricsStorageService, MongoDBClient
from evalstore.cli import app
from evalstore.cli.options import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("36h", timedelta(hours=36)),
        ("2d", timedelta(days=2)),
        ("1.5d", timedelta(hours=36)),
        ("12w", timedelta(weeks=12)),
        (" 90D ", timedelta(days=90)),
        ("36525d", timedelta(days=36525)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "--older-than") == expected


@pytest.mark.parametrize(
    "text", ["", "1", "0h", "-1h", "h", "1y", "1e3d", "36526d", "9" * 400 + "d"]
)
def test_bad_durations_are_a_usage_error(text: str) -> None:
    with pytest.raises(typer.Exit) as raised:
        parse_duration(text, "--stale-after")
    assert raised.value.exit_code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune", "--older-than", "99999999999d"], "error: --older-than: at most 36525d"),
        (["runs", "reap", "--stale-after", "99999999999999d"], "error: --stale-after: at most"),
        (["runs", "reap", "--stale-after", "1y"], "error: --stale-after: expected a positive"),
        (["stats", "--days", "99999999999"], "Input should be less than or equal to 36525"),
    ],
)
def test_huge_values_on_the_command_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, [*args, "--url", "mongomock://"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert "OverflowError" not in result.output


async def test_huge_windows_and_ages_through_the_api() -> None:
    service = MetricsStorageService(MongoDBClient("mongomock://", "durations"))
    with pytest.raises(InvalidDataError, match=r"^window_days must be positive and at most 36525"):
        await service.get_test_stats(window_days=99999999999)
    with pytest.raises(InvalidDataError, match=r"^older_than_days must be a positive number"):
        await service.prune(99999999999)
    await service.client.close()
