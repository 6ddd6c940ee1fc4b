"""The storage service's contract: what it writes, and what its queries return, in order."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId

from evalstore import (
    DuplicateRunError,
    EvaluationRun,
    InvalidDataError,
    MetricsStorageService,
    RunNotFoundError,
    TestRun,
    evaluation_run,
)

T0 = datetime(2025, 12, 5, 10, 30, tzinfo=timezone.utc)


class Clock:
    """A hand-moved clock: each call returns the time, then moves it on by `step`."""

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        now = self.now
        self.now += self.step
        return now


async def record(
    service: MetricsStorageService,
    start: datetime,
    results: dict[str, float],
    tags: tuple[str, ...] = (),
) -> str:
    """One run whose tests score as given (a test passes at 50 or more)."""
    async with evaluation_run(
        service, config={"beam": 5}, tags=tags, environment="dev", clock=Clock(start)
    ) as run:
        for test_id, score in results.items():
            await run.record_test(test_id, metrics={"wer": score}, passed=score >= 50)
    return run.evaluation_run_id


async def test_stored_documents_have_the_seed_fields_and_bson_types(
    service: MetricsStorageService,
) -> None:
    run_id = await record(service, T0, {"doctor-patient-es-en": 80.0}, tags=("baseline",))
    run = await service.client.read_one(
        "evaluation_runs", action="read", query={"evaluation_run_id": run_id}
    )
    assert isinstance(run["_id"], ObjectId)
    assert set(run) == {
        "_id",
        "evaluation_run_id",
        "started_at",
        "finished_at",
        "git_commit",
        "git_branch",
        "git_dirty",
        "environment",
        "suite",
        "experiment_tags",
        "system_information",
        "system_info_hash",
        "metrics",
        "num_tests",
        "num_passed",
        "num_failed",
        "num_skipped",
        "num_errors",
        "status",
        "score",
        "last_seen_at",
    }
    assert run["started_at"] == T0
    assert isinstance(run["started_at"], datetime)
    assert isinstance(run["finished_at"], datetime)
    assert run["experiment_tags"] == ["baseline"]
    assert run["metrics"] == {"wer": 80.0}
    assert run["system_information"]["config"] == {"beam": 5}
    assert len(run["system_info_hash"]) == 64

    test = await service.client.read_one(
        "test_runs", action="read", query={"test_id": "doctor-patient-es-en"}
    )
    assert test["evaluation_run_id"] == run["_id"]
    assert isinstance(test["evaluation_run_id"], ObjectId)
    assert set(test) == {
        "_id",
        "evaluation_run_id",
        "test_run_id",
        "test_id",
        "test_name",
        "started_at",
        "finished_at",
        "duration_ms",
        "metrics",
        "score",
        "score_method",
        "passed",
        "status",
        "tags",
        "participants",
        "message",
        "details",
    }
    assert test["metrics"] == {
        "wer": {"score": 80.0, "passed": None, "threshold": None, "unit": None, "details": None}
    }
    assert (test["score"], test["score_method"], test["passed"], test["status"]) == (
        80.0,
        "average",
        True,
        "passed",
    )
    assert test["test_run_id"].startswith(f"{run_id}/doctor-patient-es-en/")
    assert isinstance(test["finished_at"], datetime)


async def test_get_evaluation_run_by_human_id_object_id_and_hex(
    service: MetricsStorageService,
) -> None:
    run_id = await record(service, T0, {"a": 60.0})
    by_id = await service.get_evaluation_run(run_id)
    assert by_id is not None
    assert await service.get_evaluation_run(by_id["_id"]) == by_id
    assert await service.get_evaluation_run(str(by_id["_id"])) == by_id
    assert await service.get_evaluation_run("2020-01-01T00-00-00Z-main-000000") is None


async def test_recent_runs_are_newest_first_and_limited(service: MetricsStorageService) -> None:
    ids = [await record(service, T0 + timedelta(days=d), {"a": 60.0}) for d in (2, 0, 3, 1)]
    recent = await service.get_recent_evaluation_runs(limit=3)
    assert [r["evaluation_run_id"] for r in recent] == [ids[2], ids[0], ids[3]]
    assert len(await service.get_recent_evaluation_runs()) == 4


async def test_test_history_is_newest_first_and_limited(service: MetricsStorageService) -> None:
    for day, score in ((0, 10.0), (2, 30.0), (1, 20.0), (3, 40.0)):
        await record(service, T0 + timedelta(days=day), {"doctor-patient-es-en": score, "b": 1.0})
    history = await service.get_test_history("doctor-patient-es-en", limit=3)
    assert [h["score"] for h in history] == [40.0, 30.0, 20.0]
    assert [h["passed"] for h in history] == [False, False, False]
    assert await service.get_test_history("unknown-test") == []


async def test_test_runs_of_a_run_in_finish_order(service: MetricsStorageService) -> None:
    run_id = await record(service, T0, {"b": 70.0, "a": 20.0, "c": 90.0})
    tests = await service.get_test_runs(run_id)
    assert [t["test_id"] for t in tests] == ["b", "a", "c"]
    with pytest.raises(RunNotFoundError, match="no evaluation run 'missing'"):
        await service.get_test_runs("missing")


async def test_runs_by_tags_any_and_all(service: MetricsStorageService) -> None:
    base = await record(service, T0, {"a": 1.0}, tags=("baseline",))
    both = await record(service, T0 + timedelta(hours=1), {"a": 1.0}, tags=("baseline", "gpu"))
    tweak = await record(service, T0 + timedelta(hours=2), {"a": 1.0}, tags=("config-tweak",))

    def ids(runs: list[dict[str, object]]) -> list[object]:
        return [r["evaluation_run_id"] for r in runs]

    assert ids(await service.get_evaluation_runs_by_tags(["baseline"])) == [both, base]
    assert ids(await service.get_evaluation_runs_by_tags(["gpu", "config-tweak"])) == [tweak, both]
    assert ids(await service.get_evaluation_runs_by_tags(["baseline", "gpu"], match="all")) == [
        both
    ]
    assert await service.get_evaluation_runs_by_tags(["nothing"]) == []
    assert ids(await service.get_evaluation_runs_by_tags("config-tweak")) == [tweak]  # type: ignore[arg-type]
    with pytest.raises(InvalidDataError, match="match must be 'any' or 'all'"):
        await service.get_evaluation_runs_by_tags(["a"], match="some")  # type: ignore[arg-type]


async def test_duplicate_ids_are_refused(service: MetricsStorageService) -> None:
    run = EvaluationRun(evaluation_run_id="r1", started_at=T0, system_info_hash="h")
    stored = await service.create_evaluation_run(run)
    with pytest.raises(DuplicateRunError, match="evaluation run 'r1' already exists"):
        await service.create_evaluation_run(run)
    test = TestRun(
        evaluation_run_id=stored["_id"],
        test_run_id="r1/t",
        test_id="t",
        test_name="t",
        started_at=T0,
        finished_at=T0,
        duration_ms=0,
        score=50,
        score_method="manual",
        passed=True,
        status="passed",
    )
    await service.save_test_run(test)
    with pytest.raises(DuplicateRunError, match="test run 'r1/t' already exists"):
        await service.save_test_run(test)
    assert await service.client.count("test_runs", action="count", query={}) == 1


async def test_finalize_computes_counts_means_and_score(service: MetricsStorageService) -> None:
    async with evaluation_run(service, environment="dev", clock=Clock(T0)) as run:
        await run.record_test("a", metrics={"wer": 80, "completeness": 90})  # score 85
        await run.record_test("b", metrics={"wer": 40}, passed=False)  # score 40
        await run.record_test("c", status="error", message="boom")  # no metrics: 0
        await run.record_test("d", status="skipped")  # no score
        await run.record_test("e", metrics={"completeness": 70}, score=100.0)  # explicit
    final = run.document
    assert (final["num_tests"], final["num_passed"], final["num_failed"]) == (5, 2, 2)
    assert (final["num_skipped"], final["num_errors"]) == (1, 1)
    # wer: (80 + 40) / 2; completeness: (90 + 70) / 2; score: (85 + 40 + 0 + 100) / 4
    assert final["metrics"] == {"completeness": 80.0, "wer": 60.0}
    assert final["score"] == 56.25
    assert final["status"] == "completed"
    again = await service.finalize_evaluation_run(final["evaluation_run_id"])
    assert {k: again[k] for k in ("num_tests", "score", "metrics")} == {
        "num_tests": 5,
        "score": 56.25,
        "metrics": {"completeness": 80.0, "wer": 60.0},
    }


async def test_finalize_a_run_without_tests(service: MetricsStorageService) -> None:
    async with evaluation_run(service, environment="dev", clock=Clock(T0)) as run:
        pass
    assert (run.document["num_tests"], run.document["score"], run.document["metrics"]) == (
        0,
        None,
        {},
    )


async def test_finalize_counts_test_runs_written_by_others_with_odd_statuses(
    service: MetricsStorageService,
) -> None:
    """Documents inserted with mongosh may hold any status: they count in num_tests only."""
    async with evaluation_run(service, environment="dev", clock=Clock(T0)) as run:
        await run.record_test("a", metrics={"wer": 80})
    oid = run.document["_id"]
    odd = [True, 1, ["failed"], {"code": "failed"}, None]
    await service.client.upsert_test_runs(
        [
            {"evaluation_run_id": oid, "test_run_id": f"odd{i}", "status": s}
            for i, s in enumerate(odd)
        ]
    )
    final = await service.finalize_evaluation_run(oid)
    assert (final["num_tests"], final["num_passed"], final["num_failed"]) == (6, 1, 0)
    assert (final["num_skipped"], final["num_errors"], final["score"]) == (0, 0, 80.0)


async def test_finalize_unknown_run_is_a_clear_error(service: MetricsStorageService) -> None:
    with pytest.raises(RunNotFoundError, match="evalstore runs list"):
        await service.finalize_evaluation_run("nope")
    missing = ObjectId()
    with pytest.raises(RunNotFoundError, match=f"^no evaluation run '{missing}': list the recent"):
        await service.finalize_evaluation_run(missing)


@pytest.mark.parametrize("limit", [0, -1, True])
async def test_limits_must_be_positive(service: MetricsStorageService, limit: int) -> None:
    with pytest.raises(InvalidDataError, match="limit must be a positive integer"):
        await service.get_recent_evaluation_runs(limit=limit)
