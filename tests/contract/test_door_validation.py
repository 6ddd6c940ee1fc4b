"""What the store would refuse is refused at the door (issue 18.1, 16.3).

`record_test` raises InvalidDataError naming the field, stores nothing of that
result, and every result it accepts round-trips exactly through the store, the
journal and `sync`.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalstore import InvalidDataError, MetricsStorageService, MongoDBClient, evaluation_run
from evalstore.codec import decode, encode

MIB = 1024 * 1024
OLD = datetime(999, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": {"a\x00b": 5}}, "metrics: key 'a\\x00b' must not contain a NUL byte"),
        ({"details": {"a\x00b": 1}}, "details: key 'a\\x00b' must not contain a NUL byte"),
        ({"details": {"k": {"$gt": 1}}}, "details.k: key '$gt' must not contain '$' or '.'"),
        ({"test_name": "x\udfff"}, "test_name holds a lone surrogate ('\\udfff' at position 1)"),
        ({"message": "\ud800"}, "message holds a lone surrogate ('\\ud800' at position 0)"),
        ({"tags": ["ok", "\ud800"]}, "tags[1] holds a lone surrogate"),
        ({"participants": ["\ud800"]}, "participants[0] holds a lone surrogate"),
        ({"metrics": {"wer": {"score": 1, "unit": "\ud800"}}}, "metrics.wer.unit holds a lone"),
        ({"metrics": {"w\ud800": 1}}, "metrics: key 'w\\ud800' holds a lone surrogate"),
        ({"details": {"s": ["\ud800"]}}, "details.s[0] holds a lone surrogate"),
        ({"details": {"when": OLD}}, "details.when must be from year 1000 on, got 0999-01-01"),
        ({"started_at": OLD}, "started_at must be from year 1000 on, got 0999-01-01"),
        ({"details": {"blob": "x" * (17 * MIB)}}, "details is too large: 17,825,8"),
        ({"tags": ["x" * (17 * MIB)]}, "tags is too large: 17,825,8"),
        ({"metrics": {"wer": {"score": 1, "unit": "u" * (17 * MIB)}}}, "metrics is too large"),
        (
            {"started_at": datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-2)))},
            "9999-12-31T23:59:00-02:00 is outside the years 1 to 9999 in UTC",
        ),
        (
            {"finished_at": datetime(1, 1, 1, 0, 30), "duration_ms": 3_600_000},
            "started_at, finished_at, duration_ms: the times they give fall outside the years",
        ),
        ({"message": "x" * (17 * MIB)}, "message is too large: 17,825,8"),
    ],
    ids=lambda value: str(value)[:40],
)
async def test_what_the_store_would_refuse_is_refused_at_the_door(
    service: MetricsStorageService, kwargs: dict[str, Any], message: str
) -> None:
    async with evaluation_run(service, environment="dev") as run:
        await run.record_test("before", passed=True)
        with pytest.raises(InvalidDataError, match="^" + re.escape(message)):
            await run.record_test("bad", **kwargs)
        await run.record_test("after", passed=True)
    assert run.document["status"] == "completed"
    stored = await service.get_test_runs(run.evaluation_run_id)
    assert sorted(t["test_id"] for t in stored) == ["after", "before"]


async def test_a_test_id_with_a_lone_surrogate_names_the_test_id(
    service: MetricsStorageService,
) -> None:
    async with evaluation_run(service, environment="dev") as run:
        with pytest.raises(InvalidDataError, match=r"^test_id holds a lone surrogate"):
            await run.record_test("\ud800")


async def test_a_run_document_too_large_is_refused_before_anything_is_stored(
    service: MetricsStorageService,
) -> None:
    with pytest.raises(InvalidDataError, match=r"^system_information is too large: 17,8"):
        async with evaluation_run(service, environment="dev", config={"x": "y" * (17 * MIB)}):
            pass
    assert await service.get_recent_evaluation_runs() == []


async def test_fifteen_mib_is_accepted_and_stored(service: MetricsStorageService) -> None:
    blob = "x" * (15 * MIB)
    async with evaluation_run(service, environment="dev") as run:
        await run.record_test("big", details={"blob": blob}, passed=True)
    [stored] = await service.get_test_runs(run.evaluation_run_id)
    assert stored["details"]["blob"] == blob


async def test_the_reproducer_of_one_bad_result_among_two_hundred(
    service: MetricsStorageService,
) -> None:
    async with evaluation_run(service, environment="dev") as run:
        for i in range(100):
            await run.record_test(f"ok{i}", metrics={"m": 50})
        with pytest.raises(InvalidDataError):
            await run.record_test("bad", metrics={"a\x00b": 5})
        for i in range(100):
            await run.record_test(f"ok2-{i}", metrics={"m": 50})
    assert (run.document["status"], run.document["num_tests"]) == ("completed", 200)
    assert len(await service.get_test_runs(run.evaluation_run_id)) == 200


# Any character, lone surrogates and NUL included: what the store cannot hold must be refused.
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=8)
PLAIN = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | ANY_TEXT
    | st.datetimes(
        min_value=datetime(900, 1, 1),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(timezone.utc),
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(ANY_TEXT, children, max_size=3)
    ),
    max_leaves=8,
)
RESULT = st.fixed_dictionaries(
    {
        "test_id": ANY_TEXT.filter(str.strip),
        "metrics": st.dictionaries(ANY_TEXT, st.floats(0, 100), max_size=3),
        "message": st.none() | ANY_TEXT,
        "tags": st.lists(ANY_TEXT.filter(bool), max_size=3),
        "details": st.none() | st.dictionaries(ANY_TEXT, PLAIN, max_size=3),
    }
)


def storable(value: Any) -> bool:
    """What MongoDB and the journal can hold, judged independently of evalstore's checks."""
    if isinstance(value, str):
        return not any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, datetime):
        return value.year >= 1000
    if isinstance(value, list):
        return all(storable(item) for item in value)
    if isinstance(value, dict):
        return all(
            key and not set(key) & {"$", ".", "\x00"} and storable(key) and storable(item)
            for key, item in value.items()
        )
    return True


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(results=st.lists(RESULT, min_size=1, max_size=25))
def test_accepted_results_round_trip_and_refused_ones_raise(
    results: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    asyncio.run(_round_trip(results, tmp_path_factory.mktemp("store")))


async def _round_trip(results: list[dict[str, Any]], where: Path) -> None:
    store = f"file://{where}"
    accepted = []
    async with MongoDBClient(store, "db") as client:
        service = MetricsStorageService(client)
        async with evaluation_run(service, environment="dev", repo_path=where) as run:
            for i, result in enumerate(results):
                kwargs = {**result, "test_id": f"{i}:{result['test_id']}"}
                try:
                    accepted.append(await run.record_test(passed=True, **kwargs))
                except InvalidDataError:
                    assert not storable(kwargs), kwargs  # refused only what cannot be stored
                else:
                    assert storable(kwargs), kwargs
    # The local store, read back by a new client (from its files).
    async with MongoDBClient(store, "db") as reader:
        stored = await MetricsStorageService(reader).get_test_runs(run.evaluation_run_id)
    by_id = {doc["test_run_id"]: doc for doc in stored}
    assert len(by_id) == len(accepted)
    synced = MongoDBClient("mongomock://", f"sync_{where.name}")
    for document in accepted:
        assert by_id[document["test_run_id"]] == document, "local store"
        # The journal's line, read back, then stored as `evalstore sync` stores it.
        line = encode({"kind": "test", "doc": document})
        journaled = decode(line)["doc"]
        assert journaled == document, "journal"
        assert await synced.upsert_test_runs([journaled]) == []
        [back] = await synced.read("test_runs", {"_id": document["_id"]}, action="read")
        assert back == document, "sync"
    await synced.close()
