"""Experiments: the runs of two tag sets compared metric by metric."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from typing_extensions import Unpack

from evalstore.analysis import queries
from evalstore.analysis.base import History
from evalstore.analysis.filters import RunFilters, TagsMatch, WindowKwargs
from evalstore.analysis.types import ExperimentMetric
from evalstore.errors import InvalidDataError
from evalstore.models import Document, check_tags, utcnow

SCORE = "score"
"""The row of the run score; a run metric that is itself named `score` shows as `metrics.score`."""


def mean_and_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (None with fewer than two values)."""
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) >= 2 else None
    return mean, std


def _tags(tags: Sequence[str], name: str) -> tuple[str, ...]:
    checked = check_tags(tags, name)
    if not checked:
        raise InvalidDataError(f"{name} must name at least one experiment tag")
    return checked


def _values_by_name(facets: Document) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for row in facets["score"]:
        values[SCORE] = row["values"]
    for row in facets["metrics"]:
        name = row["_id"] if row["_id"] != SCORE else f"metrics.{SCORE}"
        values[name] = row["values"]
    return values


async def compare_experiments(
    history: History,
    tags_a: Sequence[str],
    tags_b: Sequence[str],
    *,
    tags_match: TagsMatch = "any",
    **filters: Unpack[WindowKwargs],
) -> list[ExperimentMetric]:
    """Compare the finished runs tagged `tags_a` with those tagged `tags_b`.

    For the run score and each run metric: the mean, the sample standard
    deviation (`statistics.stdev`: n - 1 in the denominator; None with
    fewer than two runs) and the number of runs that measured it, on each
    side, and `difference` = b mean minus a mean. A run carrying tags of
    both sets counts on both sides.

    Args:
        tags_a: the baseline's tags (e.g. `["baseline"]`).
        tags_b: the experiment's tags (e.g. `["config-tweak"]`).
        tags_match: whether a run needs `any` or `all` of a side's tags.
        **filters: `since`, `until`, `environment`, `branch`, `window_days`
            (default 30).

    Returns:
        One row per metric, the run score first and then metrics by name:
        `[{metric, a_mean, a_std, a_runs, b_mean, b_std, b_runs, difference}]`.
    """
    sides = (_tags(tags_a, "tags_a"), _tags(tags_b, "tags_b"))
    now = utcnow()
    values: list[dict[str, list[float]]] = []
    for tags in sides:
        run_filters = RunFilters.of(**filters, tags=tags, tags_match=tags_match)
        rows = await history.rows(
            queries.experiment(run_filters.match(now=now)), "compare experiments"
        )
        values.append(_values_by_name(rows[0]) if rows else {})
    a, b = values
    names = sorted(a.keys() | b.keys(), key=lambda name: (name != SCORE, name))
    result: list[ExperimentMetric] = []
    for name in names:
        a_mean, a_std = mean_and_std(a.get(name, []))
        b_mean, b_std = mean_and_std(b.get(name, []))
        result.append(
            {
                "metric": name,
                "a_mean": a_mean,
                "a_std": a_std,
                "a_runs": len(a.get(name, [])),
                "b_mean": b_mean,
                "b_std": b_std,
                "b_runs": len(b.get(name, [])),
                "difference": None if a_mean is None or b_mean is None else b_mean - a_mean,
            }
        )
    return result
