"""Documents as local store rows, and back.

A row holds the whole document as JSON (`doc`, the journals' relaxed extended
JSON) and copies of the fields queries use as typed columns (see `schema`).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

from bson import ObjectId, json_util

from evalstore.codec import encode, encode_test_run
from evalstore.models import Document
from evalstore.storage.engine import EncodedTestRun, bson_problem
from evalstore.storage.sqlite.schema import (
    ALERT_COLUMNS,
    POINT_COLUMNS,
    RUN_COLUMNS,
    TEST_RUN_COLUMNS,
    USAGE_COLUMNS,
)
from evalstore.storage.sqlite.where import to_ms


def _object_hook(value: dict[str, Any]) -> Any:
    """ObjectIds and aware UTC datetimes from the extended JSON `encode` writes."""
    if len(value) != 1:
        return value
    oid = value.get("$oid")
    if isinstance(oid, str):
        return ObjectId(oid)
    if not any(key.startswith("$") for key in value):
        return value
    stamp = value.get("$date")
    try:
        if isinstance(stamp, str) and stamp.endswith("Z"):
            return datetime.fromisoformat(stamp[:-1]).replace(tzinfo=timezone.utc)
        return json_util.object_hook(value, _JSON_OPTIONS)
    except (ValueError, TypeError, OverflowError):  # not extended JSON after all: as stored
        return value


_JSON_OPTIONS = json_util.RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=timezone.utc)
_DECODER = json.JSONDecoder(object_hook=_object_hook)


def decode_document(text: str) -> Document:
    """The document a row's `doc` holds (ObjectIds, aware UTC datetimes)."""
    document: Document = _DECODER.decode(text)
    return document


def decode_value(text: str | None) -> Any:
    """A JSON value taken out of a row's `doc` (SQL `doc -> '$.field'`), or None."""
    return None if text is None else _DECODER.decode(text)


def object_id(value: Any) -> Any:
    """An id column's value as the document holds it (ObjectIds are kept as hex)."""
    return ObjectId(value) if isinstance(value, str) and ObjectId.is_valid(value) else value


def encode_document(document: Document) -> str:
    """The JSON text a row keeps of `document`.

    Raises:
        TypeError, ValueError: a value JSON cannot hold (the caller refuses the document).
    """
    return test_run_text(document)[0]


def test_run_text(document: Document) -> tuple[str, bool]:
    """The JSON text a row keeps of `document`, and whether a template wrote it as plain.

    A test run of the usual shape is written from `codec.encode_test_run`'s template
    (the same text); plain means typed fields only, without free-form values (see
    there), so that `bson_problem` can tell from the text alone that it fits.

    Raises:
        TypeError, ValueError: a value JSON cannot hold (the caller refuses the document).
    """
    encoded = encode_test_run(document)
    if encoded is not None:
        return encoded
    return encode(document)[:-1].decode("utf-8"), False


def _oid_or_text(value: Any) -> str | None:
    if isinstance(value, ObjectId):
        return str(value)
    return value if isinstance(value, str) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _date(value: Any) -> int | None:
    return to_ms(value) if isinstance(value, datetime) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


_INT64 = (-(2**63), 2**63 - 1)


def _duration(value: Any) -> int | float | None:
    """A finite number as it is (what `json_extract` gives of the document's text), else None."""
    kind = type(value)
    if kind is float:
        return value if -math.inf < value < math.inf else None
    if kind is int:
        return value if _INT64[0] <= value <= _INT64[1] else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return _duration(float(value) if isinstance(value, float) else int(value))


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _flag(value: Any) -> int | None:
    return int(value) if isinstance(value, bool) else None


def _tags(value: Any) -> str | None:
    return json.dumps(value) if isinstance(value, list) else None


_RUN_CONVERTERS = {
    "_id": _oid_or_text,
    "evaluation_run_id": _text,
    "suite": _text,
    "environment": _text,
    "git_branch": _text,
    "status": _text,
    "started_at": _date,
    "finished_at": _date,
    "last_seen_at": _date,
    "score": _number,
    "num_tests": _integer,
    "system_info_hash": _text,
    "experiment_tags": _tags,
}
_TEST_CONVERTERS = {
    "_id": _oid_or_text,
    "test_run_id": _text,
    "evaluation_run_id": _oid_or_text,
    "test_id": _text,
    "status": _text,
    "passed": _flag,
    "score": _number,
    "finished_at": _date,
    "duration_ms": _duration,
}
_ALERT_CONVERTERS = {
    "_id": _oid_or_text,
    "key": _text,
    "rule": _text,
    "level": _text,
    "state": _text,
    "acknowledged": _flag,
    "evaluation_run_id": _oid_or_text,
    "test_id": _text,
    "suite": _text,
    "environment": _text,
    "git_branch": _text,
    "fired_at": _date,
    "last_seen_at": _date,
}
_USAGE_CONVERTERS = {
    "_id": _oid_or_text,
    "usage_id": _text,
    "evaluation_run_id": _oid_or_text,
    "test_id": _text,
    "model": _text,
    "provider": _text,
    "input_tokens": _integer,
    "output_tokens": _integer,
    "cache_read_tokens": _integer,
    "cache_write_tokens": _integer,
    "reasoning_tokens": _integer,
    "calls": _integer,
    "cost": _number,
    "cost_source": _text,
    "recorded_at": _date,
    "suite": _text,
    "git_branch": _text,
    "environment": _text,
}
_POINT_CONVERTERS = {
    "_id": _oid_or_text,
    "evaluation_run_id": _oid_or_text,
    "metric": _text,
    "split": _text,
    "step": _integer,
    "value": _number,
    "recorded_at": _date,
}
assert tuple(_POINT_CONVERTERS) == POINT_COLUMNS
assert tuple(_USAGE_CONVERTERS) == USAGE_COLUMNS
assert tuple(_RUN_CONVERTERS) == RUN_COLUMNS
assert tuple(_TEST_CONVERTERS) == TEST_RUN_COLUMNS
assert tuple(_ALERT_CONVERTERS) == ALERT_COLUMNS


def run_row(document: Document, text: str) -> tuple[Any, ...]:
    """The `evaluation_runs` row of a run document whose JSON is `text`."""
    return (*(convert(document.get(name)) for name, convert in _RUN_CONVERTERS.items()), text)


def test_row(document: Document, text: str) -> tuple[Any, ...]:
    """The `test_runs` row of a test run document whose JSON is `text`."""
    return (*(convert(document.get(name)) for name, convert in _TEST_CONVERTERS.items()), text)


def templated_test_row(document: Document, text: str) -> tuple[Any, ...]:
    """`test_row` of a document `codec.encode_test_run` wrote (its field types are known)."""
    return (
        str(document["_id"]),
        document["test_run_id"],
        str(document["evaluation_run_id"]),
        document["test_id"],
        document["status"],
        int(document["passed"]),
        document["score"],
        to_ms(document["finished_at"]),
        document["duration_ms"],  # a finite float (the template's)
        text,
    )


def alert_row(document: Document, text: str) -> tuple[Any, ...]:
    """The `alerts` row of an alert document whose JSON is `text`."""
    return (*(convert(document.get(name)) for name, convert in _ALERT_CONVERTERS.items()), text)


def usage_row(document: Document, text: str) -> tuple[Any, ...]:
    """The `usage` row of a usage document whose JSON is `text`."""
    return (*(convert(document.get(name)) for name, convert in _USAGE_CONVERTERS.items()), text)


def point_row(document: Document, text: str) -> tuple[Any, ...]:
    """The `metric_points` row of a point document whose JSON is `text`."""
    return (*(convert(document.get(name)) for name, convert in _POINT_CONVERTERS.items()), text)


_TABLE_COLUMNS = {
    "evaluation_runs": RUN_COLUMNS,
    "test_runs": TEST_RUN_COLUMNS,
    "alerts": ALERT_COLUMNS,
    "usage": USAGE_COLUMNS,
    "metric_points": POINT_COLUMNS,
}
_ROWS = {
    "evaluation_runs": run_row,
    "test_runs": test_row,
    "alerts": alert_row,
    "usage": usage_row,
    "metric_points": point_row,
}


def table_columns(table: str) -> tuple[str, ...]:
    """The columns kept beside `doc` in `table`."""
    return _TABLE_COLUMNS[table]


def row_of(table: str, document: Document, text: str) -> tuple[Any, ...]:
    """The row of `document` (whose JSON is `text`) in `table`."""
    return _ROWS[table](document, text)


def insert_sql(table: str, *, or_ignore: bool = False, replace: bool = False) -> str:
    """The INSERT of a whole row of `table` (columns, then `doc`).

    Args:
        or_ignore: a row with the same key is left as it is.
        replace: a row with the same `_id` is replaced (its other unique keys must not clash).
    """
    columns = table_columns(table)
    names = ", ".join((*columns, "doc"))
    marks = ", ".join("?" * (len(columns) + 1))
    conflict = " ON CONFLICT DO NOTHING" if or_ignore else ""
    if replace:
        assignments = ", ".join(f"{name} = excluded.{name}" for name in (*columns[1:], "doc"))
        conflict = f" ON CONFLICT(_id) DO UPDATE SET {assignments}"
    return f"INSERT INTO {table} ({names}) VALUES ({marks}){conflict}"


def stored_test_row(
    document: Document, encoded: EncodedTestRun | None = None
) -> tuple[tuple[Any, ...] | None, str]:
    """The `test_runs` row of a test run document; or None and why MongoDB would refuse it.

    The same answer as `bson_problem` then `test_row(document, encode_document(document))`
    (a document BSON refuses is refused for that, else for what JSON refused); a plain
    document (`codec.encode_test_run`) is not encoded to BSON (see `bson_problem`).

    Args:
        document: the test run document.
        encoded: `codec.encode_test_run(document)`, when the caller has it already (the
            journal wrote it): it is not computed again.
    """
    try:
        if encoded is None:
            encoded = encode_test_run(document)
        text, plain = encoded if encoded is not None else (encode_document(document), False)
    except (TypeError, ValueError) as exc:
        return None, bson_problem(document) or str(exc)
    problem = bson_problem(document, plain_text=text if plain else None)
    if problem is not None:
        return None, problem
    if encoded is not None:
        return templated_test_row(document, text), ""
    return test_row(document, text), ""
