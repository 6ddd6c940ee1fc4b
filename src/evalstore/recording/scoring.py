"""Score calculators: how a test's 0-100 score is computed from its metrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from statistics import fmean
from typing import TYPE_CHECKING, TypeAlias

from evalstore.errors import InvalidDataError

if TYPE_CHECKING:
    from evalstore.schema import MetricData

ScoreCalculator: TypeAlias = "Callable[[Mapping[str, MetricData], bool], float]"
"""Takes a test's metrics and whether it passed; returns a score from 0 to 100."""


def average_score(metrics: Mapping[str, MetricData], passed: bool) -> float:
    """The mean of the metric scores; with no metrics, 100 when passed and 0 when not."""
    if not metrics:
        return 100.0 if passed else 0.0
    # a list, not a generator: fmean then takes its length instead of counting
    return fmean([metric.score for metric in metrics.values()])


def minimum_score(metrics: Mapping[str, MetricData], passed: bool) -> float:
    """The lowest metric score (a test is as good as its worst metric)."""
    if not metrics:
        return 100.0 if passed else 0.0
    return min(metric.score for metric in metrics.values())


_CALCULATORS: dict[str, ScoreCalculator] = {"average": average_score, "min": minimum_score}


def register_score_method(name: str, calculator: ScoreCalculator) -> None:
    """Make `calculator` available as `record_test(..., score_method=name)`.

    Registering a name again replaces the earlier calculator.
    """
    if not name or not isinstance(name, str):
        raise InvalidDataError("score method names must be non-empty strings")
    _CALCULATORS[name] = calculator


def score_method(name: str) -> ScoreCalculator:
    """The calculator registered under `name`.

    Raises:
        InvalidDataError: no calculator has that name; the message lists the known ones.
    """
    try:
        return _CALCULATORS[name]
    except KeyError:
        known = ", ".join(sorted(_CALCULATORS))
        raise InvalidDataError(
            f"score_method: unknown method {name!r} (known: {known}); "
            "register one with evalstore.register_score_method()"
        ) from None
