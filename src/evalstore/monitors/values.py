"""The value a rule's `metric` names, read from a run, a test run or an observed dict."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from evalstore.models import Document

USAGE_METRICS = frozenset(
    {"cost", "cost_per_passed_test", "input_tokens", "output_tokens", "calls"}
)
"""Run metrics read from the run's `usage` totals (see "Cost and tokens")."""


def number(value: Any) -> float | None:
    """A finite number (True is 1, False is 0), or None for anything else."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _seconds(start: Any, end: Any) -> float | None:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    return None


def run_value(run: Document, metric: str) -> float | None:
    """A run's `score`, `pass_rate`, `duration` (seconds), counts, or `metrics.<name>`.

    `pass_rate` is the percentage of the tests that ran (not skipped) that passed.
    """
    if metric.startswith("metrics."):
        metrics = run.get("metrics")
        return number(metrics.get(metric[8:])) if isinstance(metrics, Mapping) else None
    if metric in USAGE_METRICS:
        usage = run.get("usage")
        field = "cost" if metric == "cost" else metric
        return number(usage.get(field)) if isinstance(usage, Mapping) else None
    if metric == "duration":
        return _seconds(run.get("started_at"), run.get("finished_at"))
    if metric == "pass_rate":
        ran = (number(run.get("num_tests")) or 0) - (number(run.get("num_skipped")) or 0)
        passed = number(run.get("num_passed"))
        return None if ran <= 0 or passed is None else passed / ran * 100.0
    return number(run.get(metric))


def test_value(test_run: Document, metric: str) -> float | None:
    """A test run's `score`, `duration` (milliseconds), `passed` (1/0), or `metrics.<name>`."""
    if metric.startswith("metrics."):
        metrics = test_run.get("metrics")
        entry = metrics.get(metric[8:]) if isinstance(metrics, Mapping) else None
        return number(entry.get("score")) if isinstance(entry, Mapping) else None
    if metric == "duration":
        return number(test_run.get("duration_ms"))
    return number(test_run.get(metric))


test_value.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def observed_value(observed: Mapping[str, Any], metric: str) -> float | None:
    """The value at a dotted path of an observed dict (`drift.detected`), or None.

    A key holding the whole dotted name (`{"uncertainty.mean": 0.2}`) is found too.
    """
    if metric in observed:
        return number(observed[metric])
    value: Any = observed
    for part in metric.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return number(value)
