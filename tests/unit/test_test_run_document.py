"""The direct builders give exactly what pydantic and the original code give.

`build_test_run_document` skips the `TestRun` model when the fields are plainly
valid, `to_utc` returns values that are already UTC at millisecond precision,
and `RunRecorder._timing` shortcuts the usual case. These tests compare each
with the straightforward implementation over many inputs, edge cases
included, down to types, key order, time zones and folds.
"""

from __future__ import annotations

import enum
import math
import random
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bson import ObjectId
from pydantic import ValidationError

from evalstore.errors import InvalidDataError
from evalstore.models import (
    METRIC_FIELDS,
    TEST_RUN_FIELDS,
    TEST_RUN_KEYS,
    MetricData,
    TestRun,
    _plain_test_run_document,
    build_test_run_document,
    describe_validation_error,
    to_utc,
)
from evalstore.recording.run import RunRecorder
from evalstore.recording.scoring import average_score

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2025, 12, 5, 10, 30, 0, 123000, tzinfo=UTC)


class SubDatetime(datetime):
    pass


class Word(str):
    pass


class Color(enum.IntEnum):
    RED = 1


class SubMetric(MetricData):
    pass


def reference_to_utc(value: datetime) -> datetime:
    """The original `to_utc`, kept as the specification."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types, key order, float signs, time zones and folds."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, datetime):
        return a == b and a.tzinfo is b.tzinfo and a.fold == b.fold and str(a) == str(b)
    return bool(a == b)


def containers(value: Any) -> set[int]:
    """The ids of every dict and list in `value` (and in the metrics' details)."""
    found: set[int] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, MetricData):
            stack.append(item.details)
        elif isinstance(item, dict):
            found.add(id(item))
            stack.extend(item.values())
        elif isinstance(item, list):
            found.add(id(item))
            stack.extend(item)
    return found


def sample_datetimes(rng: random.Random, count: int) -> list[Any]:
    zones = (None, UTC, BERLIN, timezone(timedelta(hours=-7)))
    values: list[Any] = [
        T0,
        T0.replace(microsecond=123456),
        T0.replace(tzinfo=None),
        T0.astimezone(BERLIN),
        SubDatetime(2025, 12, 5, 10, 30, tzinfo=UTC),
        datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN, fold=1),
        datetime(2025, 10, 26, 2, 30, tzinfo=UTC, fold=1),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
    ]
    for _ in range(count):
        values.append(
            datetime(
                rng.randint(1, 9998),
                rng.randint(1, 12),
                rng.randint(1, 28),
                rng.randint(0, 23),
                rng.randint(0, 59),
                rng.randint(0, 59),
                rng.choice((0, 999, 1000, 999_999, rng.randint(0, 999) * 1000)),
                tzinfo=rng.choice(zones),
                fold=rng.randint(0, 1),
            )
        )
    return values


def test_to_utc_matches_the_original() -> None:
    for value in sample_datetimes(random.Random(1), 5000):
        try:
            expected = reference_to_utc(value)
        except OverflowError:
            with pytest.raises(OverflowError):
                to_utc(value)
            continue
        assert same(to_utc(value), expected), repr(value)


def base_fields() -> dict[str, Any]:
    """Fields as `record_test` passes them."""
    return {
        "evaluation_run_id": ObjectId(),
        "test_run_id": "2025-12-05T10-30-00Z-main-3f9a1c/t00001/abcd1234",
        "test_id": "t00001",
        "test_name": "t00001",
        "started_at": T0,
        "finished_at": T0,
        "duration_ms": 0.0,
        "metrics": {"wer": MetricData(score=3.0)},
        "score": 3.0,
        "score_method": "average",
        "passed": True,
        "status": "passed",
        "tags": [],
        "participants": [],
        "message": None,
        "details": None,
    }


TEXTS: tuple[Any, ...] = ("x", "", "  ", "é 日本", Word("w"), 1, None, b"x")
ODD: tuple[Any, ...] = (None, True, 1, 2.5, "text", [], {}, object())
DETAILS: tuple[Any, ...] = (
    None,
    {},
    {"a": 1, "b": [1, 2.5, "x", None, False], "c": {"d": {"e": []}}},
    {"when": datetime(2025, 1, 2, 3, 4, 5, 678901)},
    {"when": datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=BERLIN)},
    {"when": SubDatetime(2025, 1, 2, tzinfo=UTC)},
    {"t": (1, (2, 3))},
    {"enum": Color.RED},
    {"word": Word("w")},
    {"big": 2**63},
    {"small": -(2**63)},
    {"nan": math.nan},
    {"bad": object()},
    {1: "int key"},
    {"a.b": 1},
    {"$a": 1},
    {"": 1},
    {"nested": {"a.b": 1}},
    OrderedDict(a=1),
    ["not", "a", "dict"],
)


def metric_values() -> list[Any]:
    return [
        MetricData(score=3.0),
        MetricData(score=0, passed=True, threshold=50, unit="ms"),
        MetricData(score=100.0, passed=False, threshold=-1.5, unit=""),
        MetricData(score=1, details={"a": [1, {"b": datetime(2025, 1, 1)}], "c": None}),
        MetricData(score=1, details={}),
        MetricData(score=1, details={"t": (1, 2), "e": Color.RED}),
        MetricData.model_construct(score=2.0),
        SubMetric(score=4.0),
        {"score": 5},
        {"score": 500},
        5.0,
        None,
    ]


def field_values(rng: random.Random) -> dict[str, list[Any]]:
    dates = sample_datetimes(rng, 40)
    return {
        "evaluation_run_id": [ObjectId(), "6b06472babdaeb8a07f4c4dc", None],
        "test_run_id": list(TEXTS),
        "test_id": list(TEXTS),
        "test_name": list(TEXTS),
        "started_at": [*dates, "2025-01-01T00:00:00Z", 0, None],
        "finished_at": [*dates, "2025-01-01T00:00:00Z", 0, None],
        "duration_ms": [0.0, -0.0, 1.5, 1e300, -1.0, math.nan, math.inf, 1, True, "1", None],
        "metrics": [
            {},
            *({"m": metric} for metric in metric_values()),
            {"a": MetricData(score=1.0), "b": MetricData(score=2.0)},
            {"a.b": MetricData(score=1.0)},
            {"$a": MetricData(score=1.0)},
            {"": MetricData(score=1.0)},
            {1: MetricData(score=1.0)},
            {Word("w"): MetricData(score=1.0)},
            OrderedDict(m=MetricData(score=1.0)),
            [],
            None,
        ],
        "score": [None, 0, 100, 50.5, 3, 0.0, -0.0, True, math.nan, math.inf, -1, 101, "5"],
        "score_method": ["average", "", Word("w"), 1, None],
        "passed": [True, False, 1, 0, None, "yes"],
        "status": ["passed", "failed", "skipped", "error", "bogus", Word("passed"), None],
        "tags": [[], ["a", "b"], [Word("a")], [1], [None], ("a",), "ab", None],
        "participants": [[], ["alice"], [Word("bob")], [["x"]], None],
        "message": [None, "m", "", Word("m"), 1],
        "details": list(DETAILS),
    }


def outcome(fields: dict[str, Any], build: Any) -> tuple[str, Any]:
    try:
        return "ok", build(fields)
    except ValidationError as exc:
        return "invalid", describe_validation_error(exc)


def check(fields: dict[str, Any]) -> bool:
    """Compare the direct builder with the model; True when the direct path built it."""
    expected = outcome(fields, lambda f: TestRun(**f).to_document())
    actual = outcome(fields, build_test_run_document)
    assert actual[0] == expected[0], (fields, actual, expected)
    if actual[0] == "ok":
        assert same(actual[1], expected[1]), (fields, actual, expected)
        assert not containers(actual[1]) & containers(fields), "shares a container with its input"
    else:
        assert actual == expected
    return actual[0] == "ok"


def test_each_field_value_gives_the_models_document() -> None:
    rng = random.Random(2)
    base = base_fields()
    built = 0
    for key, values in field_values(rng).items():
        for value in values:
            built += check({**base, key: value})
    later = {**base, "finished_at": T0 + timedelta(seconds=1), "duration_ms": 1000.0}
    earlier = {**base, "finished_at": T0 - timedelta(milliseconds=1)}
    missing = {k: v for k, v in base.items() if k != "details"}
    reordered = dict(reversed(base.items()))  # not built directly, but the same document
    for fields in (later, earlier, missing, reordered):
        check(fields)
    assert built > 100


def test_random_combinations_give_the_models_document() -> None:
    rng = random.Random(3)
    base = base_fields()
    choices = field_values(rng)
    built = 0
    for _ in range(4000):
        fields = dict(base)
        for key in rng.sample(list(base), rng.randint(1, 4)):
            fields[key] = rng.choice(choices[key])
        built += check(fields)
    assert built > 300


def test_the_usual_record_is_built_directly() -> None:
    fields = base_fields()
    document = build_test_run_document(fields)
    assert _plain_test_run_document(fields) is not None  # not pydantic: it costs more
    assert same(document, TestRun(**fields).to_document())
    assert tuple(document) == TEST_RUN_FIELDS == tuple(TestRun.model_fields)
    assert TEST_RUN_KEYS[0] == "_id"
    assert TEST_RUN_KEYS[1:] == TEST_RUN_FIELDS
    assert tuple(document["metrics"]["wer"]) == METRIC_FIELDS == tuple(MetricData.model_fields)


def reference_timing(
    clock: Any, started_at: Any, finished_at: Any, duration_ms: Any
) -> tuple[datetime, datetime, float]:
    """`RunRecorder._timing` written plainly (without its argument checks): start = finish -
    duration and finish = start + duration, computed in UTC."""

    def in_utc(value: datetime) -> datetime:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    if finished_at is None:
        if started_at is not None and duration_ms is not None:
            finished_at = in_utc(started_at) + timedelta(milliseconds=duration_ms)
        else:
            finished_at = clock()
    if started_at is None and not duration_ms:  # starts when it finishes
        finished = reference_to_utc(finished_at)
        return finished, finished, 0.0
    if started_at is None:
        started_at = in_utc(finished_at) - timedelta(milliseconds=duration_ms)
    started, finished = reference_to_utc(started_at), reference_to_utc(finished_at)
    if duration_ms is None:
        duration_ms = (finished - started) / timedelta(milliseconds=1)
    return started, finished, float(duration_ms)


def test_timing_from_the_clock_matches_the_original() -> None:
    rng = random.Random(4)
    readings = [
        *sample_datetimes(rng, 300),
        datetime.now(UTC),
        datetime.now(),
        datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN, fold=1),
        datetime(2025, 10, 26, 2, 30, tzinfo=UTC, fold=1),
    ]
    for reading in readings:

        def clock(reading: datetime = reading) -> datetime:
            return reading

        recorder = RunRecorder(None, clock=clock)
        for args in ((None, None, None), (None, None, 5.0), (None, T0, None), (T0, None, None)):
            try:
                expected = reference_timing(clock, *args)
            except OverflowError:  # now one clear InvalidDataError, not a raw OverflowError
                with pytest.raises(InvalidDataError, match=r"outside the years"):
                    recorder._timing(*args)
                continue
            actual = recorder._timing(*args)
            assert all(map(same, actual, expected)), (reading, args, actual, expected)


def test_average_score_is_the_mean_of_the_scores() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        scores = [rng.choice((0.0, 100.0, rng.uniform(0, 100))) for _ in range(rng.randint(1, 8))]
        metrics = {f"m{i}": MetricData(score=score) for i, score in enumerate(scores)}
        assert same(average_score(metrics, True), fmean(score for score in scores))


def test_the_direct_builder_was_written_for_these_models() -> None:
    """A new field or validator on `TestRun` or `MetricData` fails here, not silently.

    `build_test_run_document` (models.py) re-checks what these validators
    check, and `evalstore.codec` journals these fields from a template; after
    changing a model, update both and their tests, then this list.
    """
    schema = {
        model.__name__: (
            list(model.model_fields),
            {
                name: list(decorator.info.fields)
                for name, decorator in model.__pydantic_decorators__.field_validators.items()
            },
            list(model.__pydantic_decorators__.model_validators),
        )
        for model in (TestRun, MetricData)
    }
    assert schema == {
        "TestRun": (
            [
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
            ],
            {
                "_utc": ["started_at", "finished_at"],
                "_text": ["test_run_id", "test_id", "test_name", "score_method", "message"],
                "_texts": ["tags", "participants"],
                "_score": ["score"],
                "_metric_names": ["metrics"],
                "_non_empty": ["test_id", "test_run_id"],
                "_details": ["details"],
                "_duration": ["duration_ms"],
            },
            ["_order"],
        ),
        "MetricData": (
            ["score", "passed", "threshold", "unit", "details"],
            {
                "_score": ["score"],
                "_threshold": ["threshold"],
                "_unit": ["unit"],
                "_details": ["details"],
            },
            [],
        ),
    }


def test_a_clock_reading_in_the_repeated_hour_gives_a_zero_duration() -> None:
    """01:30 on the night New York falls back, second time (fold=1), is 06:30 UTC."""
    reading = datetime(2025, 11, 2, 1, 30, tzinfo=ZoneInfo("America/New_York"), fold=1)
    recorder = RunRecorder(None, clock=lambda: reading)
    six_thirty = datetime(2025, 11, 2, 6, 30, tzinfo=UTC)
    assert recorder._timing(None, None, None) == (six_thirty, six_thirty, 0.0)
    assert recorder._timing(None, None, 5.0) == (
        six_thirty - timedelta(milliseconds=5),
        six_thirty,
        5.0,
    )
    assert recorder._timing(reading, None, 60_000.0) == (
        six_thirty,
        six_thirty + timedelta(minutes=1),
        60_000.0,
    )
