"""Every parameter that ends up in a filter takes only the type it documents (issue 18.6).

An operator dict where an id, a test id, an environment or tags are expected would
select (or overwrite) other documents; each is refused with InvalidDataError and
changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from evalstore import InvalidDataError, MetricsStorageService, evaluation_run

OPERATORS: list[Any] = [{"$ne": None}, {"$gt": ""}, {"$regex": ".*"}, 5, None, ["a"]]


@pytest.fixture
async def completed_run(service: MetricsStorageService) -> dict[str, Any]:
    async with evaluation_run(service, environment="dev", tags=["baseline"]) as run:
        await run.record_test("t1", passed=True)
    stored = await service.get_evaluation_run(run.document["evaluation_run_id"])
    assert stored is not None
    assert stored["status"] == "completed"
    return stored


@pytest.mark.parametrize("bad", OPERATORS, ids=repr)
async def test_run_ids_refuse_operators(
    service: MetricsStorageService, completed_run: dict[str, Any], bad: Any
) -> None:
    with pytest.raises(InvalidDataError, match=r"^evaluation_run_id must be a non-empty string"):
        await service.finalize_evaluation_run(bad, "failed")
    with pytest.raises(InvalidDataError, match=r"^evaluation_run_id must be a non-empty string"):
        await service.get_evaluation_run(bad)
    with pytest.raises(InvalidDataError, match=r"^evaluation_run_id must be a non-empty string"):
        await service.get_test_runs(bad)
    with pytest.raises(InvalidDataError, match=r"^evaluation_run_id must be a non-empty string"):
        await service.compare_runs(bad, completed_run["evaluation_run_id"])
    unchanged = await service.get_evaluation_run(completed_run["_id"])
    assert unchanged is not None
    assert unchanged["status"] == "completed"


@pytest.mark.parametrize("bad", OPERATORS, ids=repr)
async def test_filter_values_refuse_operators(
    service: MetricsStorageService, completed_run: dict[str, Any], bad: Any
) -> None:
    if bad is not None:  # None is "no filter" for these
        for call in (
            lambda: service.get_metric_trend("score", environment=bad),
            lambda: service.get_score_trend(environment=bad),
            lambda: service.get_test_stats(environment=bad),
            lambda: service.get_test_stats(branch=bad),
            lambda: service.get_flaky_tests(test_id=bad),
            lambda: service.compare_runs("previous", "latest", environment=bad),
        ):
            with pytest.raises(InvalidDataError, match=r" must be a non-empty string, got "):
                await call()
    with pytest.raises(InvalidDataError, match=r"^test_id must be a non-empty string"):
        await service.get_test_history(bad)


@pytest.mark.parametrize(
    "bad", [{"$ne": None}, {"baseline": 1}, 5, [{"$ne": None}], [""]], ids=repr
)
async def test_tags_refuse_anything_but_strings(
    service: MetricsStorageService, completed_run: dict[str, Any], bad: Any
) -> None:
    with pytest.raises(InvalidDataError, match=r"^(each of )?tags must be"):
        await service.get_evaluation_runs_by_tags(bad)
    with pytest.raises(InvalidDataError, match=r"^(each of )?tags must be"):
        await service.get_score_trend(tags=bad)
    with pytest.raises(InvalidDataError, match=r"^(each of )?tags_a must be"):
        await service.compare_experiments(bad, ["baseline"])


async def test_the_documented_types_still_work(
    service: MetricsStorageService, completed_run: dict[str, Any]
) -> None:
    run_id = completed_run["evaluation_run_id"]
    assert (await service.get_evaluation_run(str(completed_run["_id"])))["_id"] == completed_run[
        "_id"
    ]
    assert [
        r["evaluation_run_id"] for r in await service.get_evaluation_runs_by_tags("baseline")
    ] == [run_id]
    assert [t["test_id"] for t in await service.get_test_history("t1")] == ["t1"]
    assert len(await service.get_score_trend(environment="dev", tags=("baseline",))) == 1
