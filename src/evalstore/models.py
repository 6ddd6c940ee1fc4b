"""The documents evalstore stores: their fields, the checks of their values, plain builders.

Field names follow the storage design our users wrote (`evaluation_runs`,
`test_runs`). The pydantic models (`MetricData`, `TestRun`, `EvaluationRun`)
live in `evalstore.schema` and are loaded on first use, also when imported from
here: importing pydantic and building them costs about 60 ms, which a pytest
session recording plain results must not pay. For such results the builders
here (`build_test_run_document`, `evaluation_run_document`) make the documents
the models would, and hand anything else to the models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

import bson
from bson import ObjectId

from evalstore.errors import InvalidDataError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from evalstore.schema import EvaluationRun as EvaluationRun
    from evalstore.schema import MetricData as MetricData
    from evalstore.schema import TestRun as TestRun

_LAZY_MODELS = ("MetricData", "TestRun", "EvaluationRun")


def __getattr__(name: str) -> Any:
    """The pydantic models, imported on first use (see the module docstring)."""
    if name in _LAZY_MODELS:
        from evalstore import schema

        return getattr(schema, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


RunStatus = Literal["running", "completed", "failed", "interrupted"]
TestStatus = Literal["passed", "failed", "skipped", "error"]
TEST_STATUSES: tuple[TestStatus, ...] = get_args(TestStatus)

# A MongoDB document as Python sees it.
Document = dict[str, Any]

SCORE_MIN = 0.0
SCORE_MAX = 100.0


def utcnow() -> datetime:
    """The current time as an aware UTC datetime truncated to milliseconds (BSON's precision)."""
    return to_utc(datetime.now(timezone.utc))


def _is_utc_ms(value: Any) -> bool:
    """Whether `value` is exactly an aware UTC datetime at millisecond precision."""
    return type(value) is datetime and value.tzinfo is timezone.utc and not value.microsecond % 1000


def to_utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime at millisecond precision.

    Naive datetimes are taken to be UTC already, as pymongo does.
    """
    if type(value) is datetime and value.tzinfo is timezone.utc:  # the common cases
        microsecond = value.microsecond
        return (
            value
            if not microsecond % 1000
            else value.replace(microsecond=microsecond // 1000 * 1000)
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # 9999-12-31T23:00-02:00 is in year 10000 in UTC
        raise InvalidDataError(
            f"{value.isoformat()} is outside the years 1 to 9999 in UTC"
        ) from None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def is_finite(value: float) -> bool:
    """`math.isfinite`, False also for an integer too large for a float (`10**400`)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def shown(value: object, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def check_score(value: float | None, field: str) -> float | None:
    """Reject NaN, infinities, booleans and anything outside 0 to 100."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number, got {shown(value)}")
    if not is_finite(value):
        raise ValueError(f"{field} must be a finite number, got {shown(value)}")
    if not SCORE_MIN <= value <= SCORE_MAX:
        raise ValueError(f"{field} must be between 0 and 100, got {value!r}")
    return float(value)


def check_positive_int(value: object, name: str) -> int:
    """Reject anything but an int of at least 1 (booleans too), naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidDataError(f"{name} must be a positive integer, got {value!r}")
    return value


# Containers inside a free-form value (details, configuration): MongoDB refuses documents
# nested more than 100 levels, and the value sits a few levels down its document.
MAX_NESTING = 90


MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""MongoDB's limit on one BSON document (16 MiB)."""
SIZE_MARGIN = 64 * 1024
"""Room kept under the limit for what the store adds (`_id`, an update's operators)."""
EARLIEST_DATE = datetime(1000, 1, 1, tzinfo=timezone.utc)
"""Dates before year 1000 have no four-digit ISO year: neither the journal nor JSON holds them."""
MAX_DURATION_MS = 100 * 365.25 * 24 * 3600 * 1000
"""A century: a longer duration is a unit mistake, and would overflow dates."""


def check_string(value: str, field: str) -> str:
    """A string BSON can hold: valid UTF-8, so no lone surrogate (`"\ud800"`)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{field} holds a lone surrogate ({value[exc.start]!r} at position {exc.start}), "
                "which is not valid UTF-8 and cannot be stored"
            ) from None
    return value


def check_date(value: datetime, field: str) -> datetime:
    """`value` in UTC at millisecond precision, if it is from year 1000 on."""
    utc = to_utc(value)
    if utc < EARLIEST_DATE:
        raise ValueError(f"{field} must be from year 1000 on, got {value.isoformat()}")
    return utc


def check_text(value: object, name: str) -> str:
    """A non-empty string, as every id, name and filter value is.

    A query operator (`{"$ne": None}`) or any other type where a string is
    documented would change what a filter selects, so it is refused here.

    Raises:
        InvalidDataError: the value is not a non-empty string.
    """
    if not isinstance(value, str) or not value:
        raise InvalidDataError(f"{name} must be a non-empty string, got {value!r}")
    return value


def check_tags(tags: object, name: str) -> tuple[str, ...]:
    """Tags as a tuple: an iterable of non-empty strings, or one tag as a bare string.

    Raises:
        InvalidDataError: anything else (a mapping, a number, an empty or non-string tag).
    """
    if isinstance(tags, str):
        tags = [tags]
    if isinstance(tags, Mapping | bytes | bytearray) or not isinstance(tags, Iterable):
        raise InvalidDataError(f"{name} must be a list of strings, got {tags!r}")
    return tuple(check_text(tag, f"each of {name}") for tag in tags)


def check_key(key: object, field: str) -> str:
    """A key MongoDB can store and query unambiguously: a non-empty string without `$` or `.`.

    Nor a NUL byte, which BSON's C strings cannot hold, nor a lone surrogate.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"{field}: keys must be non-empty strings, got {key!r}")
    if "$" in key or "." in key:
        raise ValueError(f"{field}: key {key!r} must not contain '$' or '.'")
    if "\x00" in key:
        raise ValueError(f"{field}: key {key!r} must not contain a NUL byte")
    return check_string(key, f"{field}: key {key!r}")


def check_size(document: Mapping[str, Any], largest_of: tuple[str, ...]) -> None:
    """Refuse a document MongoDB would refuse for its size, naming the largest of `largest_of`.

    Raises:
        ValueError: the document's BSON encoding is over the limit (less a margin).
    """
    size = len(bson.encode(document))
    if size <= MAX_DOCUMENT_BYTES - SIZE_MARGIN:
        return
    sizes = {
        name: len(bson.encode({"v": document[name]}))
        for name in largest_of
        if document.get(name) is not None
    }
    field = max(sizes, key=sizes.__getitem__) if sizes else "the document"
    raise ValueError(
        f"{field} is too large: {sizes.get(field, size):,} bytes, and the whole result "
        f"{size:,}; MongoDB stores at most {MAX_DOCUMENT_BYTES:,} bytes per document "
        "(keep large data in a file and record its path)"
    )


def check_plain(value: Any, field: str, _depth: int = 0) -> Any:
    """Check that `value` is plain data that BSON stores as-is (and JSON can show).

    Allowed: None, bool, int (64-bit), finite float, str, datetime, lists/tuples
    and string-keyed mappings of those, nested at most `MAX_NESTING` levels.
    Returns a copy with tuples as lists.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return check_string(value, field)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{field} is an integer too large for BSON: {shown(value)}")
        return value
    if isinstance(value, float):
        if not is_finite(value):
            raise ValueError(f"{field} must be a finite number, got {value!r}")
        return value
    if isinstance(value, datetime):
        return check_date(value, field)
    if isinstance(value, list | tuple | Mapping) and _depth >= MAX_NESTING:
        raise ValueError(
            f"{field} is nested more than {MAX_NESTING} levels deep "
            "(MongoDB stores documents nested at most 100 levels)"
        )
    if isinstance(value, list | tuple):
        return [check_plain(item, f"{field}[{i}]", _depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {
            check_key(k, field): check_plain(v, f"{field}.{k}", _depth + 1)
            for k, v in value.items()
        }
    raise ValueError(
        f"{field} holds a {type(value).__name__}, which cannot be stored "
        "(use numbers, strings, booleans, None, datetimes, lists and dicts)"
    )


# The fields of `TestRun` and `MetricData` in their order, and the keys of a stored
# `test_runs` document (the `_id` it is stored under, then the fields). The fast paths
# (`build_test_run_document` below, the journal's template in `evalstore.codec`) take their
# keys from here; tests/unit/test_test_run_document.py checks them against the models.
TEST_RUN_FIELDS: tuple[str, ...] = (
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
)
TEST_RUN_KEYS: tuple[str, ...] = ("_id", *TEST_RUN_FIELDS)
METRIC_FIELDS: tuple[str, ...] = ("score", "passed", "threshold", "unit", "details")

_PLAIN_LEAVES = frozenset((str, int, float, bool, type(None), datetime))


def build_test_run_document(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`TestRun(**fields).to_document()`, built directly when pydantic would only copy.

    Validating and dumping a model costs more than the rest of recording a
    result. When every field already has exactly the type and form the model
    stores, the same document is built by hand; anything else (including every
    invalid value) goes through the model, so errors are the model's.

    Raises:
        ValidationError: as `TestRun(**fields)` does.
    """
    document = _plain_test_run_document(fields)
    if document is None:
        from evalstore.schema import TestRun

        document = TestRun(**fields).to_document()
    return document


class _NotPlain(Exception):
    """A value the direct path does not copy exactly as pydantic would."""


def _copy_plain(value: Any) -> Any:
    """A deep copy of data made only of exact dicts, lists and plain leaf types."""
    kind = type(value)
    if kind is dict:
        copied = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            copied[key] = _copy_plain(item)
        return copied
    if kind is list:
        return [_copy_plain(item) for item in value]
    if kind in _PLAIN_LEAVES:
        return value
    raise _NotPlain


def _plain_metric_document(metric: Any) -> dict[str, Any]:
    """`metric.model_dump()` for a `MetricData` holding exactly its declared types."""
    from evalstore.schema import MetricData  # loaded already: `metric` is one, or not plain

    if type(metric) is not MetricData:
        raise _NotPlain
    document = dict(metric.__dict__)  # a model keeps its field values there, in field order
    if tuple(document) != METRIC_FIELDS:
        raise _NotPlain
    passed, threshold, unit = document["passed"], document["threshold"], document["unit"]
    if (
        type(document["score"]) is not float
        or (passed is not None and type(passed) is not bool)
        or (threshold is not None and type(threshold) is not float)
        or (unit is not None and (type(unit) is not str or not _storable(unit)))
    ):
        raise _NotPlain
    if document["details"] is not None:
        document["details"] = _copy_plain(document["details"])
    return document


def _is_str_list(value: Any) -> bool:
    return type(value) is list and all(type(item) is str and _storable(item) for item in value)


def _storable(text: str) -> bool:
    """Whether a string is valid UTF-8 (the model says why when it is not)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain_test_run_document(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The document `TestRun(**fields)` dumps, or None when only the model can tell.

    Only fields given in the model's order (as `record_test` gives them) are
    built here: the document is then a copy of `fields` in which the values the
    model converts or copies are replaced.
    """
    if tuple(fields) != TEST_RUN_FIELDS:
        return None
    document = dict(fields)
    test_run_id, test_id = document["test_run_id"], document["test_id"]
    started, finished = document["started_at"], document["finished_at"]
    duration, score, status = document["duration_ms"], document["score"], document["status"]
    tags, participants = document["tags"], document["participants"]
    message, details = document["message"], document["details"]
    if not (
        type(document["evaluation_run_id"]) is ObjectId
        and type(test_run_id) is str
        and test_run_id.strip()
        and _storable(test_run_id)
        and type(test_id) is str
        and test_id.strip()
        and _storable(test_id)
        and type(document["test_name"]) is str
        and _storable(document["test_name"])
        and _is_utc_ms(started)
        and _is_utc_ms(finished)
        and started >= EARLIEST_DATE
        and finished >= started
        and type(duration) is float
        and 0 <= duration < math.inf
        and type(document["score_method"]) is str
        and _storable(document["score_method"])
        and type(document["passed"]) is bool
        and type(status) is str
        and status in TEST_STATUSES
        and _is_str_list(tags)
        and _is_str_list(participants)
        and (message is None or (type(message) is str and _storable(message)))
        and type(document["metrics"]) is dict
    ):
        return None
    if score is not None:
        if type(score) not in (float, int) or not SCORE_MIN <= score <= SCORE_MAX:
            return None
        document["score"] = float(score)
    try:
        metrics = {}
        for name, metric in document["metrics"].items():
            if type(name) is not str:
                return None
            check_key(name, "metrics")
            metrics[name] = _plain_metric_document(metric)
        if details is not None:
            if type(details) is not dict:
                return None
            document["details"] = _copy_plain(check_plain(details, "details"))
    except (_NotPlain, ValueError, RecursionError):  # the model decides, and says why
        return None
    document["metrics"] = metrics
    document["tags"] = list(tags)
    document["participants"] = list(participants)
    return document


# The fields of `EvaluationRun` a stored `evaluation_runs` document holds, in their order
# (the model's `id` is not stored); tests/unit/test_evaluation_run_document.py checks them.
EVALUATION_RUN_FIELDS: tuple[str, ...] = (
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
)
_RUN_DEFAULTS: dict[str, Any] = {
    "finished_at": None,
    "git_commit": None,
    "git_branch": None,
    "git_dirty": None,
    "environment": "dev",
    "suite": None,
    "experiment_tags": (),
    "system_information": {},
    "metrics": {},
    "num_tests": 0,
    "num_passed": 0,
    "num_failed": 0,
    "num_skipped": 0,
    "num_errors": 0,
    "status": "running",
    "score": None,
    "last_seen_at": None,
}
_RUN_FIELD_SET = frozenset(EVALUATION_RUN_FIELDS)
_RUN_REQUIRED = _RUN_FIELD_SET - _RUN_DEFAULTS.keys()
"""`evaluation_run_id`, `started_at` and `system_info_hash`: the model has no default for them."""
_RUN_COUNTS = ("num_tests", "num_passed", "num_failed", "num_skipped", "num_errors")
_RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))


def evaluation_run_document(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`EvaluationRun(**fields).to_document()`, built directly when pydantic would only copy.

    As `build_test_run_document` does for a test run: a run opened with plainly
    valid values (what `RunRecorder.start` gives) is built here, anything else by
    the model, whose errors are then the ones raised.

    Raises:
        ValidationError: as `EvaluationRun(**fields)` does.
    """
    document = _plain_run_document(fields)
    if document is None:
        from evalstore.schema import EvaluationRun

        document = EvaluationRun(**fields).to_document()
    return document


def _is_optional_text(value: Any) -> bool:
    return value is None or (type(value) is str and _storable(value))


def _is_optional_date(value: Any) -> bool:
    return value is None or (_is_utc_ms(value) and value >= EARLIEST_DATE)


def _plain_run_document(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The document `EvaluationRun(**fields)` dumps, or None when only the model can tell."""
    if not _RUN_REQUIRED <= fields.keys() <= _RUN_FIELD_SET:
        return None  # `id`, an unknown field, or a required one missing
    values = {**_RUN_DEFAULTS, **fields}
    tags, information = values["experiment_tags"], values["system_information"]
    if not (
        type(values["evaluation_run_id"]) is str
        and _storable(values["evaluation_run_id"])
        and type(values["system_info_hash"]) is str
        and _storable(values["system_info_hash"])
        and type(values["environment"]) is str
        and _storable(values["environment"])
        and values["started_at"] is not None
        and _is_optional_date(values["started_at"])
        and _is_optional_date(values["finished_at"])
        and _is_optional_date(values["last_seen_at"])
        and _is_optional_text(values["git_commit"])
        and _is_optional_text(values["git_branch"])
        and _is_optional_text(values["suite"])
        and (values["git_dirty"] is None or type(values["git_dirty"]) is bool)
        and type(tags) in (list, tuple)
        and all(type(tag) is str and _storable(tag) for tag in tags)
        and type(information) is dict
        and type(values["metrics"]) is dict
        and not values["metrics"]
        and all(type(values[name]) is int for name in _RUN_COUNTS)
        and type(values["status"]) is str
        and values["status"] in _RUN_STATUSES
        and values["score"] is None
    ):
        return None
    try:
        copied = _copy_plain(check_plain(information, "system_information"))
    except (_NotPlain, ValueError, RecursionError):  # the model decides, and says why
        return None
    document = {name: values[name] for name in EVALUATION_RUN_FIELDS}
    document["experiment_tags"] = list(tags)
    document["system_information"] = copied
    document["metrics"] = {}
    return document


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line naming the first invalid field and why, from a pydantic error."""
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    if loc and message.startswith(loc) and message[len(loc) : len(loc) + 1] in (":", ".", " ", "["):
        return f"{prefix}.{message}" if prefix else message  # it names its field already
    return f"{field}: {message}" if field else message


def invalid(exc: ValidationError, prefix: str = "") -> InvalidDataError:
    """Wrap a pydantic error as an `InvalidDataError` with a one-line message."""
    return InvalidDataError(describe_validation_error(exc, prefix))


# What `record_test` accepts for one metric.
MetricInput: TypeAlias = "MetricData | Mapping[str, Any] | float | int"


def metric_model(name: object, value: MetricInput) -> MetricData:
    """The validated metric `name`: a `MetricData`, a dict of its fields, or a bare score.

    Raises:
        InvalidDataError: the name or a value cannot be stored; the message names it.
    """
    from pydantic import ValidationError

    from evalstore.schema import MetricData

    try:
        check_key(name, "metrics")
        if isinstance(value, MetricData):
            return value
        if isinstance(value, Mapping):
            return MetricData(**value)
        return MetricData(score=value)
    except ValidationError as exc:
        raise invalid(exc, f"metrics.{name}") from None
    except ValueError as exc:
        raise InvalidDataError(str(exc)) from None


def to_jsonable(value: Any) -> Any:
    """Plain JSON data from stored documents: ObjectIds as hex, datetimes as ISO 8601 UTC."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value
