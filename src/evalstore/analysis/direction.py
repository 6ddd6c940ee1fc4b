"""Is the score improving or degrading: the slope of the last runs, with a confidence interval.

Not a two-point difference (the last run against the first, which one noisy
run decides) but an ordinary-least-squares line through the last N finished
runs, whose slope comes with a t-distribution interval: the verdict is
`improving` only when the whole interval is above zero, `degrading` when it
is below, and `flat` otherwise (no trend the runs can tell from noise).

The t quantile comes from scipy, the optional extra `evalstore[stats]`,
imported only when a slope is computed.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any

from typing_extensions import Unpack

from evalstore.analysis.base import History
from evalstore.analysis.config_choice import finished_runs
from evalstore.analysis.filters import FilterKwargs, RunFilters
from evalstore.analysis.significance import require_scipy
from evalstore.analysis.trends import metric_field
from evalstore.analysis.types import DirectionVerdict, ScoreDirection, Slope
from evalstore.errors import ConfigurationError
from evalstore.models import Document, check_positive_int, is_finite, to_utc

CONFIDENCE = 0.95
DEFAULT_LAST = 20
MIN_RUNS = 3
"""A line through two points has no residual to judge its slope by."""
MISSING_SCIPY = "trend --direction needs scipy: pip install 'evalstore[stats]'"
_SECONDS_PER_DAY = 86400.0


def no_slope() -> Slope:
    """A slope that cannot be computed."""
    return {"slope": None, "low": None, "high": None}


def t_quantile(probability: float, df: int) -> float:
    """The `probability` quantile of Student's t distribution with `df` degrees of freedom.

    Raises:
        ConfigurationError: scipy is not installed; the message says how to install it.
    """
    try:
        require_scipy()
    except ConfigurationError:
        raise ConfigurationError(MISSING_SCIPY) from None
    stats: Any = importlib.import_module("scipy.stats")
    return float(stats.t.ppf(probability, df))


def ols_slope(xs: Sequence[float], ys: Sequence[float], t: float) -> Slope:
    """The least-squares slope of ys on xs and its interval `slope ± t * standard error`.

    The standard error is `sqrt(SSR / (n - 2) / Sxx)`, with SSR the residual sum
    of squares and Sxx the sum of squared deviations of x. Needs at least 3
    points; with every x equal there is no slope (all None).
    """
    n = len(xs)
    if n < MIN_RUNS:
        return no_slope()
    mean_x, mean_y = math.fsum(xs) / n, math.fsum(ys) / n
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return no_slope()
    slope = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    ssr = math.fsum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    error = math.sqrt(ssr / (n - 2) / sxx)
    return {"slope": slope, "low": slope - t * error, "high": slope + t * error}


def verdict(per_run: Slope, runs: int) -> DirectionVerdict:
    """`improving` (interval above 0), `degrading` (below), `flat`, or `not enough runs`."""
    low, high = per_run["low"], per_run["high"]
    if runs < MIN_RUNS or low is None or high is None:
        return "not enough runs"
    if low > 0:
        return "improving"
    if high < 0:
        return "degrading"
    return "flat"


def _value(run: Document, field: str) -> float | None:
    value: Any = run
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not is_finite(value):
        return None
    return float(value)


def direction(
    runs: Sequence[Document], metric: str | None = None, last: int = DEFAULT_LAST
) -> ScoreDirection:
    """`get_score_direction` over finished runs already read, oldest first (see there)."""
    name = metric or "score"
    field = metric_field(name)
    check_positive_int(last, "last")
    points = [(run, value) for run in runs if (value := _value(run, field)) is not None][-last:]
    result: ScoreDirection = {
        "metric": name,
        "runs": len(points),
        "first": points[0][0]["started_at"] if points else None,
        "last": points[-1][0]["started_at"] if points else None,
        "per_run": no_slope(),
        "per_day": no_slope(),
        "confidence": CONFIDENCE,
        "verdict": "not enough runs",
    }
    if len(points) < MIN_RUNS:
        return result
    t = t_quantile((1 + CONFIDENCE) / 2, len(points) - 2)
    ys = [value for _, value in points]
    start = to_utc(points[0][0]["started_at"])
    days = [
        (to_utc(run["started_at"]) - start).total_seconds() / _SECONDS_PER_DAY for run, _ in points
    ]
    result["per_run"] = ols_slope([float(i) for i in range(len(points))], ys, t)
    result["per_day"] = ols_slope(days, ys, t)
    result["verdict"] = verdict(result["per_run"], len(points))
    return result


async def get_score_direction(
    history: History,
    last: int = DEFAULT_LAST,
    metric: str | None = None,
    **filters: Unpack[FilterKwargs],
) -> ScoreDirection:
    """Whether the score (or a run metric) of the last finished runs is going up or down.

    Fits a least-squares line through the last `last` finished runs (`completed`
    and `failed`, by `started_at`) that have the value, against the run's place
    (0, 1, 2, ...: `per_run`) and against days since the first of them
    (`per_day`), each slope with a 95% t interval (n - 2 degrees of freedom).
    Scores and metric means are 0-100, higher is better, so a positive slope
    is an improvement.

    Args:
        last: how many runs (the newest ones that have the value).
        metric: None or `score` for the run score; a name for `metrics.<name>`
            (runs that did not measure it are skipped).
        **filters: `since`, `until`, `environment`, `branch`, `suite`, `tags`,
            `tags_match`, `window_days` (default 30).

    Returns:
        `{metric, runs, first, last, per_run, per_day, confidence, verdict}`;
        each slope is `{slope, low, high}`. `verdict` (from `per_run`):
        `improving` when the interval's lower bound is above 0, `degrading`
        when its upper bound is below 0, `flat` otherwise, and `not enough
        runs` with fewer than 3 (slopes None).

    Raises:
        ConfigurationError: scipy is missing (`pip install 'evalstore[stats]'`).
        InvalidDataError: `last` is not a positive integer, or a bad metric name.
    """
    metric_field(metric or "score")
    check_positive_int(last, "last")
    runs = await finished_runs(history, RunFilters.of(**filters), "compute the score direction")
    return direction(runs, metric, last)
