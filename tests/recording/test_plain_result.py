"""The one-pass path for the usual result builds what the general path builds.

`recording.plain_result.plain_test_run` builds the document and journal text of a
plain result (a pytest test's: a status, times, maybe a message and tags) without
`RunRecorder._test_run`'s checks and copies. The general path is the reference:
for every result the one-pass path takes, the general path must accept it and
build the same document (same keys in the same order, same values of the same
types) and the same text; everything else must be left to the general path.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalstore import MetricsStorageService, evaluation_run, register_score_method
from evalstore.codec import encode, encode_test_entry, encode_test_run
from evalstore.models import MAX_DURATION_MS, TEST_RUN_KEYS, TEST_STATUSES
from evalstore.recording import plain_result
from evalstore.recording.plain_result import plain_test_run
from evalstore.recording.run import RunRecorder
from evalstore.recording.scoring import average_score
from evalstore.storage.client import MongoDBClient

UTC = timezone.utc
MOMENT = datetime(2026, 12, 6, 4, 30, 15, 123456, tzinfo=UTC)
SUFFIX = "5eed5eed"

texts = st.one_of(
    st.text(alphabet=st.characters(codec="ascii"), max_size=12),
    st.text(max_size=6),  # non-ASCII, surrogates
    st.sampled_from(["", " ", "test_a.py::test_b[1-2]", "ñ", "\ud800", "a\x00b"]),
)
datetimes = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),  # naive
    st.datetimes(timezones=st.just(ZoneInfo("Europe/Berlin"))),
    st.just(MOMENT),
    st.just(datetime(999, 12, 31, 23, 59, tzinfo=UTC)),
    st.none(),
)
durations = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-5, max_value=10**20),
    st.sampled_from([0.0, 0.123, MAX_DURATION_MS, MAX_DURATION_MS * 2, True, "3", None]),
)
values = {
    "test_id": st.one_of(texts, st.sampled_from([None, 5, b"t"])),
    "test_name": st.one_of(texts, st.none(), st.just(3)),
    "status": st.sampled_from([None, "passed", "failed", "skipped", "error", "nonsense", ""]),
    "message": st.one_of(texts, st.none(), st.just(1.5)),
    "details": st.sampled_from([None, {}, {"xfail": "xfailed"}]),
    "tags": st.one_of(
        st.lists(texts, max_size=3),
        st.lists(texts, max_size=3).map(tuple),
        st.sampled_from(["slow", ("a", 1), {"a"}, None]),
    ),
    "metrics": st.sampled_from([None, {}, {"wer": {"score": 50.0}}, []]),
    "duration_ms": durations,
    "started_at": datetimes,
    "finished_at": datetimes,
    "passed": st.sampled_from([True, False, None]),  # a key the one-pass path leaves alone
    "usage": st.just([]),
}


ascii_texts = st.text(alphabet=st.characters(codec="ascii"), max_size=12)


@st.composite
def results(draw: st.DrawFn) -> dict[str, Any]:
    """A result of the plugin's shape with varied values, up to three fields unusual or missing."""
    started = draw(st.datetimes(datetime(1000, 1, 1), datetime(9998, 1, 1), timezones=st.just(UTC)))
    result = {
        "test_id": draw(ascii_texts.filter(str.strip)),
        "test_name": draw(st.one_of(ascii_texts, st.none())),
        "status": draw(st.sampled_from(TEST_STATUSES)),
        "message": draw(st.one_of(st.none(), ascii_texts)),
        "details": None,
        "tags": draw(st.lists(ascii_texts.filter(bool), max_size=3).map(tuple)),
        "metrics": {},
        "duration_ms": draw(st.floats(min_value=0, max_value=1e9)),
        "started_at": started,
        "finished_at": started
        + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(1))),
    }
    for name in draw(st.lists(st.sampled_from(sorted(values)), max_size=3)):
        if draw(st.booleans()):
            result.pop(name, None)
        else:
            result[name] = draw(values[name])
    return result


def usual_result() -> dict[str, Any]:
    """A result as the pytest plugin hands it over."""
    return {
        "test_id": "test_m.py::test_trivial[1]",
        "test_name": "test_trivial[1]",
        "status": "passed",
        "message": None,
        "details": None,
        "tags": ("slow",),
        "metrics": {},
        "duration_ms": 0.5,
        "started_at": MOMENT,
        "finished_at": MOMENT,
    }


def general(recorder: RunRecorder, result: dict[str, Any], oid: Any) -> tuple[str, Any]:
    """What the general path builds for `result` (with the given `_id`), or what it raised."""
    try:
        test_run, usage = recorder._test_run(**result)
    except Exception as exc:  # compared, not hidden
        return "raised", f"{type(exc).__name__}: {exc}"
    assert usage == []
    return "built", {"_id": oid, **test_run}


def typed(document: dict[str, Any]) -> list[tuple[str, type, Any]]:
    """Each key with its value's type (100.0 == 100, but a float is stored as a double)."""
    return [(key, type(value), value) for key, value in document.items()]


@pytest.fixture
def fixed_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test run ids without their random part, so that both paths' ids can be compared."""
    monkeypatch.setattr("evalstore.ids._random_hex", lambda count: SUFFIX)


async def test_every_result_the_one_pass_path_builds_is_the_general_paths(fixed_ids: None) -> None:
    taken: list[dict[str, Any]] = []
    async with evaluation_run(None, environment="dev", suite="s") as recorder:
        run = recorder.document

        @settings(
            max_examples=1500,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(result=results())
        def same(result: dict[str, Any]) -> None:
            built = plain_test_run(result, run)
            if built is None:
                return  # the general path builds or refuses it, as it always did
            document, text = built
            kind, reference = general(recorder, result, document["_id"])
            assert kind == "built", reference
            assert tuple(document) == TEST_RUN_KEYS
            assert typed(document) == typed(reference)
            assert text == encode_test_run(reference)
            assert encode_test_entry(document, text) == encode({"kind": "test", "doc": reference})
            taken.append(result)

        same()
    # The usual shapes were taken (else this would test nothing): passed, failed, skipped.
    assert {result.get("status") for result in taken} >= set(TEST_STATUSES)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"metrics": {"wer": {"score": 50.0}}}, "metrics"),
        ({"details": {"xfail": "xfailed"}}, "details"),
        ({"passed": True}, "an argument beyond the plugin's"),
        ({"test_id": "test_ñ"}, "non-ASCII text"),
        ({"test_id": "test_\ud800"}, "a lone surrogate in the id"),
        ({"test_name": "name \ud800"}, "a lone surrogate in the name"),
        ({"message": "failed \ud800"}, "a lone surrogate in the message"),
        ({"tags": ("slow", "\ud800")}, "a lone surrogate in a tag"),
        ({"tags": ("slow", "")}, "an empty tag"),
        ({"duration_ms": math.nan}, "a duration that is not a number"),
        ({"started_at": datetime(2026, 12, 6, 5, 30, tzinfo=ZoneInfo("Europe/Berlin"))}, "tz"),
        ({"finished_at": MOMENT - timedelta(seconds=1)}, "finished before it started"),
        ({"message": "x" * (1024 * 1024)}, "a result near MongoDB's size limit"),
    ],
)
async def test_anything_unusual_takes_the_general_path(
    change: dict[str, Any], why: str, fixed_ids: None
) -> None:
    usual = usual_result()
    async with evaluation_run(None, environment="dev", suite="s") as recorder:
        assert plain_test_run(usual, recorder.document) is not None
        assert plain_test_run({**usual, **change}, recorder.document) is None, why


async def test_a_score_calculator_registered_as_average_is_still_used(
    tmp_path: Path, fixed_ids: None
) -> None:
    register_score_method("average", lambda metrics, passed: 42.0)
    client = MongoDBClient(f"file://{tmp_path}", "plain")
    try:
        async with evaluation_run(MetricsStorageService(client), environment="dev") as recorder:
            [outcome] = await recorder.record_tests([usual_result()])
        [stored] = await client.read("test_runs", {}, action="read")
    finally:
        register_score_method("average", average_score)
        await client.close()
    assert isinstance(outcome, dict)
    assert (outcome["score"], stored["score"]) == (42.0, 42.0)


async def test_a_batch_after_finish_is_refused_result_by_result(tmp_path: Path) -> None:
    client = MongoDBClient(f"file://{tmp_path}", "plain")
    try:
        recorder = RunRecorder(MetricsStorageService(client), environment="dev")
        await recorder.start()
        await recorder.finish()
        outcomes = await recorder.record_tests([usual_result(), usual_result()])
    finally:
        await client.close()
    assert [type(outcome).__name__ for outcome in outcomes] == ["EvalstoreError"] * 2
    assert "finished" in str(outcomes[0])


def test_keys_that_are_not_strings_take_the_general_path() -> None:
    class LooksLikeTags:
        def __hash__(self) -> int:
            return hash("tags")

        def __eq__(self, other: object) -> bool:
            return other == "tags"

    class Unequal(LooksLikeTags):
        __hash__ = LooksLikeTags.__hash__

        def __eq__(self, other: object) -> bool:
            raise RuntimeError("compared")

    run = {"_id": ObjectId(), "evaluation_run_id": "r"}
    others = {key: value for key, value in usual_result().items() if key != "tags"}
    for key in (LooksLikeTags(), Unequal()):
        result: dict[Any, Any] = {key: ["a"], **others}
        assert plain_test_run(result, run) is None  # `record_test(**result)` refuses it


async def test_the_copies_record_tests_returns_share_nothing_with_what_it_stores(
    embedded: MetricsStorageService,
) -> None:
    # On the embedded backend the store keeps the very dicts it is given: a shared list
    # would carry a caller's change into it (the local store writes the journal's text).
    with_metrics = {**usual_result(), "metrics": {"wer": {"score": 50.0, "details": {"n": [1]}}}}
    async with evaluation_run(embedded, environment="dev") as recorder:
        outcomes = await recorder.record_tests([usual_result(), with_metrics])
        for outcome in outcomes:  # before the writer stores them, at the end of the run
            assert isinstance(outcome, dict)
            outcome["tags"].append("changed")
            outcome["participants"].append("changed")
            for metric in outcome["metrics"].values():
                metric["details"]["n"].append(2)
    stored = await embedded.client.read("test_runs", {}, sort=[("score", 1)], action="read")
    assert [(doc["tags"], doc["participants"]) for doc in stored] == [(["slow"], [])] * 2
    assert stored[0]["metrics"]["wer"]["details"] == {"n": [1]}


async def test_a_batch_stores_the_same_documents_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixed_ids: None
) -> None:
    batch = [
        {
            "test_id": f"test_m.py::test_trivial[{number}]",
            "test_name": f"test_trivial[{number}]",
            "status": status,
            "message": None if status == "passed" else f"{status} because",
            "details": None,
            "tags": ("slow",) if number % 2 else (),
            "metrics": {},
            "duration_ms": 1.25 * number,
            "started_at": MOMENT,
            "finished_at": MOMENT + timedelta(milliseconds=number),
        }
        for number, status in enumerate(["passed", "failed", "skipped", "error", "passed"])
    ]

    async def stored(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        client = MongoDBClient(f"file://{directory}", "plain")
        try:
            service = MetricsStorageService(client)
            async with evaluation_run(service, environment="dev", suite="s") as recorder:
                await recorder.record_tests(batch)
            runs = await client.read("evaluation_runs", {}, action="read")
            tests = await client.read("test_runs", {}, sort=[("test_id", 1)], action="read")
        finally:
            await client.close()
        return runs, tests

    one_pass = await stored(tmp_path / "one-pass")
    taken: list[int] = []
    real = plain_result.plain_test_run

    def never(result: Any, run: Any) -> None:
        taken.append(real(result, run) is not None)
        return None

    monkeypatch.setattr("evalstore.recording.run.plain_test_run", never)
    reference = await stored(tmp_path / "general")

    assert taken == [True] * len(batch)  # the one-pass path would have taken each of them
    [one_pass_run], [reference_run] = one_pass[0], reference[0]
    assert comparable(one_pass_run) == comparable(reference_run)
    assert [comparable(doc) for doc in one_pass[1]] == [comparable(doc) for doc in reference[1]]
    assert [doc["score"] for doc in one_pass[1]] == [100.0, 0.0, None, 0.0, 100.0]


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A stored document without what differs between two runs (ids, the run's times, the
    host it ran on): the test runs' fields, or the run's counts and score."""
    if "test_id" not in document:
        counts = ("status", "num_tests", "num_passed", "num_failed", "num_skipped", "num_errors")
        return {key: document[key] for key in (*counts, "score", "metrics")}
    volatile = {"_id", "evaluation_run_id", "test_run_id"}
    return {key: value for key, value in document.items() if key not in volatile}
