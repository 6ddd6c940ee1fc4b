"""`evaluation_run(...)`: provenance, recording, finalisation on every way out."""

from __future__ import annotations

import asyncio
import logging
import math
import re
import subprocess
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from evalstore import (
    EvalstoreError,
    InvalidDataError,
    MetricData,
    MetricsStorageService,
    MongoDBClient,
    evaluation_run,
    register_score_method,
)

T0 = datetime(2025, 12, 5, 10, 30, tzinfo=timezone.utc)


def fixed_clock() -> datetime:
    return T0


async def test_concurrent_record_test_calls_give_exact_aggregates(
    service: MetricsStorageService,
) -> None:
    async with evaluation_run(service, environment="dev", clock=fixed_clock) as run:
        # test i scores i % 100; even tests pass; wer present on every test, rtf on every 4th
        await asyncio.gather(
            *(
                run.record_test(
                    f"t{i:03d}",
                    metrics={"wer": i % 100, **({"rtf": 50} if i % 4 == 0 else {})},
                    score=float(i % 100),
                    passed=i % 2 == 0,
                )
                for i in range(200)
            )
        )
    final = run.document
    assert await service.client.count("test_runs", action="count", query={}) == 200
    assert (final["num_tests"], final["num_passed"], final["num_failed"]) == (200, 100, 100)
    # scores 0..99 twice: mean 49.5
    assert final["score"] == 49.5
    assert final["metrics"] == {"rtf": 50.0, "wer": 49.5}


async def test_provenance_of_a_temporary_repository(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    async with evaluation_run(
        service, environment="lab", tags=["baseline"], repo_path=tmp_path, clock=fixed_clock
    ) as run:
        pass
    stored = await service.get_evaluation_run(run.evaluation_run_id)
    assert stored is not None
    assert (stored["git_commit"], stored["git_branch"], stored["git_dirty"]) == (
        commit,
        "main",
        False,
    )
    assert stored["environment"] == "lab"
    assert run.evaluation_run_id.startswith("2025-12-05T10-30-00Z-main-")


async def test_provenance_outside_a_repository(
    service: MetricsStorageService, tmp_path: Path
) -> None:
    async with evaluation_run(service, environment="dev", repo_path=tmp_path) as run:
        pass
    assert (run.document["git_commit"], run.document["git_branch"]) == (None, None)
    assert "-nogit-" in run.evaluation_run_id


async def test_same_config_same_hash_other_config_other_hash(
    service: MetricsStorageService,
) -> None:
    hashes = []
    for config in ({"a": 1, "b": {"c": 2}}, {"b": {"c": 2}, "a": 1}, {"a": 2, "b": {"c": 2}}):
        async with evaluation_run(service, config=config, environment="dev") as run:
            pass
        hashes.append(run.document["system_info_hash"])
    assert hashes[0] == hashes[1] != hashes[2]


async def test_two_runs_in_the_same_second_get_distinct_ids(
    service: MetricsStorageService,
) -> None:
    ids = set()
    for _ in range(20):
        async with evaluation_run(service, environment="dev", clock=fixed_clock) as run:
            pass
        ids.add(run.evaluation_run_id)
    assert len(ids) == 20


async def test_a_failing_block_finalizes_as_failed_and_propagates(
    service: MetricsStorageService,
) -> None:
    run = evaluation_run(service, environment="dev")

    async def suite() -> None:
        async with run:
            await run.record_test("a", metrics={"wer": 70})
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        await suite()
    stored = await service.get_evaluation_run(run.evaluation_run_id)
    assert stored is not None
    assert (stored["status"], stored["num_tests"], stored["score"]) == ("failed", 1, 70.0)
    assert stored["finished_at"] is not None


async def test_a_cancelled_task_finalizes_as_interrupted(service: MetricsStorageService) -> None:
    recorded = asyncio.Event()
    holder: dict[str, Any] = {}

    async def suite() -> None:
        async with evaluation_run(service, environment="dev") as run:
            holder["run"] = run
            await run.record_test("a", metrics={"wer": 30}, passed=False)
            recorded.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(suite())
    await recorded.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stored = await service.get_evaluation_run(holder["run"].evaluation_run_id)
    assert stored is not None
    # Cut short: `interrupted`, so it is never `latest` for a CI gate.
    assert (stored["status"], stored["num_tests"], stored["num_failed"]) == ("interrupted", 1, 1)


async def test_keyboard_interrupt_finalizes_as_interrupted(service: MetricsStorageService) -> None:
    with pytest.raises(KeyboardInterrupt):
        async with evaluation_run(service, environment="dev") as run:
            raise KeyboardInterrupt
    stored = await service.get_evaluation_run(run.evaluation_run_id)
    assert stored is not None
    assert stored["status"] == "interrupted"


async def test_storage_disabled_is_a_no_op_recorder(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="evalstore")
    async with evaluation_run(config={"beam": 1}) as run:
        document = await run.record_test("a", metrics={"wer": 70}, passed=True)
    assert run.enabled is False
    assert document["score"] == 70.0
    assert document["status"] == "passed"
    assert run.document["status"] == "completed"
    assert "Storage disabled (MONGODB_ENABLED=false)" in caplog.messages
    # nothing was written to the embedded backend's default database either
    probe = MongoDBClient("mongomock://", "vt_metrics")
    assert await probe.count("evaluation_runs", action="count", query={}) == 0


async def test_disabled_recorder_still_rejects_bad_input() -> None:
    async with evaluation_run() as run:
        with pytest.raises(InvalidDataError, match=r"^metrics\.wer\.score"):
            await run.record_test("a", metrics={"wer": math.nan})


async def test_enabled_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_ENABLED", "true")
    monkeypatch.setenv("MONGODB_CONNECTION_STRING", "mongomock://")
    monkeypatch.setenv("MONGODB_DATABASE", "evalstore_env_test")
    monkeypatch.setenv("ENVIRONMENT", "stage")
    monkeypatch.setenv("EXPERIMENT_TAGS", "baseline, gpu")
    async with evaluation_run(config={"x": 1}) as run:
        await run.record_test("a", metrics={"wer": 90})
    reader = MongoDBClient("mongomock://", "evalstore_env_test")
    try:
        stored = await MetricsStorageService(reader).get_evaluation_run(run.evaluation_run_id)
        assert stored is not None
        assert (stored["environment"], stored["experiment_tags"], stored["score"]) == (
            "stage",
            ["baseline", "gpu"],
            90.0,
        )
    finally:
        await reader.drop_database()


async def test_a_service_passed_in_records_even_when_disabled(
    service: MetricsStorageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONGODB_ENABLED", "false")
    async with evaluation_run(service) as run:
        await run.record_test("a", metrics={"wer": 10})
    assert run.enabled is True
    assert await service.client.count("test_runs", action="count", query={}) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": {"wer": math.nan}}, "metrics.wer.score must be a finite number"),
        ({"metrics": {"wer": math.inf}}, "metrics.wer.score must be a finite number"),
        ({"metrics": {"wer": 101}}, "metrics.wer.score must be between 0 and 100"),
        ({"metrics": {"wer": {"score": -1}}}, "metrics.wer.score must be between 0"),
        ({"metrics": {"w.er": 1}}, "metrics: key 'w.er' must not contain '$' or '.'"),
        ({"metrics": {"$wer": 1}}, "metrics: key '$wer' must not contain '$' or '.'"),
        ({"score": math.nan}, "score must be a finite number"),
        ({"score": 100.01}, "score must be between 0 and 100"),
        ({"details": {"x": object()}}, "details.x holds a object"),
        ({"metrics": {"wer": {"score": 1, "details": {"f": {1}}}}}, "metrics.wer.details"),
        ({"status": "flaky"}, "status must be one of passed, failed, skipped, error"),
        ({"passed": True, "status": "failed"}, "passed=True contradicts status='failed'"),
        ({"duration_ms": -5}, "duration_ms must be a non-negative number of milliseconds"),
        ({"duration_ms": "5"}, "duration_ms must be a non-negative number of milliseconds"),
        ({"duration_ms": 1e300}, "duration_ms must be a non-negative number of milliseconds"),
        ({"duration_ms": math.nan}, "duration_ms must be a non-negative number of milliseconds"),
        ({"started_at": "2024-01-01"}, "started_at must be a datetime, got str '2024-01-01'"),
        ({"finished_at": 5}, "finished_at must be a datetime, got int 5"),
        ({"details": [1, 2]}, "details must be a mapping (dict), got list [1, 2]"),
        ({"message": 5}, "message must be a string, got int 5"),
        ({"test_name": ["x"]}, "test_name must be a string, got list ['x']"),
        ({"tags": {"a": 1}}, "tags must be a list of strings, got {'a': 1}"),
        ({"tags": [1]}, "each of tags must be a non-empty string, got 1"),
        ({"participants": {"doctor": 1}}, "participants must be a list of strings"),
        ({"score": 10**400}, "score must be a finite number, got 1000000000"),
        ({"metrics": {"wer": 10**400}}, "metrics.wer.score must be a finite number"),
        (
            {"metrics": {"wer": {"score": 1, "threshold": 10**400}}},
            "metrics.wer.threshold must be a finite number, got 10000",
        ),
        (
            {"details": {"n": 2**63}},
            "details.n is an integer too large for BSON: 9223372036854775808",
        ),
        ({"score_method": "nope"}, "score_method: unknown method 'nope'"),
    ],
)
async def test_bad_input_names_the_field_and_stores_nothing(
    service: MetricsStorageService, kwargs: dict[str, Any], message: str
) -> None:
    async with evaluation_run(service, environment="dev") as run:
        await run.record_test("good", metrics={"wer": 50})
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            await run.record_test("bad", **kwargs)
    assert [t["test_id"] for t in await service.get_test_runs(run.evaluation_run_id)] == ["good"]
    assert run.document["num_tests"] == 1


@pytest.mark.parametrize("bad_id", [123, None, "", {"$ne": None}, b"t"])
async def test_a_test_id_that_is_no_string_is_refused(
    service: MetricsStorageService, bad_id: Any
) -> None:
    async with evaluation_run(service, environment="dev") as run:
        with pytest.raises(InvalidDataError, match=r"^test_id must be a non-empty string, got "):
            await run.record_test(bad_id)
    assert run.document["num_tests"] == 0


async def test_a_bare_string_is_one_tag_never_its_letters(service: MetricsStorageService) -> None:
    async with evaluation_run(service, environment="dev", tags="baseline") as run:
        stored = await run.record_test("t", tags="medical", participants="doctor")
    assert run.document["experiment_tags"] == ["baseline"]
    assert (stored["tags"], stored["participants"]) == (["medical"], ["doctor"])
    with pytest.raises(InvalidDataError, match=r"^tags must be a list of strings"):
        evaluation_run(service, environment="dev", tags={"baseline": True})


async def test_a_clock_going_backwards_never_ends_a_run_before_it_began(
    service: MetricsStorageService,
) -> None:
    readings = iter([datetime(2025, 3, 1, 10, tzinfo=timezone.utc)])

    def clock() -> datetime:  # the first reading, then an hour earlier (NTP stepped back)
        return next(readings, datetime(2025, 3, 1, 9, tzinfo=timezone.utc))

    async with evaluation_run(service, environment="dev", clock=clock) as run:
        await run.record_test("t", passed=True)
    assert run.document["finished_at"] >= run.document["started_at"]
    assert run.document["finished_at"] == datetime(2025, 3, 1, 10, tzinfo=timezone.utc)


async def test_unstorable_config_is_refused_before_anything_is_written(
    service: MetricsStorageService,
) -> None:
    with pytest.raises(InvalidDataError, match=r"^config\.model holds a object"):
        async with evaluation_run(service, config={"model": object()}, environment="dev"):
            pass
    assert await service.client.count("evaluation_runs", action="count", query={}) == 0


async def test_invalid_environment_argument(service: MetricsStorageService) -> None:
    with pytest.raises(InvalidDataError, match="environment must be one of dev, stage, prod, lab"):
        evaluation_run(service, environment="production")


async def test_custom_score_method(service: MetricsStorageService) -> None:
    def worst_first(metrics: Mapping[str, MetricData], passed: bool) -> float:
        return min(m.score for m in metrics.values()) if passed else 0.0

    register_score_method("worst", worst_first)
    async with evaluation_run(service, environment="dev") as run:
        a = await run.record_test(
            "a", metrics={"wer": 80, "completeness": 60}, score_method="worst"
        )
        b = await run.record_test("b", metrics={"wer": 80, "completeness": 60})
        c = await run.record_test("c", metrics={"wer": 80}, passed=False, score_method="worst")
    assert (a["score"], a["score_method"]) == (60.0, "worst")
    assert (b["score"], b["score_method"]) == (70.0, "average")
    assert (c["score"], c["score_method"]) == (0.0, "worst")


async def test_score_method_returning_nonsense_is_refused(service: MetricsStorageService) -> None:
    register_score_method("broken", lambda metrics, passed: math.nan)
    async with evaluation_run(service, environment="dev") as run:
        with pytest.raises(InvalidDataError, match="score method 'broken' returned nan"):
            await run.record_test("a", metrics={"wer": 1}, score_method="broken")


async def test_passed_defaults_from_metric_flags(service: MetricsStorageService) -> None:
    async with evaluation_run(service, environment="dev") as run:
        ok = await run.record_test("a", metrics={"wer": {"score": 90, "passed": True}})
        bad = await run.record_test(
            "b", metrics={"wer": {"score": 90, "passed": True}, "c": {"score": 9, "passed": False}}
        )
        plain = await run.record_test("c")
    assert (ok["passed"], ok["status"]) == (True, "passed")
    assert (bad["passed"], bad["status"]) == (False, "failed")
    assert (plain["passed"], plain["score"]) == (True, 100.0)


async def test_timing_is_derived_from_what_is_given(service: MetricsStorageService) -> None:
    async with evaluation_run(service, environment="dev", clock=fixed_clock) as run:
        a = await run.record_test("a", started_at=T0, finished_at=T0 + timedelta(seconds=2.5))
        b = await run.record_test("b", started_at=T0, duration_ms=1500)
        c = await run.record_test("c", duration_ms=250)
    assert a["duration_ms"] == 2500.0
    assert b["finished_at"] == T0 + timedelta(milliseconds=1500)
    assert (c["finished_at"], c["started_at"]) == (T0, T0 - timedelta(milliseconds=250))


async def test_recording_after_finish_is_refused(service: MetricsStorageService) -> None:
    async with evaluation_run(service, environment="dev") as run:
        pass
    with pytest.raises(EvalstoreError, match="the evaluation run is finished"):
        await run.record_test("late")


async def test_explicit_start_and_finish(service: MetricsStorageService) -> None:
    run = evaluation_run(service, environment="dev", clock=fixed_clock)
    started = await run.start()
    assert started["status"] == "running"
    await run.record_test("a", metrics={"wer": 20})
    final = await run.finish("failed")
    assert (final["status"], final["score"]) == ("failed", 20.0)
    assert await run.finish() is final


async def test_disabled_run_still_reports_its_aggregates() -> None:
    async with evaluation_run(clock=fixed_clock) as run:
        await run.record_test("a", metrics={"wer": 80, "completeness": 90})  # 85
        await run.record_test("b", metrics={"wer": 40}, passed=False)  # 40
        await run.record_test("c", status="skipped")
    final = run.document
    assert (final["num_tests"], final["num_passed"], final["num_failed"]) == (3, 1, 1)
    assert (final["num_skipped"], final["num_errors"]) == (1, 0)
    assert final["score"] == 62.5
    assert final["metrics"] == {"completeness": 90.0, "wer": 60.0}
    assert final["status"] == "completed"
