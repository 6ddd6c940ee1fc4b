"""The checks of monitor rules, on one value and its baseline: pure functions.

A check returns a `Verdict`: whether the value breaches, at which level, against
what, and a one-line `message` a person can act on. A check that cannot decide
(too little history, a zero baseline for a percentage) does not breach and says
why in `undecided`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from evalstore.errors import ConfigurationError
from evalstore.monitors.rules import LEVELS, Level, Rule

AlertLevel = Literal["info", "warning", "error", "critical"]
Kind = Literal["threshold", "regression", "improvement", "missing"]
SEVERITY: dict[str, int] = {"info": 0, "warning": 1, "error": 2, "critical": 3}


@dataclass(frozen=True)
class Baseline:
    """The values a value is compared with: their mean, sample standard deviation and count."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Baseline:
        """The baseline of `values` (at least one)."""
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(mean=statistics.fmean(values), std=std, n=len(values))

    def as_document(self) -> dict[str, Any]:
        """As stored in an alert."""
        return {"mean": self.mean, "std": self.std, "n": self.n}


@dataclass(frozen=True)
class Verdict:
    """What one check said of one value."""

    rule: Rule
    value: float | None
    level: AlertLevel | None = None
    kind: Kind = "threshold"
    bound: float | None = None
    baseline: Baseline | None = None
    statistic: dict[str, float] = field(default_factory=dict)
    message: str = ""
    undecided: str | None = None

    @property
    def breached(self) -> bool:
        """True when the value breaches a bound (an improvement counts, at level `info`)."""
        return self.level is not None


def check_value(rule: Rule, value: float | None, history: Sequence[float] = ()) -> Verdict:
    """Check one value against a rule, with `history` (newest first) as its baseline.

    `history` may hold more values than the rule's window; the newest `rule.window`
    are used.
    """
    if rule.check == "missing":
        if value is None:
            return Verdict(rule, None, rule.level, "missing", message=f"{rule.metric} is missing")
        return Verdict(rule, value)
    if value is None:
        return Verdict(rule, None, undecided=f"{rule.metric} is missing")
    if rule.check in ("above", "below"):
        return _absolute(rule, value)
    window = list(history[: rule.window])
    if not window:
        return Verdict(rule, value, undecided="no comparable earlier value yet")
    baseline = Baseline.of(window)
    if rule.check in ("delta", "percent"):
        return _change(rule, value, baseline)
    if baseline.n < rule.min_samples:
        return Verdict(
            rule,
            value,
            baseline=baseline,
            undecided=f"{baseline.n} comparable earlier values, {rule.min_samples} needed",
        )
    if rule.check == "zscore":
        return _zscore(rule, value, baseline)
    return _t_test(rule, value, window, baseline)


def _fmt(number: float) -> str:
    return f"{number:.4g}"


def _worst(levels: Sequence[Level]) -> Level | None:
    return max(levels, key=LEVELS.index) if levels else None


def _absolute(rule: Rule, value: float) -> Verdict:
    bounds = rule.bounds("threshold")
    if rule.check == "above":
        hit = [level for level, bound in bounds.items() if value > bound]
    else:
        hit = [level for level, bound in bounds.items() if value < bound]
    level = _worst(hit)
    if level is None:
        return Verdict(rule, value)
    bound = bounds[level]
    word = "above" if rule.check == "above" else "below"
    return Verdict(
        rule,
        value,
        level,
        "threshold",
        bound=bound,
        message=f"{rule.metric} is {_fmt(value)}, {word} {_fmt(bound)}",
    )


def _change(rule: Rule, value: float, baseline: Baseline) -> Verdict:
    change = value - baseline.mean
    unit = ""
    if rule.check == "percent":
        if baseline.mean == 0:
            return Verdict(rule, value, baseline=baseline, undecided="the baseline is 0")
        change = change / abs(baseline.mean) * 100.0
        unit = "%"
    falls = rule.bounds("below")
    rises = rule.bounds("above")
    hit = [(level, bound, "fell") for level, bound in falls.items() if change < bound]
    hit += [(level, bound, "rose") for level, bound in rises.items() if change > bound]
    statistic = {"change": change}
    if not hit:
        return Verdict(rule, value, baseline=baseline, statistic=statistic)
    level, bound, verb = max(hit, key=lambda item: LEVELS.index(item[0]))
    return Verdict(
        rule,
        value,
        level,
        "regression",
        bound=bound,
        baseline=baseline,
        statistic=statistic,
        message=(
            f"{rule.metric} {verb} by {_fmt(abs(change))}{unit} to {_fmt(value)} "
            f"(baseline {_fmt(baseline.mean)} over {baseline.n} runs; bound {_fmt(bound)}{unit})"
        ),
    )


def _direction(rule: Rule, difference: float) -> Kind | None:
    """regression, improvement or None for a move of `difference` (value minus mean)."""
    if difference == 0:
        return None
    worse = difference < 0 if rule.better == "higher" else difference > 0
    return "regression" if worse else "improvement"


def _zscore(rule: Rule, value: float, baseline: Baseline) -> Verdict:
    difference = value - baseline.mean
    std = baseline.std or 0.0
    if std == 0:
        z = 0.0 if difference == 0 else math.copysign(math.inf, difference)
    else:
        z = difference / std
    bounds = rule.bounds("threshold") or {rule.level: 3.0}
    statistic = {"z": z}
    kind = _direction(rule, difference)
    hit = [level for level, bound in bounds.items() if abs(z) >= bound]
    return _statistical(rule, value, baseline, statistic, kind, hit, bounds, f"z = {_fmt(z)}")


def _t_test(rule: Rule, value: float, window: Sequence[float], baseline: Baseline) -> Verdict:
    try:
        from scipy import stats
    except ImportError:  # the [stats] extra
        raise ConfigurationError(
            f"rule {rule.name!r}: check t_test needs scipy: pip install 'evalstore[stats]'"
        ) from None
    if (baseline.std or 0.0) == 0:
        p = 1.0 if value == baseline.mean else 0.0
    else:
        # Student's t for one new observation: the pooled two-sample test of the
        # baseline against the single value, t = (x - mean) / (s * sqrt(1 + 1/n)).
        p = float(stats.ttest_ind(list(window), [value]).pvalue)
    bounds = rule.bounds("alpha") or {rule.level: 0.05}
    kind = _direction(rule, value - baseline.mean)
    hit = [level for level, bound in bounds.items() if p < bound]
    return _statistical(
        rule, value, baseline, {"p": p}, kind, hit, bounds, f"p = {_fmt(p)} (t-test)"
    )


def _statistical(
    rule: Rule,
    value: float,
    baseline: Baseline,
    statistic: dict[str, float],
    kind: Kind | None,
    hit: list[Level],
    bounds: dict[Level, float],
    evidence: str,
) -> Verdict:
    level = _worst(hit)
    if level is None or kind is None or (kind == "improvement" and not rule.improvement):
        return Verdict(rule, value, baseline=baseline, statistic=statistic)
    std = baseline.std or 0.0
    verb = "worse" if kind == "regression" else "better"
    return Verdict(
        rule,
        value,
        level if kind == "regression" else "info",
        kind,
        bound=bounds[level],
        baseline=baseline,
        statistic=statistic,
        message=(
            f"{rule.metric} is {_fmt(value)}, {verb} than its baseline "
            f"{_fmt(baseline.mean)} ± {_fmt(std)} over {baseline.n} runs: {evidence}"
        ),
    )
