"""Documents as JSON lines: the text of the journals and of the local store.

A line is one JSON object, the BSON types evalstore's documents hold written
as relaxed extended JSON (`{"$oid": ...}`, `{"$date": ...}`) so that ObjectIds
and datetimes round-trip. `encode` writes a line; `decode` reads one back.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from bson import ObjectId, json_util
from bson.json_util import RELAXED_JSON_OPTIONS

from evalstore.models import METRIC_FIELDS, TEST_RUN_KEYS, Document

# How lines are read back: datetimes aware, in UTC.
_JSON_OPTIONS = RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=timezone.utc)


def decode(line: bytes | str) -> Any:
    """The value one line holds, ObjectIds and (aware, UTC) datetimes restored.

    Raises:
        ValueError: the line is not JSON.
    """
    return json_util.loads(line, json_options=_JSON_OPTIONS)


def _extended_json(value: object) -> Document:
    """Relaxed extended JSON for the two BSON types evalstore's documents hold."""
    if isinstance(value, ObjectId):
        return {"$oid": str(value)}
    if isinstance(value, datetime):
        return {"$date": format_date(value)}
    raise TypeError(f"cannot journal a {type(value).__name__}")


def _strftime_date(value: datetime) -> str:
    """The journal's text for a datetime: UTC, millisecond precision, `Z` suffix."""
    utc = value.astimezone(timezone.utc) if value.tzinfo else value
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_date(value: datetime) -> str:
    """The same text as `_strftime_date`, about twice as fast for the usual values.

    `isoformat` zero-pads years below 1000 where `strftime("%Y")` may not, and a
    subclass may format itself differently: both keep the strftime path.
    """
    zone = value.tzinfo
    if type(value) is not datetime or value.year < 1000 or (zone is not None and not zone):
        return _strftime_date(value)
    if zone is None:
        return value.isoformat(timespec="milliseconds") + "Z"
    utc = value if zone is timezone.utc else value.astimezone(timezone.utc)
    if utc.year < 1000:
        return _strftime_date(value)
    return utc.isoformat(timespec="milliseconds")[:-6] + "Z"  # without its "+00:00"


# One encoder for every line: `json.dumps` with options builds a new one per call.
_ENCODER = json.JSONEncoder(default=_extended_json, allow_nan=False)


def encode(entry: Document) -> bytes:
    """One line (with its newline) for `entry`.

    The stdlib's C encoder with a `default` for ObjectId and datetime writes the
    same relaxed extended JSON as `bson.json_util`, several times faster.
    """
    line = _encode_test_entry(entry)
    if line is None:
        line = _ENCODER.encode(entry) + "\n"
    return line.encode("utf-8")


_float_repr = float.__repr__  # what the C encoder writes for a finite float


def _encode_test_entry(entry: Document) -> str | None:
    """`_ENCODER.encode(entry) + "\\n"` for a journal test line of the usual shape, else None."""
    if tuple(entry) != ("kind", "doc") or entry["kind"] != "test":
        return None
    encoded = encode_test_run(entry["doc"])
    return None if encoded is None else _test_line(encoded[0])


def _test_line(text: str) -> str:
    return f'{{"kind": "test", "doc": {text}}}\n'


def encode_test_entry(doc: Document, encoded: tuple[str, bool] | None) -> bytes:
    """`encode({"kind": "test", "doc": doc})`, from `encode_test_run(doc)` when it is given."""
    if encoded is None:
        return encode({"kind": "test", "doc": doc})
    return _test_line(encoded[0]).encode("utf-8")


def encode_test_run(doc: object) -> tuple[str, bool] | None:
    """`_ENCODER.encode(doc)` for a test run document of the usual shape, and whether it is plain.

    A test run is written for every result (a journal line, a local store row), and
    the generic encoder spends most of its time calling `_extended_json`; this
    writes the same text from a template. Its fixed fields must have exactly the
    types `record_test` stores (so each value's text is the C encoder's), and
    free-form `details` go through the generic encoder; anything else returns None
    to go the generic way, which then writes it or raises as before.

    The keys are `TEST_RUN_KEYS`, the model's; the template spells them in that
    order, which `_check_template` verifies (the tests run it).

    Returns:
        The text, and True when the document holds no free-form value (no `details`,
        its own or a metric's): every key is then one of the template's or a metric
        name (an exact `str`), every value a typed field of the template's, and the
        text is pure ASCII (non-ASCII characters, NUL and lone surrogates are written
        as `\\u` escapes). None when the generic encoder must write it.
    """
    if type(doc) is not dict or tuple(doc) != TEST_RUN_KEYS:
        return None
    (
        oid,
        run_oid,
        test_run_id,
        test_id,
        test_name,
        started,
        finished,
        duration,
        metrics,
        score,
        score_method,
        passed,
        status,
        tags,
        participants,
        message,
        details,
    ) = doc.values()
    if not (
        type(oid) is ObjectId
        and type(run_oid) is ObjectId
        and type(test_run_id) is str
        and type(test_id) is str
        and type(test_name) is str
        and type(started) is datetime
        and type(finished) is datetime
        and type(duration) is float
        and -math.inf < duration < math.inf
        and type(metrics) is dict
        and (score is None or (type(score) is float and -math.inf < score < math.inf))
        and type(score_method) is str
        and type(passed) is bool
        and type(status) is str
        and type(tags) is list
        and type(participants) is list
        and (message is None or type(message) is str)
    ):
        return None
    plain = details is None
    if metrics:
        metrics_text = []
        for name, metric in metrics.items():
            metric_text = _encode_metric(metric) if type(name) is str else None
            if metric_text is None:
                return None
            plain = plain and metric["details"] is None
            metrics_text.append(f"{_quote(name)}: {metric_text}")
        metrics_json = f"{{{', '.join(metrics_text)}}}"
    else:
        metrics_json = "{}"
    tags_text = _encode_strings(tags)
    participants_text = _encode_strings(participants)
    if tags_text is None or participants_text is None:
        return None
    return _test_run_text(doc, metrics_json, tags_text, participants_text), plain


def encode_plain_test_run(doc: Document) -> tuple[str, bool]:
    """`encode_test_run(doc)` for a document `recording.plain_result` built.

    Its values have exactly the template's types already: no metrics, no details,
    tags a list of exact strings and no participants.
    """
    tags_text = _encode_strings(doc["tags"])
    if tags_text is None:
        raise TypeError("encode_plain_test_run: the tags must be exact strings")
    return _test_run_text(doc, "{}", tags_text, "[]"), True


def _test_run_text(doc: Document, metrics_json: str, tags_text: str, participants_text: str) -> str:
    """The template's text of a test run whose values it takes (see `encode_test_run`)."""
    (
        oid,
        run_oid,
        test_run_id,
        test_id,
        test_name,
        started,
        finished,
        duration,
        _metrics,
        score,
        score_method,
        passed,
        status,
        _tags,
        _participants,
        message,
        details,
    ) = doc.values()
    started_text = format_date(started)
    finished_text = started_text if finished is started else format_date(finished)
    return (
        f'{{"_id": {{"$oid": "{oid}"}}, '
        f'"evaluation_run_id": {{"$oid": "{run_oid}"}}, '
        f'"test_run_id": {_quote(test_run_id)}, "test_id": {_quote(test_id)}, '
        f'"test_name": {_quote(test_name)}, '
        f'"started_at": {{"$date": "{started_text}"}}, '
        f'"finished_at": {{"$date": "{finished_text}"}}, '
        f'"duration_ms": {_float_repr(duration)}, "metrics": {metrics_json}, '
        f'"score": {"null" if score is None else _float_repr(score)}, '
        f'"score_method": {_quote(score_method)}, "passed": {"true" if passed else "false"}, '
        f'"status": {_quote(status)}, "tags": {tags_text}, "participants": {participants_text}, '
        f'"message": {"null" if message is None else _quote(message)}, '
        f'"details": {"null" if details is None else _ENCODER.encode(details)}}}'
    )


def _encode_metric(metric: object) -> str | None:
    """The encoder's text for one metric document of the usual shape, else None."""
    if type(metric) is not dict or tuple(metric) != METRIC_FIELDS:
        return None
    score, passed, threshold, unit, details = metric.values()
    if not (
        type(score) is float
        and -math.inf < score < math.inf
        and (passed is None or type(passed) is bool)
        and (threshold is None or (type(threshold) is float and -math.inf < threshold < math.inf))
        and (unit is None or type(unit) is str)
    ):
        return None
    return (
        f'{{"score": {_float_repr(score)}, '
        f'"passed": {"null" if passed is None else "true" if passed else "false"}, '
        f'"threshold": {"null" if threshold is None else _float_repr(threshold)}, '
        f'"unit": {"null" if unit is None else _quote(unit)}, '
        f'"details": {"null" if details is None else _ENCODER.encode(details)}}}'
    )


def _encode_strings(values: list[Any]) -> str | None:
    """The encoder's text for a list of strings, else None."""
    if not values:
        return "[]"
    if not all(type(value) is str for value in values):
        return None
    return f"[{', '.join(map(_quote, values))}]"


def _check_template() -> None:
    """Raise unless the template writes a test line as the generic encoder does.

    The template spells out the fields of `TestRun` and `MetricData` in their
    order while its gate takes them from `TEST_RUN_KEYS` and `METRIC_FIELDS`: a
    field added, removed, renamed or moved in the models must fail here, not
    journal lines that lack it. Run by the tests (tests/recording/test_journal_encoding.py),
    not on import: it would load pydantic into every recording session.
    """
    from evalstore import schema

    MetricData, TestRun = schema.MetricData, schema.TestRun
    started = datetime(2025, 12, 5, 10, 30, tzinfo=timezone.utc)
    metric = MetricData(score=1.0, passed=True, threshold=2.0, unit="ms", details={"a": 1})
    test_run = TestRun(
        evaluation_run_id=ObjectId(),
        test_run_id="run/test/1",
        test_id="test",
        test_name="name",
        started_at=started,
        finished_at=started + timedelta(seconds=1),
        duration_ms=1000.0,
        metrics={"metric": metric},
        score=3.0,
        score_method="method",
        passed=True,
        status="passed",
        tags=["tag"],
        participants=["participant"],
        message="message",
        details={"b": 2},
    )
    entry = {"kind": "test", "doc": {"_id": ObjectId(), **test_run.to_document()}}
    try:
        line = _encode_test_entry(entry)
    except ValueError:  # it unpacks as many values as it has fields
        line = None
    if line != _ENCODER.encode(entry) + "\n":
        raise AssertionError(
            "evalstore.codec: the test line template no longer matches TestRun and "
            "MetricData; update _encode_test_entry and _encode_metric"
        )
