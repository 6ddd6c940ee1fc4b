"""The documents evalstore stores, as pydantic models.

Field names follow the storage design our users wrote (`evaluation_runs`,
`test_runs`). The models know nothing of the driver: the service turns them
into BSON documents with `to_document()`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal

from bson import ObjectId
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evalstore.errors import InvalidDataError

RunStatus = Literal["running", "completed", "failed", "interrupted"]
TestStatus = Literal["passed", "failed", "skipped", "error"]

SCORE_MIN = 0.0
SCORE_MAX = 100.0


def utcnow() -> datetime:
    """The current time as an aware UTC datetime truncated to milliseconds (BSON's precision)."""
    return to_utc(datetime.now(timezone.utc))


def to_utc(value: datetime) -> datetime:
    """Return `value` as an aware UTC datetime at millisecond precision.

    Naive datetimes are taken to be UTC already, as pymongo does.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def check_score(value: float | None, field: str) -> float | None:
    """Reject NaN, infinities, booleans and anything outside 0 to 100."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number, got {value!r}")
    if not SCORE_MIN <= value <= SCORE_MAX:
        raise ValueError(f"{field} must be between 0 and 100, got {value!r}")
    return float(value)


def check_key(key: object, field: str) -> str:
    """A key MongoDB can store and query unambiguously: a non-empty string without `$` or `.`."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"{field}: keys must be non-empty strings, got {key!r}")
    if "$" in key or "." in key:
        raise ValueError(f"{field}: key {key!r} must not contain '$' or '.'")
    return key


def check_plain(value: Any, field: str) -> Any:
    """Check that `value` is plain data that BSON stores as-is (and JSON can show).

    Allowed: None, bool, int (64-bit), finite float, str, datetime, lists/tuples
    and string-keyed mappings of those. Returns a copy with tuples as lists.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{field} is an integer too large for BSON: {value}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{field} must be a finite number, got {value!r}")
        return value
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, list | tuple):
        return [check_plain(item, f"{field}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        return {check_key(k, field): check_plain(v, f"{field}.{k}") for k, v in value.items()}
    raise ValueError(
        f"{field} holds a {type(value).__name__}, which cannot be stored "
        "(use numbers, strings, booleans, None, datetimes, lists and dicts)"
    )


class _Document(BaseModel):
    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", validate_assignment=True
    )

    def to_document(self) -> dict[str, Any]:
        """The BSON document for this model (datetimes stay datetimes, ObjectIds stay ObjectIds)."""
        return self.model_dump(mode="python")


class MetricData(_Document):
    """One metric of one test: a 0-100 score plus optional pass flag, threshold, unit, details."""

    score: float
    passed: bool | None = None
    threshold: float | None = None
    unit: str | None = None
    details: dict[str, Any] | None = None

    @field_validator("score", mode="before")
    @classmethod
    def _score(cls, value: Any) -> float:
        checked = check_score(value, "score")
        if checked is None:
            raise ValueError("score is required")
        return checked

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: Any) -> float | None:
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"threshold must be a finite number, got {value!r}")
        return float(value)

    @field_validator("details", mode="before")
    @classmethod
    def _details(cls, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ValueError(f"details must be a dict, got {type(value).__name__}")
        checked: dict[str, Any] = check_plain(value, "details")
        return checked


class TestRun(_Document):
    """One execution of one test inside an evaluation run (a `test_runs` document)."""

    __test__ = False  # not a pytest test class

    evaluation_run_id: ObjectId
    test_run_id: str
    test_id: str
    test_name: str
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    metrics: dict[str, MetricData] = Field(default_factory=dict)
    score: float | None
    score_method: str
    passed: bool
    status: TestStatus
    tags: list[str] = Field(default_factory=list)
    participants: list[str] = Field(default_factory=list)
    message: str | None = None
    details: dict[str, Any] | None = None

    @field_validator("started_at", "finished_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return to_utc(value)

    @field_validator("score", mode="before")
    @classmethod
    def _score(cls, value: Any) -> float | None:
        return check_score(value, "score")

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_names(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            for name in value:
                check_key(name, "metrics")
        return value

    @field_validator("test_id", "test_run_id")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("details", mode="before")
    @classmethod
    def _details(cls, value: Any) -> Any:
        return None if value is None else check_plain(value, "details")

    @field_validator("duration_ms")
    @classmethod
    def _duration(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"must be a finite, non-negative number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _order(self) -> TestRun:
        if self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        return self


class EvaluationRun(_Document):
    """One full execution of a suite (an `evaluation_runs` document)."""

    id: ObjectId | None = Field(default=None, exclude=True)
    evaluation_run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    environment: str = "dev"
    experiment_tags: list[str] = Field(default_factory=list)
    system_information: dict[str, Any] = Field(default_factory=dict)
    system_info_hash: str
    metrics: dict[str, float] = Field(default_factory=dict)
    num_tests: int = 0
    num_passed: int = 0
    num_failed: int = 0
    num_skipped: int = 0
    num_errors: int = 0
    status: RunStatus = "running"
    score: float | None = None
    last_seen_at: datetime | None = None

    @field_validator("started_at", "finished_at", "last_seen_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else to_utc(value)

    @field_validator("system_information", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return check_plain(value, "system_information")

    @field_validator("score", mode="before")
    @classmethod
    def _score(cls, value: Any) -> float | None:
        return check_score(value, "score")


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line naming the first invalid field and why, from a pydantic error."""
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    return f"{field}: {message}" if field else message


def invalid(exc: ValidationError, prefix: str = "") -> InvalidDataError:
    """Wrap a pydantic error as an `InvalidDataError` with a one-line message."""
    return InvalidDataError(describe_validation_error(exc, prefix))
