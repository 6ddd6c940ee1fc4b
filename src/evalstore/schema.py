"""The documents evalstore stores, as pydantic models.

Field names follow the storage design our users wrote (`evaluation_runs`,
`test_runs`). The models know nothing of the driver: the service turns them
into BSON documents with `to_document()`.

Importing pydantic and building these models costs about 60 ms, which the pytest
plugin must not pay when it records plain results: `evalstore.models` holds
their field names, the checks their validators call and the builders that make
the same documents without them, and loads this module on first use
(`from evalstore.models import TestRun` still works).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evalstore.models import (
    RunStatus,
    TestStatus,
    check_date,
    check_key,
    check_plain,
    check_score,
    check_string,
    is_finite,
    shown,
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
        if isinstance(value, bool) or not isinstance(value, int | float) or not is_finite(value):
            raise ValueError(f"threshold must be a finite number, got {shown(value)}")
        return float(value)

    @field_validator("unit", mode="after")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        return None if value is None else check_string(value, "unit")

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
    """One execution of one test inside an evaluation run (a `test_runs` document).

    `build_test_run_document` below builds the same document without the model
    for plainly valid fields, and `evalstore.codec` journals it from a template;
    both take the fields and their order from this class, but a change of fields
    or validators here needs a look there (tests/unit/test_test_run_document.py
    fails until it is made, and importing `evalstore.codec` fails until its
    template writes the new fields).
    """

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
    def _utc(cls, value: datetime, info: ValidationInfo) -> datetime:
        return check_date(value, str(info.field_name))

    @field_validator("test_run_id", "test_id", "test_name", "score_method", "message", mode="after")
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_string(value, str(info.field_name))

    @field_validator("tags", "participants", mode="after")
    @classmethod
    def _texts(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for i, item in enumerate(value):
            check_string(item, f"{info.field_name}[{i}]")
        return value

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
        if not is_finite(value) or value < 0:
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
    suite: str | None = None
    """What was tested (a project, a benchmark), so that suites sharing a database stay apart."""
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
    def _utc(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return None if value is None else check_date(value, str(info.field_name))

    @field_validator(
        "evaluation_run_id", "git_commit", "git_branch", "environment", "suite", "system_info_hash"
    )
    @classmethod
    def _text(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_string(value, str(info.field_name))

    @field_validator("experiment_tags", mode="after")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for i, tag in enumerate(value):
            check_string(tag, f"experiment_tags[{i}]")
        return value

    @field_validator("system_information", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return check_plain(value, "system_information")

    @field_validator("score", mode="before")
    @classmethod
    def _score(cls, value: Any) -> float | None:
        return check_score(value, "score")
