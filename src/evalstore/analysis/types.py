"""The rows the history-analysis queries return: plain dicts, typed for readers and mypy.

Datetimes are UTC; scores are 0-100; rates are fractions from 0 to 1.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypedDict


class TrendPoint(TypedDict):
    """One period of a metric trend."""

    period: str
    """`YYYY-MM-DD`, or the ISO week `YYYY-Www`."""
    mean: float
    runs: int
    """How many runs measured the metric in the period."""


class ScorePoint(TypedDict):
    """One finished evaluation run in the score trend."""

    evaluation_run_id: str
    started_at: datetime
    status: str
    score: float | None
    num_passed: int
    num_tests: int


class HistoryPoint(TypedDict):
    """One run of one test in its trend."""

    test_run_id: str
    finished_at: datetime
    score: float | None
    passed: bool
    status: str


class PerTestStats(TypedDict):
    """Statistics of one test id over the window."""

    test_id: str
    runs: int
    passed: int
    mean_score: float | None
    min_score: float | None
    max_score: float | None
    pass_rate: float | None
    """Passes over executed (not skipped) runs; None when every run was skipped."""
    last_status: str | None
    last_seen: datetime


class FlakyTest(TypedDict):
    """A test that both passed and failed in the window."""

    test_id: str
    runs: int
    """Executed runs (skipped ones do not count)."""
    pass_rate: float
    flips: int
    flip_rate: float
    """Flips (a pass followed by a failure or the reverse) over runs minus one."""
    recent: str
    """The last outcomes, oldest to newest: P passed, F failed, E error."""
    last_seen: datetime


class RecordedMetrics(TypedDict):
    """The finished runs a filter selects, and the run metrics they recorded."""

    runs: int
    metrics: list[str]


class OutcomeChange(TypedDict):
    """A test whose outcome changed exactly once in the window, and stayed."""

    test_id: str
    runs: int
    change: Literal["broke", "fixed"]
    changed_at: datetime
    """When the first run with the new outcome finished."""
    pass_rate: float
    recent: str
    last_seen: datetime


class TestOutcomes(TypedDict):
    """The flaky tests and the tests that changed once, from one read of the window."""

    flaky: list[FlakyTest]
    changed: list[OutcomeChange]


class ConfigSummary(TypedDict):
    """The finished runs of one configuration (`system_info_hash`)."""

    system_info_hash: str
    label: str
    """The values of the snapshot keys that set it apart from the other configurations listed."""
    runs: int
    mean_score: float | None
    metrics: dict[str, float]
    """Mean of each run metric over the runs that measured it."""
    first_seen: datetime
    last_seen: datetime


class ConfigDifference(TypedDict):
    """One key of `system_information` that differs between two configurations."""

    path: str
    """Dotted path, e.g. `config.asr.beam_size`."""
    a: Any
    b: Any
    change: str
    """`changed`, `added` (only in b) or `removed` (only in a); a missing side is None."""


class RunRef(TypedDict):
    """Which evaluation run one side of a comparison is."""

    evaluation_run_id: str
    started_at: datetime
    git_branch: str | None
    git_commit: str | None
    status: str
    score: float | None


class PerTestComparison(TypedDict):
    """One test id compared between a base and a head run."""

    test_id: str
    base_status: str | None
    head_status: str | None
    base_score: float | None
    head_score: float | None
    delta: float | None
    """head score minus base score; None when either is missing."""
    head_message: str | None
    """The head test run's one-line message (why it failed)."""
    change: str
    """`newly_failing`, `newly_passing`, `added`, `removed`, `score_drop` or `same`."""
    regressed: bool


class MetricDelta(TypedDict):
    """One run aggregate (the run `score` or a metric) in both runs."""

    metric: str
    base: float | None
    head: float | None
    delta: float | None


class RunComparison(TypedDict):
    """The comparison of a head run against a base run."""

    base: RunRef
    head: RunRef
    tolerance: float
    tests: list[PerTestComparison]
    newly_failing: list[str]
    newly_passing: list[str]
    added: list[str]
    removed: list[str]
    score_drops: list[str]
    """Tests whose score fell by more than the tolerance."""
    regressions: list[str]
    """Tests that regressed: newly failing, or a score drop beyond the tolerance."""
    metric_deltas: list[MetricDelta]
    regressed: bool


class ExperimentMetric(TypedDict):
    """One metric (or the run `score`) in the runs of two tag sets."""

    metric: str
    a_mean: float | None
    a_std: float | None
    """Sample standard deviation; None with fewer than two runs."""
    a_runs: int
    b_mean: float | None
    b_std: float | None
    b_runs: int
    difference: float | None
    """b_mean minus a_mean."""


class PruneResult(TypedDict):
    """What retention deleted (or, in a dry run, would delete)."""

    evaluation_runs: int
    test_runs: int
    cutoff: datetime
    dry_run: bool
