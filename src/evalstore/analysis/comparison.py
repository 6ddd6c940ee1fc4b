"""Run comparison: what changed between a base run and a head run, and did it regress.

A test **regressed** when it is present in both runs and either

* it is **newly failing**: `passed` in the base, `failed` or `error` in the head; or
* its score **dropped by more than `tolerance`** points (head minus base < -tolerance).

Added tests (only in the head) and removed tests (only in the base) are
reported but are not regressions, nor are changes to or from `skipped`. The
comparison `regressed` when any test did. Run-level aggregates (score and
metrics) are reported as deltas but do not decide: they are means of the
test scores, whose drops already count.

Durations: each test's duration change (ms and percent of the base); with a
`duration_tolerance` (percent), a test slower than that is a duration
regression, reported apart (`duration_regressions`, `duration_regressed`).

With `stats=True` the tests present in both runs are paired and the
comparison gains `statistics` (see `statistics`): the mean paired difference
of the score, of each metric and of the duration with a bootstrap
confidence interval and a Wilcoxon p-value, and McNemar's exact test on
pass/fail. A regression is then **significant** when the interval lies
wholly beyond the tolerance, **within noise** when only the mean does.
Everything here is Python over the rows of `queries.run_tests`: both
engines share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Literal

from bson import ObjectId

from evalstore.analysis import queries, significance
from evalstore.analysis.base import SELECTORS, History
from evalstore.analysis.pipelines import FUTURE_SLACK
from evalstore.analysis.stats import get_flaky_tests
from evalstore.analysis.types import (
    ComparisonStatistics,
    MetricDelta,
    PairedDifference,
    PassFailChange,
    PerTestComparison,
    RunComparison,
    RunRef,
    Verdict,
)
from evalstore.errors import InvalidDataError, RunNotFoundError
from evalstore.models import Document, check_text, is_finite, utcnow

RunSelector = Literal["latest", "previous"]
FAILING = ("failed", "error")
DELTA_DIGITS = 6
"""Deltas are rounded to this many decimals: 80.0 - 80.3 gives -0.3, not -0.30000000000000426."""
KNOWN_FLAKY_MIN_RUNS = 5
KNOWN_FLAKY_WINDOW_DAYS = 30
"""A newly failing test is known flaky when it is flaky (as `evalstore flaky` judges, with
its default of 5 runs) over the 30 days up to the head run's last test, on any branch."""
KNOWN_FLAKY_LOOKUPS = 20
"""Up to this many newly failing tests, each is looked up on its own (an indexed read)."""


def delta(base: float | None, head: float | None) -> float | None:
    """Head minus base, rounded to `DELTA_DIGITS` decimals; None when either is missing."""
    if base is None or head is None:
        return None
    return round(head - base, DELTA_DIGITS)


def check_tolerance(tolerance: float, name: str = "tolerance") -> float:
    """A finite, non-negative number (of score points, or of percent for durations)."""
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not is_finite(tolerance)
        or tolerance < 0
    ):
        raise InvalidDataError(f"{name} must be a non-negative number, got {tolerance!r}")
    return float(tolerance)


def number(value: object) -> float | None:
    """A stored value as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not is_finite(value):
        return None
    return float(value)


def compare_tests(
    base: dict[str, Document],
    head: dict[str, Document],
    tolerance: float,
    duration_tolerance: float | None = None,
) -> list[PerTestComparison]:
    """Compare the last test run of each test id in two runs, sorted by test id."""
    rows: list[PerTestComparison] = []
    for test_id in sorted(base.keys() | head.keys()):
        old, new = base.get(test_id), head.get(test_id)
        old_score = old.get("score") if old else None
        new_score = new.get("score") if new else None
        change_in_score = delta(old_score, new_score)
        if old is None:
            change = "added"
        elif new is None:
            change = "removed"
        elif old["status"] == "passed" and new["status"] in FAILING:
            change = "newly_failing"
        elif old["status"] in FAILING and new["status"] == "passed":
            change = "newly_passing"
        elif change_in_score is not None and change_in_score < -tolerance:
            change = "score_drop"
        else:
            change = "same"
        dropped = change_in_score is not None and change_in_score < -tolerance
        old_ms = number(old.get("duration_ms")) if old else None
        new_ms = number(new.get("duration_ms")) if new else None
        percent = (
            round((new_ms - old_ms) / old_ms * 100, DELTA_DIGITS)
            if old_ms is not None and new_ms is not None and old_ms > 0
            else None
        )
        rows.append(
            {
                "test_id": test_id,
                "base_status": old["status"] if old else None,
                "head_status": new["status"] if new else None,
                "base_score": old_score,
                "head_score": new_score,
                "delta": change_in_score,
                "head_message": new.get("message") if new else None,
                "change": change,
                "regressed": change == "newly_failing" or dropped,
                "known_flaky": False if change == "newly_failing" else None,
                "base_duration_ms": old_ms,
                "head_duration_ms": new_ms,
                "duration_delta_ms": delta(old_ms, new_ms),
                "duration_change_pct": percent,
                "slower": duration_tolerance is not None
                and percent is not None
                and percent > duration_tolerance,
            }
        )
    return rows


def metric_deltas(base: Document, head: Document) -> list[MetricDelta]:
    """The run score, then each run metric (by name), in both runs."""
    base_metrics: dict[str, float] = base.get("metrics") or {}
    head_metrics: dict[str, float] = head.get("metrics") or {}
    rows: list[MetricDelta] = [
        {
            "metric": "score",
            "base": base.get("score"),
            "head": head.get("score"),
            "delta": delta(base.get("score"), head.get("score")),
        }
    ]
    for name in sorted(base_metrics.keys() | head_metrics.keys()):
        old, new = base_metrics.get(name), head_metrics.get(name)
        rows.append({"metric": name, "base": old, "head": new, "delta": delta(old, new)})
    return rows


def _metric_scores(test_run: Document) -> dict[str, float]:
    """A test run's numeric metric scores by name (`{name: {score}}`, or a bare number)."""
    metrics = test_run.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    scores: dict[str, float] = {}
    for name, metric in metrics.items():
        value = number(metric.get("score") if isinstance(metric, dict) else metric)
        if isinstance(name, str) and value is not None:
            scores[name] = value
    return scores


def _differences(
    pairs: list[tuple[Document, Document]], value: Callable[[Document], float | None]
) -> list[float]:
    """Head minus base of `value` over the pairs where both sides have one, in test id order."""
    found = []
    for old, new in pairs:
        before, after = value(old), value(new)
        if before is not None and after is not None:
            found.append(after - before)
    return found


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, DELTA_DIGITS)


def paired_difference(
    name: str,
    differences: list[float],
    threshold: float | None,
    *,
    higher_is_worse: bool = False,
    confidence: float = significance.DEFAULT_CONFIDENCE,
    resamples: int = significance.DEFAULT_RESAMPLES,
    seed: int = significance.DEFAULT_SEED,
) -> PairedDifference:
    """The mean of `differences` with its interval, Wilcoxon p-value and verdict.

    Args:
        threshold: how far the mean may move the wrong way before it is a
            regression (the tolerance); None: no verdict.
        higher_is_worse: the quantity regresses upwards (durations), not
            downwards (scores).
    """
    interval = significance.bootstrap_mean_ci(differences, confidence, resamples, seed)
    ranks = significance.wilcoxon_p(differences)
    notes = [note for note in (interval["note"], ranks["note"]) if note]
    verdict: Verdict | None = None
    if threshold is not None:
        sign = 1.0 if higher_is_worse else -1.0  # `worse` > threshold is a regression
        mean, low, high = interval["mean"], interval["low"], interval["high"]
        if mean is None or low is None or high is None:
            verdict = "too_few_pairs"
        elif min(sign * low, sign * high) > threshold:
            verdict = "significant"
        elif sign * mean > threshold:
            verdict = "within_noise"
        else:
            verdict = "no_regression"
    return {
        "metric": name,
        "pairs": interval["n"],
        "mean_difference": _round(interval["mean"]),
        "ci_low": _round(interval["low"]),
        "ci_high": _round(interval["high"]),
        "wilcoxon_p": ranks["p_value"],
        "note": "; ".join(dict.fromkeys(notes)) or None,
        "verdict": verdict,
    }


def pass_fail_change(
    pairs: list[tuple[Document, Document]], confidence: float = significance.DEFAULT_CONFIDENCE
) -> PassFailChange:
    """McNemar's exact test on the pairs that passed or failed (not skipped) in both runs."""
    outcomes = [
        (old["status"] == "passed", new["status"] == "passed")
        for old, new in pairs
        if old["status"] in ("passed", *FAILING) and new["status"] in ("passed", *FAILING)
    ]
    broke = sum(1 for before, after in outcomes if before and not after)
    fixed = sum(1 for before, after in outcomes if after and not before)
    p_value = significance.mcnemar_exact(broke, fixed)
    verdict: Verdict = "no_regression"
    if broke > fixed:
        verdict = "significant" if p_value < 1 - confidence else "within_noise"
    return {
        "pairs": len(outcomes),
        "newly_failing": broke,
        "newly_passing": fixed,
        "p_value": p_value,
        "verdict": verdict,
    }


def comparison_statistics(
    base: dict[str, Document],
    head: dict[str, Document],
    tolerance: float,
    duration_tolerance: float | None = None,
    *,
    confidence: float = significance.DEFAULT_CONFIDENCE,
    resamples: int = significance.DEFAULT_RESAMPLES,
    seed: int = significance.DEFAULT_SEED,
) -> ComparisonStatistics:
    """Pair the tests of both runs and judge score, metrics, pass/fail and duration.

    The score (and each metric) regresses significantly when the upper
    bound of its interval is below `-tolerance`; pass/fail when more tests
    broke than were fixed and McNemar's p-value is below `1 - confidence`;
    the duration (with `duration_tolerance`, percent) when the lower bound
    exceeds that percent of the paired tests' mean base duration.

    Raises:
        ConfigurationError: scipy is not installed.
    """
    paired_ids = sorted(base.keys() & head.keys())
    pairs = [(base[test_id], head[test_id]) for test_id in paired_ids]

    def judge(
        name: str, differences: list[float], threshold: float | None, worse_up: bool = False
    ) -> PairedDifference:
        return paired_difference(
            name,
            differences,
            threshold,
            higher_is_worse=worse_up,
            confidence=confidence,
            resamples=resamples,
            seed=seed,
        )

    def score(test_run: Document) -> float | None:
        return number(test_run.get("score"))

    def duration(test_run: Document) -> float | None:
        return number(test_run.get("duration_ms"))

    def metric(name: str) -> Callable[[Document], float | None]:
        return lambda test_run: _metric_scores(test_run).get(name)

    score_row = judge("score", _differences(pairs, score), tolerance)
    names = sorted({name for pair in pairs for side in pair for name in _metric_scores(side)})
    metric_rows = [judge(name, _differences(pairs, metric(name)), tolerance) for name in names]
    threshold = None
    if duration_tolerance is not None:
        timed = [(duration(old), duration(new)) for old, new in pairs]
        base_ms = [old for old, new in timed if old is not None and new is not None]
        threshold = duration_tolerance / 100 * (sum(base_ms) / len(base_ms) if base_ms else 0.0)
    duration_row = judge("duration_ms", _differences(pairs, duration), threshold, worse_up=True)
    pass_fail = pass_fail_change(pairs, confidence)
    judged = [score_row["verdict"], pass_fail["verdict"], duration_row["verdict"]]
    return {
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
        "paired": len(pairs),
        "unmatched": sorted(base.keys() ^ head.keys()),
        "score": score_row,
        "metrics": metric_rows,
        "pass_fail": pass_fail,
        "duration": duration_row,
        "regressed": "significant" in judged,
    }


def last_per_test(test_runs: Iterable[Document]) -> dict[str, Document]:
    """Each test id's last test run (by `finished_at`), for a run that repeated a test."""
    last: dict[str, Document] = {}
    for test_run in sorted(test_runs, key=lambda t: t["finished_at"]):
        last[test_run["test_id"]] = test_run
    return last


def run_ref(run: Document) -> RunRef:
    """The fields that identify a run in a comparison."""
    return {
        "evaluation_run_id": run["evaluation_run_id"],
        "started_at": run["started_at"],
        "git_branch": run.get("git_branch"),
        "git_commit": run.get("git_commit"),
        "status": run["status"],
        "score": run.get("score"),
    }


async def _known_flaky(
    history: History, newly_failing: list[str], head: dict[str, Document]
) -> set[str]:
    """Which newly failing tests were flaky in the window up to the head's last test (one read).

    Nothing is read when no test is newly failing.
    """
    if not newly_failing:
        return set()
    until = max(t["finished_at"] for t in head.values()) + timedelta(milliseconds=1)
    # A few tests: one indexed read each; many: one read of every test in the window.
    asked: list[str | None] = (
        list(newly_failing) if len(newly_failing) <= KNOWN_FLAKY_LOOKUPS else [None]
    )
    found: set[str] = set()
    for test_id in asked:
        flaky = await get_flaky_tests(
            history,
            KNOWN_FLAKY_MIN_RUNS,
            test_id=test_id,
            until=until,
            window_days=KNOWN_FLAKY_WINDOW_DAYS,
        )
        found.update(row["test_id"] for row in flaky)
    return found & set(newly_failing)


async def compare_runs(
    history: History,
    base: str | ObjectId,
    head: str | ObjectId,
    *,
    branch: str | None = None,
    environment: str | None = None,
    suite: str | None = None,
    tolerance: float = 0.0,
    stats: bool = False,
    duration_tolerance: float | None = None,
) -> RunComparison:
    """Compare a head run with a base run, test by test and aggregate by aggregate.

    Args:
        base: a run id, an ObjectId hex, or `latest` / `previous` (the newest /
            second-newest completed run, of `branch` if given).
        head: the same, for the run under judgement.
        branch: where `latest` and `previous` look.
        tolerance: how many score points a test may lose before it counts
            as a regression (default 0: any drop).
        stats: pair the tests present in both runs and add `statistics`
            (needs scipy, the `evalstore[stats]` extra).
        duration_tolerance: percent a test (with `stats`: the paired mean)
            may slow down before it counts as a duration regression; None
            (default): durations are reported, not judged.

    Returns:
        `{base, head, tolerance, tests, newly_failing, newly_passing, added,
        removed, score_drops, regressions, metric_deltas, regressed,
        known_flaky, duration_tolerance, duration_regressions,
        duration_regressed, statistics}`; see the module documentation for
        what regressed means. `statistics` is None without `stats`.

    Raises:
        RunNotFoundError: a run does not exist (or too few completed runs for
            `latest`/`previous`).
        ConfigurationError: `stats` without scipy installed.
    """
    tolerance = check_tolerance(tolerance)
    if stats:
        significance.require_scipy()  # before any read: the error does not depend on the data
    if duration_tolerance is not None:
        duration_tolerance = check_tolerance(duration_tolerance, "duration_tolerance")
    for name, value in (("branch", branch), ("environment", environment), ("suite", suite)):
        if value is not None:
            check_text(value, name)
    newest: list[Document] = []
    if any(isinstance(s, str) and s in SELECTORS for s in (base, head)):
        newest = await history.rows(
            queries.latest_runs(
                branch, environment, suite=suite, not_after=utcnow() + FUTURE_SLACK
            ),
            "find the latest runs",
        )
    where = " and ".join(
        f"{name} {value!r}"
        for name, value in (("suite", suite), ("branch", branch), ("environment", environment))
        if value
    )
    base_run = await _select_run(history, base, where, newest)
    head_run = await _select_run(history, head, where, newest)
    action = "compare runs"
    base_tests = last_per_test(await history.rows(queries.run_tests(base_run["_id"]), action))
    head_tests = last_per_test(await history.rows(queries.run_tests(head_run["_id"]), action))
    tests = compare_tests(base_tests, head_tests, tolerance, duration_tolerance)
    statistics = (
        comparison_statistics(base_tests, head_tests, tolerance, duration_tolerance)
        if stats
        else None
    )

    def ids(predicate: str) -> list[str]:
        return [t["test_id"] for t in tests if t["change"] == predicate]

    flaky = await _known_flaky(history, ids("newly_failing"), head_tests)
    for test in tests:
        if test["test_id"] in flaky:
            test["known_flaky"] = True
    regressions = [t["test_id"] for t in tests if t["regressed"]]
    slower = [t["test_id"] for t in tests if t["slower"]]
    return {
        "base": run_ref(base_run),
        "head": run_ref(head_run),
        "tolerance": tolerance,
        "tests": tests,
        "newly_failing": ids("newly_failing"),
        "newly_passing": ids("newly_passing"),
        "added": ids("added"),
        "removed": ids("removed"),
        "score_drops": [
            t["test_id"] for t in tests if t["delta"] is not None and t["delta"] < -tolerance
        ],
        "regressions": regressions,
        "metric_deltas": metric_deltas(base_run, head_run),
        "regressed": bool(regressions),
        "known_flaky": sorted(flaky),
        "duration_tolerance": duration_tolerance,
        "duration_regressions": slower,
        "duration_regressed": bool(slower),
        "statistics": statistics,
    }


async def _select_run(
    history: History, selector: str | ObjectId, where: str, newest: list[Document]
) -> Document:
    """The run `selector` names: an id, or `latest`/`previous` among `newest`."""
    if not (isinstance(selector, str) and selector in SELECTORS):
        return await history.select(selector)
    index = SELECTORS.index(selector)
    if len(newest) <= index:
        raise RunNotFoundError(
            f"no {selector} finished evaluation run{' on ' + where if where else ''}: "
            f"found {len(newest)} finished run(s) with tests"
        )
    return newest[index]
