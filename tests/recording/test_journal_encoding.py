"""The codec's fast encoders write exactly what the generic encoder writes.

`codec.encode` writes journal `test` lines from a template and formats dates with
`isoformat`; these tests compare both with the straightforward implementation
(`json.dumps` with a strftime-based `default`) over many values, edge cases
included, so that any divergence fails here.
"""

from __future__ import annotations

import enum
import json
import math
import random
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bson import ObjectId

from evalstore import codec, schema
from evalstore.codec import _encode_test_entry, encode, format_date
from evalstore.models import METRIC_FIELDS, MetricData, TestRun
from evalstore.recording.journal import read_journal
from evalstore.storage.sqlite.documents import stored_test_row

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def reference_extended_json(value: object) -> dict[str, Any]:
    """The journal's original `default` hook, kept as the specification."""
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    if isinstance(value, datetime):
        utc = value.astimezone(timezone.utc) if value.tzinfo else value
        return {"$date": utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"}
    raise TypeError(f"cannot journal a {type(value).__name__}")


def reference_encode(entry: dict[str, Any]) -> bytes:
    """The journal's original encoder, kept as the specification."""
    return (json.dumps(entry, default=reference_extended_json, allow_nan=False) + "\n").encode()


def outcome(function: Any, *args: Any) -> tuple[str, Any]:
    """The result of a call, or the type and message of what it raised."""
    try:
        return "ok", function(*args)
    except Exception as exc:  # compared, not hidden
        return "raised", (type(exc), str(exc))


def templated(entry: dict[str, Any]) -> bool:
    """Whether `encode` writes this entry from its template (not the generic encoder)."""
    kind, line = outcome(_encode_test_entry, entry)
    return kind == "ok" and line is not None


class FalsyZone(tzinfo):
    """A time zone that is false in a boolean context (the hook tests `if value.tzinfo`)."""

    def __bool__(self) -> bool:
        return False

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(hours=3)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "FALSY"


class SubDatetime(datetime):
    """A datetime subclass (pandas' Timestamp is one) that formats itself its own way."""

    def strftime(self, fmt: str) -> str:
        return "sub:" + super().strftime(fmt)


class Color(enum.IntEnum):
    RED = 1


class Word(str):
    pass


MICROSECONDS = (0, 1, 999, 1000, 1001, 499_999, 500_000, 999_000, 999_999)
ZONES: tuple[tzinfo | None, ...] = (
    None,
    UTC,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-11)),
    timezone(timedelta(seconds=-1)),
    timezone(timedelta(microseconds=1)),
    BERLIN,
    NEW_YORK,
    FalsyZone(),
)


def sample_datetimes(count: int = 3000) -> list[datetime]:
    """Random and edge-case datetimes: all years, microsecond edges, zones, folds."""
    rng = random.Random(20251205)
    values = [
        datetime(1, 1, 1),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=-1))),
        datetime(999, 12, 31, 23, 59, 59, 999_999),
        datetime(1000, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),  # year 999 in UTC
        datetime(1000, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999_999),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN, fold=0),  # ambiguous local hour
        datetime(2025, 10, 26, 2, 30, tzinfo=BERLIN, fold=1),
        datetime(2025, 3, 30, 2, 30, tzinfo=BERLIN),  # a local time that does not exist
        datetime(2025, 11, 2, 1, 30, tzinfo=NEW_YORK, fold=1),
        datetime(2025, 11, 2, 1, 30, fold=1),
        SubDatetime(2025, 12, 5, 10, 30, tzinfo=UTC),
        SubDatetime(2025, 12, 5, 10, 30),
    ]
    for _ in range(count):
        year = rng.choice((rng.randint(1, 999), rng.randint(1000, 9998), rng.randint(1960, 2100)))
        value = datetime(
            year,
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            rng.choice((*MICROSECONDS, rng.randint(0, 999_999))),
            tzinfo=rng.choice(ZONES),
            fold=rng.randint(0, 1),
        )
        values.append(value)
    return values


def test_format_date_matches_strftime() -> None:
    for value in sample_datetimes():
        expected = outcome(lambda v: reference_extended_json(v)["$date"], value)
        assert outcome(format_date, value) == expected, repr(value)


def test_now_is_formatted_as_before() -> None:
    for _ in range(1000):
        for value in (datetime.now(UTC), datetime.now(), datetime.now(BERLIN)):
            assert format_date(value) == reference_extended_json(value)["$date"]


def base_document() -> dict[str, Any]:
    """A test run document as `record_test` journals it."""
    now = datetime(2025, 12, 5, 10, 30, 0, 123000, tzinfo=UTC)
    return {
        "_id": ObjectId(),
        "evaluation_run_id": ObjectId(),
        "test_run_id": "2025-12-05T10-30-00Z-main-3f9a1c/t00001/abcd1234",
        "test_id": "t00001",
        "test_name": "t00001",
        "started_at": now,
        "finished_at": now,
        "duration_ms": 0.0,
        "metrics": {
            "wer": {"score": 3.0, "passed": None, "threshold": None, "unit": None, "details": None}
        },
        "score": 3.0,
        "score_method": "average",
        "passed": True,
        "status": "passed",
        "tags": [],
        "participants": [],
        "message": None,
        "details": None,
    }


TEXTS = (
    "",
    "plain",
    'quote " and backslash \\',
    "control \x00\x01\x1f\x7f\n\t",
    "unicode é ß 日本 😀",
    "lone surrogate \ud800",
    "</script>",
    Word("a str subclass"),
)
FLOATS = (
    0.0,
    -0.0,
    1.0,
    0.1,
    100.0,
    1e-300,
    5e-324,
    1.7976931348623157e308,
    -12.5,
    1 / 3,
    math.nan,
    math.inf,
    -math.inf,
)
ODDITIES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    7,
    -(2**63),
    2**70,
    Color.RED,
    [],
    {},
    (),
    ("a",),
    {1: "int key"},
    {None: "none key"},
    {(1, 2): "tuple key"},
    object(),
    b"bytes",
    {1, 2},
)
DETAILS: tuple[Any, ...] = (
    None,
    {},
    {"a": 1, "b": [1, 2.5, "x", None, True], "c": {"d": datetime(2025, 1, 2, tzinfo=UTC)}},
    {"oid": ObjectId(), "when": datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=BERLIN)},
    {"nan": math.nan},
    {"bad": object()},
    ["not", "a", "dict"],
    "text",
)


def field_values(key: str) -> list[Any]:
    """Values to try in one field of a test run document."""
    dates = sample_datetimes(60)
    common = [*TEXTS[:3], *FLOATS[:3], *ODDITIES]
    values: dict[str, list[Any]] = {
        "_id": [ObjectId(), "not an oid", *ODDITIES[:3]],
        "evaluation_run_id": [ObjectId(), "6b06472babdaeb8a07f4c4dc", None],
        "started_at": [*dates, *common],
        "finished_at": [*dates, *common],
        "duration_ms": [*FLOATS, *common],
        "score": [*FLOATS, *common],
        "passed": [True, False, None, 1, "true"],
        "tags": [[], ["a", "b"], list(TEXTS), ["a", 1], [None], ("a",), "ab", *ODDITIES],
        "participants": [[], ["alice"], [Word("bob")], [["nested"]], *ODDITIES],
        "details": [*DETAILS, *ODDITIES],
        "message": [*TEXTS, *common],
    }
    for text_key in ("test_run_id", "test_id", "test_name", "score_method", "status"):
        values[text_key] = [*TEXTS, *common]
    return values.get(key, common)


def metric_values() -> list[Any]:
    """Values to try as one metric's document."""
    base = {"score": 3.0, "passed": None, "threshold": None, "unit": None, "details": None}
    metrics: list[Any] = [base, {}, {"score": 3.0}, dict(reversed(base.items())), *ODDITIES]
    variants: dict[str, list[Any]] = {
        "score": [*FLOATS, 1, True, None, "3"],
        "passed": [True, False, None, 0, "yes"],
        "threshold": [*FLOATS, 5, None, "5"],
        "unit": [*TEXTS, 1, None],
        "details": list(DETAILS),
    }
    for key, values in variants.items():
        metrics.extend({**base, key: value} for value in values)
    metrics.append({**base, "extra": 1})
    return metrics


def sample_entries() -> list[dict[str, Any]]:
    """Test lines varied one field at a time, plus reordered, partial and other lines."""
    base = base_document()
    entries: list[dict[str, Any]] = [{"kind": "test", "doc": base}]
    for key in base:
        entries.extend({"kind": "test", "doc": {**base, key: value}} for value in field_values(key))
    for metric in metric_values():
        entries.append({"kind": "test", "doc": {**base, "metrics": {"m": metric}}})
        entries.append({"kind": "test", "doc": {**base, "metrics": {"a": metric, "b": metric}}})
    metrics_value: Any
    for metrics_value in ({}, {"x": base["metrics"]["wer"], 1: {}}, {"": {}}, [], None):
        entries.append({"kind": "test", "doc": {**base, "metrics": metrics_value}})
    same_time = datetime(2025, 1, 1, 12, tzinfo=BERLIN)
    entries.append(
        {"kind": "test", "doc": {**base, "started_at": same_time, "finished_at": same_time}}
    )
    entries.append({"kind": "test", "doc": dict(reversed(base.items()))})
    entries.append({"kind": "test", "doc": {k: v for k, v in base.items() if k != "details"}})
    entries.append({"kind": "test", "doc": {**base, "extra": 1}})
    entries.append({"doc": base, "kind": "test"})
    entries.append({"kind": "test", "doc": base, "more": 1})
    entries.append({"kind": "test", "doc": None})
    entries.append({"kind": Word("test"), "doc": base})
    entries.append({"kind": "acked", "ids": [base["test_run_id"]] * 3})
    entries.append({"kind": "finish", "status": "completed", "finished_at": base["started_at"]})
    circular: dict[str, Any] = {**base}
    circular["details"] = {"self": circular}
    entries.append({"kind": "test", "doc": circular})
    return entries


def test_encode_matches_the_generic_encoder() -> None:
    entries = sample_entries()
    assert sum(map(templated, entries)) > 200  # the template, not only the fallback, is compared
    for entry in entries:
        assert outcome(encode, entry) == outcome(reference_encode, entry), repr(entry)


def test_random_documents_encode_as_before() -> None:
    rng = random.Random(7)
    base = base_document()
    choices = {key: field_values(key) for key in base}
    metrics = metric_values()
    count = 0
    for _ in range(3000):
        doc = {key: value for key, value in base.items()}
        for key in rng.sample(list(base), rng.randint(1, 4)):
            doc[key] = rng.choice(choices[key])
        if rng.random() < 0.5:
            doc["metrics"] = {f"m{i}": rng.choice(metrics) for i in range(rng.randint(0, 3))}
        entry = {"kind": "test", "doc": doc}
        count += templated(entry)
        assert outcome(encode, entry) == outcome(reference_encode, entry), repr(entry)
    assert count > 300


def test_a_test_line_reads_back(tmp_path: Any) -> None:
    path = tmp_path / "run.ndjson"
    doc = {**base_document(), "tags": ["a", "é"], "details": {"when": datetime(2025, 1, 1)}}
    header = {"kind": "header", "version": 1, "database": "d", "target": "t", "run": {"x": 1}}
    path.write_bytes(encode(header) + encode({"kind": "test", "doc": doc}))
    contents = read_journal(path)
    assert contents is not None
    [stored] = contents.tests.values()
    assert stored["details"]["when"] == datetime(2025, 1, 1, tzinfo=UTC)
    assert {**stored, "details": None} == {**doc, "details": None}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_as_before(value: float) -> None:
    entry = {"kind": "test", "doc": {**base_document(), "duration_ms": value}}
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        encode(entry)


class WiderTestRun(TestRun):
    """`TestRun` with one more field, as a change of the model would give it."""

    __test__ = False
    reviewer: str = "someone"


class WiderMetric(MetricData):
    """`MetricData` with one more field."""

    weight: float = 1.0


class WiderMetricTestRun(TestRun):
    """`TestRun` whose metrics have one more field."""

    __test__ = False
    metrics: dict[str, WiderMetric]  # type: ignore[assignment]


@pytest.mark.parametrize(
    "changed",
    [
        {"TestRun": WiderTestRun, "TEST_RUN_KEYS": ("_id", *WiderTestRun.model_fields)},
        {
            "TestRun": WiderMetricTestRun,
            "MetricData": WiderMetric,
            "METRIC_FIELDS": (*METRIC_FIELDS, "weight"),
        },
    ],
    ids=["test run field", "metric field"],
)
def test_the_template_check_fails_when_a_model_gains_a_field(
    monkeypatch: pytest.MonkeyPatch, changed: dict[str, Any]
) -> None:
    """The template's gate takes the new field from the models' field names; the template
    itself cannot. (`TEST_RUN_KEYS` and `METRIC_FIELDS` are checked against the models in
    tests/unit/test_test_run_document.py.)"""
    codec._check_template()  # it passes with the real models
    for name, value in changed.items():
        monkeypatch.setattr(schema if name in ("TestRun", "MetricData") else codec, name, value)
    with pytest.raises(AssertionError, match="template no longer matches"):
        codec._check_template()


def test_a_bare_test_run_encodes_as_the_generic_encoder_writes_it() -> None:
    """`encode_test_run` (the local store's rows) writes what the generic encoder does."""
    count = 0
    for entry in sample_entries():
        doc = entry.get("doc")
        kind, encoded = outcome(codec.encode_test_run, doc)
        if kind == "ok" and encoded is not None:
            count += 1
            text, plain = encoded
            assert text == codec._ENCODER.encode(doc), repr(doc)
            free_form = doc["details"] is not None or any(
                metric["details"] is not None for metric in doc["metrics"].values()
            )
            assert plain is not free_form, repr(doc)
            assert not plain or text.isascii()
        else:  # the generic way writes it, or raises
            assert outcome(encode, entry) == outcome(reference_encode, entry), repr(entry)
    assert count > 200


def test_a_line_from_the_text_given_is_the_line_encode_writes() -> None:
    """`record_tests` encodes each test run once and gives the text to the journal and the
    local store: the journal line written from it is `encode`'s line, byte for byte."""
    count = 0
    for entry in sample_entries():
        doc = entry.get("doc")
        if tuple(entry) != ("kind", "doc") or entry["kind"] != "test":
            continue  # record_tests writes its test lines in this shape only
        kind, encoded = outcome(codec.encode_test_run, doc)
        if kind != "ok" or encoded is None:
            continue
        count += 1
        assert codec.encode_test_entry(doc, encoded) == encode(entry), repr(doc)
        assert codec.encode_test_entry(doc, None) == encode(entry)
    assert count > 200


def test_a_local_store_row_from_the_text_given_is_the_row_it_would_build() -> None:
    """`stored_test_row(document, encoded)` with the journal's text is the row it builds
    from the document alone, refusals included (a document MongoDB would refuse)."""
    count = 0
    for entry in sample_entries():
        doc = entry.get("doc")
        if entry.get("kind") != "test" or not isinstance(doc, dict):
            continue
        kind, encoded = outcome(codec.encode_test_run, doc)
        if kind != "ok" or encoded is None:
            continue
        count += 1
        assert stored_test_row(doc, encoded) == stored_test_row(doc), repr(doc)
    assert count > 200
