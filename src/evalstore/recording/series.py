"""Metric series of one run: values logged per step (epoch, batch), journaled and stored.

`RunRecorder.log_metrics` validates one step's values, journals them as one line
(the same safety net as test results: a value accepted is never lost), and keeps
the points for the store, which takes them `POINTS_BATCH` at a time and when the
run finishes. A point is keyed on (run, metric, split, step): logging a step again
replaces its value, and a replay after a crash writes the same points again
without duplicating any.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from evalstore.errors import InvalidDataError
from evalstore.models import Document, check_key

POINTS_BATCH = 1000
"""Points stored together while a run logs."""
_SPLIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_step(step: object) -> int:
    """A step: a non-negative integer (an epoch, a batch index).

    Raises:
        InvalidDataError: it is not.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise InvalidDataError(f"step must be a non-negative integer, got {step!r}")
    return step


def check_split(split: object) -> str:
    """A split name: letters, digits, `_` and `-`, at most 64 (`train`, `eval`, `val-2`).

    Raises:
        InvalidDataError: it is not.
    """
    if not isinstance(split, str) or not _SPLIT.match(split):
        raise InvalidDataError(
            f"split must be letters, digits, '_' or '-' (at most 64, e.g. train, eval), "
            f"got {split!r}"
        )
    return split


def check_values(values: object) -> dict[str, float]:
    """One step's values: metric name -> finite number.

    Raises:
        InvalidDataError: a name MongoDB cannot key on, or a value that is no finite number.
    """
    if not isinstance(values, Mapping) or not values:
        raise InvalidDataError("log_metrics needs a non-empty dict of metric name -> number")
    checked: dict[str, float] = {}
    for name, value in values.items():
        try:
            check_key(name, "metrics")
        except ValueError as exc:
            raise InvalidDataError(str(exc)) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidDataError(f"metrics.{name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise InvalidDataError(f"metrics.{name} must be finite, got {value!r}")
        checked[name] = float(value)
    return checked


def point_documents(
    run_oid: ObjectId, values: Mapping[str, float], step: int, split: str, at: datetime
) -> list[Document]:
    """The `metric_points` documents of one logged step (without `_id`: the service derives
    it from the point's key, `ids.point_id`, whoever stores the point)."""
    return [
        {
            "evaluation_run_id": run_oid,
            "metric": name,
            "split": split,
            "step": step,
            "value": value,
            "recorded_at": at,
        }
        for name, value in values.items()
    ]


@dataclass
class SeriesBuffer:
    """The points of one run waiting for the store.

    When a batch cannot be stored, the buffer gives up holding points (`degraded`):
    the journal has them, and the end of the run (or `evalstore sync`) stores them
    from there; memory stays bounded however long the store is away.
    """

    pending: list[Document] = field(default_factory=list)
    logged: int = 0
    degraded: bool = False

    def add(self, points: list[Document]) -> None:
        """Count a step's points and hold them, unless the store is away."""
        self.logged += len(points)
        if not self.degraded:
            self.pending.extend(points)

    def take(self) -> list[Document]:
        """The points waiting to be stored."""
        taken, self.pending = self.pending, []
        return taken

    def give_up(self) -> None:
        """The store failed: from now on the journal alone holds the points."""
        self.degraded = True
        self.pending = []


def journal_points(entry: Mapping[str, Any], run_oid: ObjectId) -> list[Document] | None:
    """The point documents of one journaled `points` line, or None when it is malformed."""
    values, step, split, at = (entry.get(k) for k in ("values", "step", "split", "at"))
    try:
        checked = check_values(values)
        check_step(step)
        check_split(split)
    except InvalidDataError:
        return None
    if not isinstance(at, datetime):
        return None
    assert isinstance(step, int)
    assert isinstance(split, str)
    return point_documents(run_oid, checked, step, split, at)
