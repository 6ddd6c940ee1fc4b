"""Issue 12.5: intervals and tests of `compare --stats`, against values computed by hand."""

from __future__ import annotations

import math
import random
import statistics
import sys
from typing import Any

import pytest
from scipy import stats as scipy_stats

from evalstore.analysis.comparison import comparison_statistics, pass_fail_change
from evalstore.analysis.significance import (
    DEFAULT_SEED,
    MISSING_SCIPY,
    bootstrap_mean_ci,
    mcnemar_exact,
    require_scipy,
    wilcoxon_p,
    wilson_interval,
)
from evalstore.errors import ConfigurationError

# --- McNemar: two-sided exact binomial test of min(b, c) in b + c trials, p = 1/2 ---


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        (1, 5, 2 * (1 + 6) / 64),  # 2 * P(X <= 1), X ~ Bin(6, 1/2): 2 * (C(6,0) + C(6,1)) / 2**6
        (5, 1, 2 * (1 + 6) / 64),  # symmetric
        (0, 5, 2 / 32),  # 0.0625: five flips one way are not enough at 5%
        (0, 6, 2 / 64),  # 0.03125: six are
        (2, 8, 2 * (1 + 10 + 45) / 1024),  # 0.109375
        (3, 3, 1.0),  # balanced
        (0, 1, 1.0),  # 2 * 1/2
    ],
)
def test_mcnemar_exact_by_hand(b: int, c: int, expected: float) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(expected, abs=1e-12)


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    assert mcnemar_exact(0, 0) == 1.0


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="counts"):
        mcnemar_exact(-1, 2)


# --- Wilson 95%: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964 ---


def test_wilson_seven_of_ten_by_hand() -> None:
    # z² = 3.841459; 1 + z²/n = 1.384146; centre (0.7 + 0.192073) / 1.384146 = 0.644493;
    # half 1.959964 * sqrt(0.021 + 0.009604) / 1.384146 = 1.959964 * 0.174940 / 1.384146 = 0.247715.
    low, high = wilson_interval(7, 10)  # type: ignore[misc]
    assert low == pytest.approx(0.396778, abs=1e-6)
    assert high == pytest.approx(0.892209, abs=1e-6)


def test_wilson_at_the_edges_stays_within_zero_and_one() -> None:
    # p = 0: low 0 and high z² / (n + z²) = 3.841459 / 13.841459.
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    assert wilson_interval(10, 10) == pytest.approx((0.722467, 1.0), abs=1e-6)
    # One run that passed: 1 / (1 + z²) = 1 / 4.841459 = 0.206549 to 1.
    assert wilson_interval(1, 1) == pytest.approx((0.206549, 1.0), abs=1e-6)
    assert wilson_interval(0, 0) is None


def test_wilson_narrows_with_more_runs_and_other_confidence() -> None:
    wide, narrow = wilson_interval(7, 10), wilson_interval(70, 100)
    assert wide is not None
    assert narrow is not None
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    # 99%: z = 2.575829, wider than 95%.
    ninety_nine = wilson_interval(7, 10, confidence=0.99)
    assert ninety_nine is not None
    assert ninety_nine[0] < wide[0]
    assert ninety_nine[1] > wide[1]


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="passes <= n"):
        wilson_interval(11, 10)


# --- Wilcoxon signed-rank: zeros dropped, None with a reason when it cannot decide ---


def test_wilcoxon_by_hand() -> None:
    # |d| ranks 1..7, W- = 3 (the -3). Exact: subsets of {1..7} summing to <= 3 are
    # {}, {1}, {2}, {3}, {1,2}: p = 2 * 5 / 2**7 = 0.078125. Zeros are dropped first.
    assert wilcoxon_p([1, 2, -3, 4, 5, 6, 7]) == {"n": 7, "p_value": 0.078125, "note": None}
    assert wilcoxon_p([0, 1, 2, -3, 0, 4, 5, 6, 7])["p_value"] == 0.078125
    # All seven one way: W- = 0, p = 2 / 128.
    assert wilcoxon_p([-1, -2, -3, -4, -5, -6, -7])["p_value"] == 2 / 128


def test_wilcoxon_agrees_with_scipy_on_tied_data() -> None:
    rng = random.Random(3)
    differences = [round(rng.gauss(-1, 2)) for _ in range(40)]
    nonzero = [d for d in differences if d]
    expected = scipy_stats.wilcoxon(nonzero).pvalue
    assert wilcoxon_p(differences) == {"n": len(nonzero), "p_value": expected, "note": None}


def test_wilcoxon_says_why_it_has_no_p_value() -> None:
    assert wilcoxon_p([]) == {"n": 0, "p_value": None, "note": "no pairs"}
    assert wilcoxon_p([0, 0, 0.0]) == {"n": 0, "p_value": None, "note": "all differences are zero"}
    assert wilcoxon_p([0, -1, -2, -3, -4, -5]) == {
        "n": 5,
        "p_value": None,
        "note": "5 non-zero difference(s): the test needs at least 6",
    }


# --- Bootstrap: percentile interval of resampled means, fixed seed ---


def test_bootstrap_of_two_values_by_hand() -> None:
    # Resampled means of [0, 10] are 0, 5, 10 with probability 1/4, 1/2, 1/4: the 2.5% and
    # 97.5% quantiles of 10,000 of them are 0 and 10.
    assert bootstrap_mean_ci([0, 10]) == {
        "n": 2,
        "mean": 5.0,
        "low": 0.0,
        "high": 10.0,
        "note": None,
    }


def test_bootstrap_of_three_values_by_hand() -> None:
    # [0, 0, 3]: a mean of 0 has probability (2/3)³ = 0.296, of 3 (1/3)³ = 0.037 > 0.025.
    result = bootstrap_mean_ci([0, 0, 3])
    assert (result["mean"], result["low"], result["high"]) == (1.0, 0.0, 3.0)


def test_bootstrap_interval_around_a_known_mean() -> None:
    rng = random.Random(11)
    differences = [rng.gauss(-5, 2) for _ in range(400)]
    mean = statistics.fmean(differences)
    result = bootstrap_mean_ci(differences)
    assert result["mean"] == pytest.approx(mean, abs=1e-12)
    assert result["low"] is not None
    assert result["high"] is not None
    assert result["low"] < mean < result["high"]
    # The percentile interval of a mean of 400 is about mean ± 1.96 · s / sqrt(400).
    half = 1.959964 * statistics.stdev(differences) / math.sqrt(400)
    assert result["low"] == pytest.approx(mean - half, abs=0.1 * half)
    assert result["high"] == pytest.approx(mean + half, abs=0.1 * half)


def test_bootstrap_is_reproducible_under_its_seed() -> None:
    rng = random.Random(5)
    differences = [rng.gauss(-1, 3) for _ in range(30)]
    first = bootstrap_mean_ci(differences)
    assert bootstrap_mean_ci(differences) == first
    assert bootstrap_mean_ci(differences, seed=DEFAULT_SEED) == first
    other = bootstrap_mean_ci(differences, seed=DEFAULT_SEED + 1)
    assert other["mean"] == first["mean"]
    assert (other["low"], other["high"]) != (first["low"], first["high"])


def test_bootstrap_edge_cases() -> None:
    assert bootstrap_mean_ci([]) == {
        "n": 0,
        "mean": None,
        "low": None,
        "high": None,
        "note": "no pairs",
    }
    assert bootstrap_mean_ci([-4.5]) == {
        "n": 1,
        "mean": -4.5,
        "low": None,
        "high": None,
        "note": "one pair: no interval",
    }
    # All ties: every resample has the same mean, so the interval is that point.
    assert bootstrap_mean_ci([-2.0] * 7) == {
        "n": 7,
        "mean": -2.0,
        "low": -2.0,
        "high": -2.0,
        "note": None,
    }


# --- Without scipy: one line naming the extra ---


@pytest.fixture
def no_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)


@pytest.mark.usefixtures("no_scipy")
def test_without_scipy_the_message_names_the_extra() -> None:
    assert MISSING_SCIPY == "compare --stats needs scipy: pip install 'evalstore[stats]'"
    for call in (
        require_scipy,
        lambda: bootstrap_mean_ci([1, 2]),
        lambda: wilcoxon_p([1, 2, 3, 4, 5, 6]),
        lambda: mcnemar_exact(1, 0),
    ):
        with pytest.raises(ConfigurationError) as raised:
            call()
        assert str(raised.value) == MISSING_SCIPY
    # Wilson (flaky) and the cases that need no resampling work without it.
    assert wilson_interval(7, 10) is not None
    assert bootstrap_mean_ci([3.0, 3.0])["low"] == 3.0
    assert mcnemar_exact(0, 0) == 1.0


# --- Verdicts over paired test runs ---


def _tests(scores: list[float], status: str = "passed", ms: float = 1000.0) -> dict[str, Any]:
    return {
        f"t{i:02}": {
            "test_id": f"t{i:02}",
            "status": status,
            "score": score,
            "duration_ms": ms,
            "metrics": {"wer": {"score": score}},
        }
        for i, score in enumerate(scores)
    }


def test_a_consistent_drop_is_significant_and_a_noisy_one_within_noise() -> None:
    base = _tests([80.0] * 12)
    drop = [-10, -11, -9, -10, -12, -8, -10, -11, -9, -10, -10, -10]  # mean -10
    noise = [-3, 2, -1, 1, -2, 3, -4, 1, 0, -1, 2, -2]  # mean -1/3
    large = comparison_statistics(base, _tests([80.0 + d for d in drop]), 1.0)
    small = comparison_statistics(base, _tests([80.0 + d for d in noise]), 1.0)
    assert large["score"]["mean_difference"] == -10.0
    assert large["score"]["ci_high"] is not None
    assert large["score"]["ci_high"] < -1.0
    assert large["score"]["verdict"] == "significant"
    assert large["score"]["wilcoxon_p"] == scipy_stats.wilcoxon(drop).pvalue
    assert large["metrics"][0]["metric"] == "wer"
    assert large["metrics"][0]["verdict"] == "significant"
    assert large["regressed"] is True
    assert small["score"]["mean_difference"] == round(-1 / 3, 6)
    # A raw drop of 1/3 point is within a tolerance of 1; with tolerance 0 it is noise.
    assert small["score"]["verdict"] == "no_regression"
    at_zero = comparison_statistics(base, _tests([80.0 + d for d in noise]), 0.0)
    assert at_zero["score"]["verdict"] == "within_noise"
    assert at_zero["regressed"] is False


def test_durations_are_judged_only_with_a_tolerance() -> None:
    base = _tests([80.0] * 6, ms=1000.0)
    slower = _tests([80.0] * 6, ms=1500.0)  # +500 ms each: +50%
    unjudged = comparison_statistics(base, slower, 0.0)
    assert unjudged["duration"] == {
        "metric": "duration_ms",
        "pairs": 6,
        "mean_difference": 500.0,
        "ci_low": 500.0,
        "ci_high": 500.0,
        "wilcoxon_p": scipy_stats.wilcoxon([500.0] * 6).pvalue,
        "note": None,
        "verdict": None,
    }
    assert unjudged["regressed"] is False
    # 40% of the mean base duration (1000 ms) is 400 ms < 500: significant; 60% is 600: not.
    assert comparison_statistics(base, slower, 0.0, 40.0)["duration"]["verdict"] == "significant"
    assert comparison_statistics(base, slower, 0.0, 40.0)["regressed"] is True
    assert comparison_statistics(base, slower, 0.0, 60.0)["duration"]["verdict"] == "no_regression"


def test_pairs_and_unmatched_tests() -> None:
    base = _tests([80.0, 70.0])
    head = {"t01": {**base["t01"], "score": 60.0}, "new": {**base["t00"], "test_id": "new"}}
    result = comparison_statistics(base, head, 0.0)
    assert (result["paired"], result["unmatched"]) == (1, ["new", "t00"])
    assert result["score"] == {
        "metric": "score",
        "pairs": 1,
        "mean_difference": -10.0,
        "ci_low": None,
        "ci_high": None,
        "wilcoxon_p": None,
        "note": "one pair: no interval; 1 non-zero difference(s): the test needs at least 6",
        "verdict": "too_few_pairs",
    }


def test_mcnemar_on_pass_fail_pairs() -> None:
    def pair(before: str, after: str) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"status": before}, {"status": after}

    pairs = [pair("passed", "failed")] * 6 + [pair("passed", "error")] + [pair("failed", "passed")]
    pairs += [pair("passed", "passed")] * 5 + [pair("skipped", "failed"), pair("passed", "skipped")]
    # b = 7, c = 1: 2 * (1 + 8) / 256 = 0.0703125, not below 0.05.
    assert pass_fail_change(pairs) == {
        "pairs": 13,
        "newly_failing": 7,
        "newly_passing": 1,
        "p_value": 2 * 9 / 256,
        "verdict": "within_noise",
    }
    # b = 8, c = 0: 2 / 256.
    pairs = [pair("passed", "failed")] * 8
    assert pass_fail_change(pairs)["verdict"] == "significant"
    assert pass_fail_change([pair("failed", "passed")] * 8)["verdict"] == "no_regression"
