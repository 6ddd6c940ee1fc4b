"""Which newly failing tests are known flaky: looked up test by test when few are newly
failing (indexed reads), in one read of every test when many are; the answers agree.

Six daily runs. `f1` and `f2` alternate (passed on odd days, failed on even ones: five flips);
`b1` passed five times, then failed (one change, not flaky); `s1` always passed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_helpers import Result, at, record_run

from evalstore import MetricsStorageService
from evalstore.analysis import comparison


def outcome(test_id: str, day: int) -> Result:
    if test_id.startswith("f"):
        failed = day % 2 == 0
    elif test_id == "b1":
        failed = day == 6
    else:
        failed = False
    return Result(test_id, "failed" if failed else "passed", 10.0 if failed else 90.0)


async def record(service: MetricsStorageService) -> None:
    for day in range(1, 7):
        await record_run(service, at(day), [outcome(t, day) for t in ("f1", "f2", "b1", "s1")])


@pytest.mark.parametrize("lookups", [comparison.KNOWN_FLAKY_LOOKUPS, 0], ids=["each", "one-read"])
async def test_known_flaky_tests_are_the_same_looked_up_one_by_one_or_all_at_once(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch, lookups: int
) -> None:
    await record(service)
    monkeypatch.setattr(comparison, "KNOWN_FLAKY_LOOKUPS", lookups)

    found = await service.compare_runs("previous", "latest")

    assert found["newly_failing"] == ["b1", "f1", "f2"]
    assert found["known_flaky"] == ["f1", "f2"]
    marked = {t["test_id"]: t["known_flaky"] for t in found["tests"]}
    assert marked == {"f1": True, "f2": True, "b1": False, "s1": None}
