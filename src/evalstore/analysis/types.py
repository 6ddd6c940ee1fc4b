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
    pass_rate_low: float
    pass_rate_high: float
    """The Wilson 95% interval of the pass rate: where the test's true pass rate plausibly lies."""


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
    known_flaky: bool | None
    """For a newly failing test: whether its recent history shows it flaky; None otherwise."""
    base_duration_ms: float | None
    head_duration_ms: float | None
    duration_delta_ms: float | None
    """head duration minus base duration; None when either is missing."""
    duration_change_pct: float | None
    """The duration change in percent of the base duration; None when that is 0 or missing."""
    slower: bool
    """Slower by more than the duration tolerance (always False without one)."""


class MetricDelta(TypedDict):
    """One run aggregate (the run `score` or a metric) in both runs."""

    metric: str
    base: float | None
    head: float | None
    delta: float | None


Verdict = Literal["significant", "within_noise", "no_regression", "too_few_pairs"]
"""How `compare --stats` judges one quantity:

* `significant`: the whole confidence interval lies beyond the tolerance (a regression);
* `within_noise`: the mean (or the count of flips) regressed, the interval does not rule out
  a change within the tolerance;
* `no_regression`: the mean did not regress beyond the tolerance;
* `too_few_pairs`: fewer than two pairs, no interval.
"""


class MeanInterval(TypedDict):
    """A mean of paired differences with its bootstrap confidence interval."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    note: str | None
    """Why a figure is None (no pairs, one pair); None when all are there."""


class SignedRankTest(TypedDict):
    """The Wilcoxon signed-rank test of paired differences."""

    n: int
    """Non-zero differences (zeros are dropped)."""
    p_value: float | None
    note: str | None
    """Why `p_value` is None (all differences zero, too few pairs)."""


class PairedDifference(TypedDict):
    """Head minus base of one quantity over the tests that have it in both runs."""

    metric: str
    """`score`, a metric name, or `duration_ms`."""
    pairs: int
    mean_difference: float | None
    ci_low: float | None
    ci_high: float | None
    """The bootstrap confidence interval of the mean difference."""
    wilcoxon_p: float | None
    note: str | None
    """Why a figure is None."""
    verdict: Verdict | None
    """None for durations when no duration tolerance was given."""


class PassFailChange(TypedDict):
    """McNemar's exact test on the tests that passed or failed in both runs."""

    pairs: int
    newly_failing: int
    newly_passing: int
    p_value: float
    verdict: Verdict


class ComparisonStatistics(TypedDict):
    """`compare --stats`: is the head's change real or noise."""

    confidence: float
    resamples: int
    seed: int
    paired: int
    """Tests present in both runs."""
    unmatched: list[str]
    """Tests in only one of the runs (added or removed), not paired."""
    score: PairedDifference
    metrics: list[PairedDifference]
    """One per metric name, sorted; reported, not part of the gate."""
    pass_fail: PassFailChange
    duration: PairedDifference
    """In milliseconds; judged only with a duration tolerance."""
    regressed: bool
    """A significant regression of the score or of pass/fail (or, with a duration tolerance,
    of the duration): what `--fail-on-regression --stats` fails on."""


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
    known_flaky: list[str]
    """Newly failing tests whose recent history shows them flaky."""
    duration_tolerance: float | None
    """Percent a test may slow down before it counts; None: durations are not judged."""
    duration_regressions: list[str]
    """Tests slower than in the base by more than the duration tolerance."""
    duration_regressed: bool
    statistics: ComparisonStatistics | None
    """With `stats=True`; None otherwise."""


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


class DurationPoint(TypedDict):
    """One run of one test in its duration trend."""

    test_run_id: str
    finished_at: datetime
    duration_ms: float | None
    """None when the stored run has no numeric duration."""
    passed: bool
    status: str


class SlowTest(TypedDict):
    """The durations of one test id's executed (not skipped) runs over the window."""

    test_id: str
    runs: int
    """Executed runs with a duration."""
    mean_ms: float
    max_ms: float
    last_ms: float
    """The duration of the latest run."""
    change: float | None
    """The last duration against the mean, as a fraction (0.5: 50% slower); None for a 0 mean."""
    last_seen: datetime


class ConfigFigures(TypedDict):
    """What a group of finished runs achieved and cost (see `analysis.configs.figures`)."""

    runs: int
    successes: int
    """Runs with at least one test passed and none failed or errored."""
    success_rate: float
    """successes / runs."""
    mean_score: float | None
    cost_runs: int
    """Runs with a cost (`usage.cost`, a number); runs recorded without one are not in it."""
    mean_cost: float | None
    """Mean cost of the `cost_runs` runs; None when there are none."""
    total_cost: float | None
    cost_per_success: float | None
    """Total cost of the runs with a cost over their successes; None without either."""
    mean_duration_s: float | None
    """Mean of `finished_at - started_at`, in seconds."""


class ConfigGroup(ConfigFigures):
    """The finished runs whose configuration holds one value at a key (`configs compare --by`)."""

    value: Any
    """The value at the key (None when it is missing: see `missing`)."""
    label: str
    """The value as a table shows it: strings as they are, `(missing)`, `null`, `0.7`, `[1, 2]`."""
    missing: bool
    """True for the group of the runs that lack the key."""
    configurations: int
    """How many configurations (`system_info_hash`) the group's runs have."""


class ConfigCandidate(ConfigFigures):
    """One configuration (`system_info_hash`) weighed by `best_configuration`."""

    system_info_hash: str
    label: str
    """The values of the snapshot keys that set it apart from the other configurations."""
    config: Any
    """Its configuration snapshot (`system_information.config`; None when there is none)."""
    last_seen: datetime
    excluded: str | None
    """Why it cannot be the best (too few runs, no cost, over the cost cap...), or None."""


Objective = Literal["score", "success", "cost-per-success"]


class BestConfiguration(TypedDict):
    """The best configuration for one objective, and how the others compare."""

    objective: Objective
    max_cost: float | None
    min_runs: int
    best: ConfigCandidate | None
    """`ranking[0]`; None when no configuration qualifies (see `excluded`)."""
    ranking: list[ConfigCandidate]
    """The configurations that qualify, best first (the runners-up follow the best)."""
    excluded: list[ConfigCandidate]
    """The others, each with the reason, by hash."""


DirectionVerdict = Literal["improving", "degrading", "flat", "not enough runs"]


class Slope(TypedDict):
    """An ordinary-least-squares slope with its confidence interval (t distribution)."""

    slope: float | None
    """None when every x is the same (all runs started at the same time)."""
    low: float | None
    high: float | None


class ScoreDirection(TypedDict):
    """Whether the score (or a metric) of the last runs goes up or down."""

    metric: str
    """`score`, or the metric name."""
    runs: int
    """Runs in the fit: the last `last` finished runs that have a value."""
    first: datetime | None
    last: datetime | None
    """When the first and the last of them started."""
    per_run: Slope
    """Change per run (x = 0, 1, 2, ... in start order)."""
    per_day: Slope
    """Change per day (x = days since the first run started)."""
    confidence: float
    verdict: DirectionVerdict
    """From `per_run`: `improving` when its interval is above 0, `degrading` when below,
    else `flat`; `not enough runs` with fewer than 3 runs."""
