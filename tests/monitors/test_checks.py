"""Each check kind on hand-computed values (the statistical ones against scipy's own)."""

from __future__ import annotations

import math
import statistics

import pytest
from scipy import stats

from evalstore import ConfigurationError
from evalstore.monitors.checks import check_value
from evalstore.monitors.rules import Rule, parse_rules


def rule(**fields: object) -> Rule:
    return Rule.model_validate({"name": "r", "metric": "score", **fields})


def test_above_takes_the_most_severe_bound_it_crosses() -> None:
    wer = rule(metric="metrics.wer", check="above", threshold={"warning": 25.0, "critical": 30.0})
    assert check_value(wer, 24.9).level is None
    assert check_value(wer, 27.0).level == "warning"
    verdict = check_value(wer, 31.5)
    assert (verdict.level, verdict.bound) == ("critical", 30.0)
    assert verdict.message == "metrics.wer is 31.5, above 30"


def test_below_fires_under_the_threshold_at_the_rule_level() -> None:
    floor = rule(check="below", threshold=80, level="error")
    assert check_value(floor, 80.0).level is None  # not below
    assert check_value(floor, 79.5).level == "error"


def test_delta_compares_with_the_mean_of_the_last_n() -> None:
    # the example: below = -2.0 against the mean of the last 5 comparable runs
    drop = rule(check="delta", below=-2.0, baseline="last:5", level="error")
    history = [86.0, 84.0, 85.0, 83.0, 87.0, 10.0]  # newest first; the 6th is outside the window
    # mean of the five: 425 / 5 = 85.0
    assert check_value(drop, 83.0, history).level is None  # -2.0 is not a fall of more than 2
    verdict = check_value(drop, 82.9, history)
    assert verdict.level == "error"
    assert verdict.baseline is not None
    assert (verdict.baseline.mean, verdict.baseline.n) == (85.0, 5)
    assert verdict.statistic["change"] == pytest.approx(-2.1)


def test_percent_change_and_a_zero_baseline_that_cannot_decide() -> None:
    slower = rule(metric="duration", check="percent", above=20.0, better="lower")
    assert check_value(slower, 119.0, [100.0]).level is None
    verdict = check_value(slower, 125.0, [100.0])
    assert (verdict.level, verdict.statistic["change"]) == ("warning", 25.0)
    assert check_value(slower, 5.0, [0.0]).undecided == "the baseline is 0"


def test_zscore_is_the_distance_in_sample_standard_deviations() -> None:
    history = [80.0, 82.0, 84.0, 86.0, 88.0]  # mean 84, sample std sqrt(10)
    z_rule = rule(check="zscore", threshold=3.0, baseline="last:5")
    value = 74.0
    verdict = check_value(z_rule, value, history)
    expected = (value - 84.0) / math.sqrt(10.0)  # -3.162
    assert verdict.statistic["z"] == pytest.approx(expected)
    # scipy's zscore of the sample with the value appended, rescaled, says the same
    assert expected == pytest.approx((value - statistics.fmean(history)) / stats.tstd(history))
    assert verdict.level == "warning"
    assert verdict.kind == "regression"
    assert check_value(z_rule, 76.0, history).level is None  # z = -2.53


def test_zscore_needs_its_minimum_sample_and_ignores_improvements_unless_asked() -> None:
    z_rule = rule(check="zscore", threshold=2.0, min_samples=4)
    few = check_value(z_rule, 10.0, [80.0, 81.0, 79.0])
    assert few.level is None
    assert few.undecided == "3 comparable earlier values, 4 needed"
    history = [80.0, 81.0, 79.0, 80.0]
    assert check_value(z_rule, 99.0, history).level is None  # better, and not asked
    better = rule(check="zscore", threshold=2.0, min_samples=4, improvement=True)
    verdict = check_value(better, 99.0, history)
    assert (verdict.level, verdict.kind) == ("info", "improvement")


def test_t_test_is_scipys_pooled_test_of_the_baseline_against_the_value() -> None:
    history = [80.0, 82.0, 84.0, 86.0, 88.0, 81.0, 83.0, 85.0]
    t_rule = rule(check="t_test", alpha={"warning": 0.05, "error": 0.01}, baseline="last:8")
    for value, level in ((80.0, None), (76.0, "warning"), (70.0, "error")):
        verdict = check_value(t_rule, value, history)
        p = stats.ttest_ind(history, [value]).pvalue
        # the same, by hand: t = (x - mean) / (s * sqrt(1 + 1/n)), n - 1 degrees of freedom
        n, mean, s = len(history), statistics.fmean(history), statistics.stdev(history)
        t = (value - mean) / (s * math.sqrt(1 + 1 / n))
        assert p == pytest.approx(2 * stats.t.sf(abs(t), n - 1))
        assert verdict.statistic["p"] == pytest.approx(p)
        assert verdict.level == level


def test_missing_fires_only_when_the_value_is_absent() -> None:
    gone = rule(metric="metrics.bleu", check="missing", level="error")
    assert check_value(gone, 31.0).level is None
    verdict = check_value(gone, None)
    assert (verdict.level, verdict.kind, verdict.message) == (
        "error",
        "missing",
        "metrics.bleu is missing",
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"name": "x", "metric": "scroe", "check": "above", "threshold": 1},
            "rules.toml: rule 'x': unknown metric 'scroe' for a run",
        ),
        (
            {"name": "x", "metric": "score", "check": "above", "threshold": "high"},
            "rules.toml: rule 'x': threshold: threshold must be a finite number, got 'high'",
        ),
        (
            {"name": "x", "metric": "score", "check": "above", "threshold": 1, "level": "loud"},
            "rules.toml: rule 'x': level: Input should be 'warning', 'error' or 'critical', "
            "got 'loud'",
        ),
        (
            {"metric": "score", "check": "above", "threshold": 1},
            "rules.toml: rule #2: name: is required",
        ),
        (
            {"name": "x", "metric": "score", "check": "delta"},
            "rules.toml: rule 'x': check 'delta' needs above or below",
        ),
    ],
)
def test_bad_rules_are_one_line_naming_the_file_the_rule_and_the_field(
    entry: dict[str, object], message: str
) -> None:
    good = {"name": "fine", "metric": "score", "check": "below", "threshold": 50}
    with pytest.raises(ConfigurationError) as error:
        parse_rules([good, entry], "rules.toml")
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
