"""Monitor rules: what to watch, how to check it, how loud to be.

A rule is plain configuration (a TOML table, or `evalstore.Rule(...)` in Python)
and nothing about metrics is hard-coded: `metric` names any value of a run, of
its tests, or of a dict logged with `Monitor.observe`.

Checks:

- `above` / `below`: the value against an absolute `threshold`;
- `delta` / `percent`: the change against the mean of a `baseline` of comparable
  earlier finished runs (`last:N`; `previous` is `last:1`), in points or in percent of the
  baseline, against bounds `below` (a fall) and/or `above` (a rise);
- `zscore`: how many standard deviations the value lies from the baseline
  (`threshold`, default 3), in the worse direction (`better = "higher"` or `"lower"`);
- `t_test`: whether the value could come from the baseline's distribution: the
  two-sided p-value of Student's t for one new observation (scipy's `ttest_ind` of
  the baseline against the value) below `alpha` (default 0.05), in the worse direction;
- `missing`: the metric is absent.

Bounds (`threshold`, `above`, `below`, `alpha`) are a number at `level`, or a table
of one bound per level: `threshold = { warning = 25.0, critical = 30.0 }`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evalstore.errors import ConfigurationError

Level = Literal["warning", "error", "critical"]
LEVELS: tuple[Level, ...] = ("warning", "error", "critical")
"""Alert levels, least severe first."""
Check = Literal["above", "below", "delta", "percent", "zscore", "t_test", "missing"]
HISTORY_CHECKS = frozenset({"delta", "percent", "zscore", "t_test"})
STATISTICAL_CHECKS = frozenset({"zscore", "t_test"})
COMPARABLE_FIELDS = {
    "suite": "suite",
    "branch": "git_branch",
    "environment": "environment",
    "configuration": "system_info_hash",
}
"""The names `comparable` accepts, and the run fields they stand for."""
RUN_FIELDS = frozenset(
    {
        "score",
        "pass_rate",
        "duration",
        "num_tests",
        "num_passed",
        "num_failed",
        "num_errors",
        # the run's usage totals
        "cost",
        "cost_per_passed_test",
        "input_tokens",
        "output_tokens",
        "calls",
    }
)
TEST_FIELDS = frozenset({"score", "duration", "passed"})
_BASELINE = re.compile(r"^(?:previous|last:([1-9][0-9]{0,3}))$")

Bound = float | dict[Level, float]


def _bound(value: Any, field: str) -> Bound | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        bounds: dict[Level, float] = {}
        for level, number in value.items():
            if level not in LEVELS:
                raise ValueError(f"unknown level {level!r} in {field}: use {', '.join(LEVELS)}")
            bounds[level] = _number(number, f"{field}.{level}")
        if not bounds:
            raise ValueError(f"{field} is an empty table: give a number, or one per level")
        return bounds
    return _number(value, field)


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number, got {value!r}")
    return float(value)


class Rule(BaseModel):
    """One monitor rule; see the module docstring for the checks.

    Args:
        name: names the rule in alerts (required, unique in a rule set).
        on: `run` (checked when a run finishes and by `evalstore check`) or `step`
            (checked by `Monitor.observe` in a training loop).
        metric: `score`, `pass_rate` (percent of the tests that ran), `duration`
            (seconds for a run, milliseconds for a test), `num_failed` and the
            other counts, `metrics.<name>` (a run's mean metric, or with `tests`
            one test's metric score), or, for `Monitor.observe`, any dotted path
            into the observed dict (`drift.detected`; true counts as 1).
        check: above, below, delta, percent, zscore, t_test or missing.
        threshold: the bound of above/below/zscore.
        above: for delta/percent, a rise beyond this fires.
        below: for delta/percent, a fall beyond this (a negative number) fires.
        alpha: for t_test, the p-value below which the value is a breach.
        baseline: `previous` or `last:N`: the comparable runs (or observed steps) to
            compare with; default `last:1` for delta/percent, `last:10` for zscore/t_test.
        min_samples: the fewest baseline values zscore/t_test decide on (default 5).
        better: `higher` (scores) or `lower` (error rates, durations, losses).
        improvement: also alert (level `info`) on a significant change for the better.
        level: the level of a single-number bound.
        consecutive: fire only when this many comparable runs in a row breach.
        tests: a glob of test ids: the rule checks each matching test on its own.
        environment, branch, suite, tags: the runs the rule applies to (all when unset).
        comparable: what makes an earlier run comparable: any of suite, branch,
            environment, configuration (default: all four).
        cooldown: for `observe`, steps after which a breach that never recovered
            alerts again (default: only after it recovered).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    on: Literal["run", "step"] = "run"
    metric: str = Field(min_length=1)
    check: Check
    threshold: Bound | None = None
    above: Bound | None = None
    below: Bound | None = None
    alpha: Bound | None = None
    baseline: str | None = None
    min_samples: int = Field(default=5, ge=2)
    better: Literal["higher", "lower"] = "higher"
    improvement: bool = False
    level: Level = "warning"
    consecutive: int = Field(default=1, ge=1, le=100)
    tests: str | None = None
    environment: str | None = None
    branch: str | None = None
    suite: str | None = None
    tags: list[str] = Field(default_factory=list)
    comparable: list[str] = Field(default_factory=lambda: list(COMPARABLE_FIELDS))
    cooldown: int | None = Field(default=None, ge=1)
    description: str | None = None

    @field_validator("threshold", "above", "below", "alpha", mode="before")
    @classmethod
    def _bounds(cls, value: Any, info: Any) -> Bound | None:
        return _bound(value, str(info.field_name))

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: str | None) -> str | None:
        if value is not None and not _BASELINE.match(value):
            raise ValueError(f"baseline must be 'previous' or 'last:N' (N from 1), got {value!r}")
        return value

    @field_validator("comparable")
    @classmethod
    def _comparable(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in COMPARABLE_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown comparable field {unknown[0]!r}: use {', '.join(COMPARABLE_FIELDS)}"
            )
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value.startswith(".") or value.endswith(".") or ".." in value:
            raise ValueError(f"metric {value!r} is not a dotted name")
        return value

    @model_validator(mode="after")
    def _bounds_fit_the_check(self) -> Rule:
        needs = {
            "above": ("threshold",),
            "below": ("threshold",),
            "delta": ("above", "below"),
            "percent": ("above", "below"),
        }.get(self.check)
        if needs and all(getattr(self, name) is None for name in needs):
            raise ValueError(f"check {self.check!r} needs {' or '.join(needs)}")
        if self.on == "run" and self.tests is None and not _is_run_metric(self.metric):
            raise ValueError(
                f"unknown metric {self.metric!r} for a run: use {', '.join(sorted(RUN_FIELDS))} "
                'or metrics.<name> (on = "step" for values logged with observe)'
            )
        if self.tests is not None and not _is_test_metric(self.metric):
            raise ValueError(
                f"metric {self.metric!r} is not a test's: with tests, use score, duration, "
                "passed or metrics.<name>"
            )
        return self

    # -- derived -----------------------------------------------------------------

    @property
    def window(self) -> int:
        """How many baseline values the check compares with."""
        if self.baseline is None:
            return 10 if self.check in STATISTICAL_CHECKS else 1
        if self.baseline == "previous":
            return 1
        return int(self.baseline.split(":")[1])

    @property
    def needs_history(self) -> bool:
        """True when the check compares with earlier runs or steps."""
        return self.check in HISTORY_CHECKS

    def bounds(self, name: Literal["threshold", "above", "below", "alpha"]) -> dict[Level, float]:
        """One bound per level (a single number is at `level`)."""
        value = getattr(self, name)
        if value is None:
            return {}
        if isinstance(value, dict):
            return dict(value)
        return {self.level: float(value)}


def _is_run_metric(metric: str) -> bool:
    return metric in RUN_FIELDS or (metric.startswith("metrics.") and metric.count(".") == 1)


def _is_test_metric(metric: str) -> bool:
    return metric in TEST_FIELDS or (metric.startswith("metrics.") and metric.count(".") == 1)


def parse_rules(entries: Any, source: str) -> list[Rule]:
    """Validate a list of rule tables; every rule, or one clear error.

    Raises:
        ConfigurationError: one line naming `source`, the rule and the field.
    """
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ConfigurationError(f"{source}: rules must be a list of tables ([[rules]])")
    rules: list[Rule] = []
    for index, entry in enumerate(entries, start=1):
        label = f"rule #{index}"
        if isinstance(entry, Rule):
            rules.append(entry)
            continue
        if not isinstance(entry, Mapping):
            raise ConfigurationError(f"{source}: {label} is not a table")
        if isinstance(entry.get("name"), str) and entry["name"]:
            label = f"rule {entry['name']!r}"
        try:
            rules.append(Rule.model_validate(dict(entry)))
        except ValidationError as exc:
            raise ConfigurationError(f"{source}: {label}: {_first_error(exc)}") from None
    names = [rule.name for rule in rules]
    for name in names:
        if names.count(name) > 1:
            raise ConfigurationError(f"{source}: two rules are named {name!r}: names must differ")
    return rules


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
    field = field.split(".function-after")[0].split(".dict[")[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{field}: is required"
    if error["type"] == "extra_forbidden":
        return f"{field}: unknown field (see the rule fields in the README)"
    if error["type"] == "literal_error":
        return f"{field}: {message}, got {error.get('input')!r}"
    return f"{field}: {message}" if field else message
