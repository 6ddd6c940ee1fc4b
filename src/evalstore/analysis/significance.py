"""Is a difference between two runs real or noise: intervals and tests on paired outcomes.

Pure functions over plain numbers, no store. `compare --stats` pairs the
tests present in both runs and calls them on the head-minus-base differences:

* `bootstrap_mean_ci`: the mean difference with a percentile bootstrap interval;
* `wilcoxon_p`: the Wilcoxon signed-rank test's two-sided p-value;
* `mcnemar_exact`: McNemar's exact test on pass/fail flips;
* `wilson_interval`: the Wilson score interval of a pass rate (flaky tests).

scipy (and numpy, which it brings) is the optional extra `evalstore[stats]`
and is imported inside the functions that need it, so `import evalstore`
and `evalstore flaky` work without it; `wilson_interval` needs neither.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

from evalstore.analysis.types import MeanInterval, SignedRankTest
from evalstore.errors import ConfigurationError

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 20_250_301
"""Fixed, so that the same two runs give the same interval, and a CI gate the same verdict."""
MIN_WILCOXON_PAIRS = 6
"""The exact two-sided signed-rank p-value cannot fall below 2 / 2**n: 0.0625 for 5 pairs."""
_MAX_RESAMPLED_VALUES = 4_000_000
"""Resamples are drawn in batches of at most this many values (32 MB of float64)."""
MISSING_SCIPY = "compare --stats needs scipy: pip install 'evalstore[stats]'"


def _scipy_stats() -> Any:
    """`scipy.stats`, or the one-line ConfigurationError saying how to install it."""
    try:
        return importlib.import_module("scipy.stats")
    except ImportError:
        raise ConfigurationError(MISSING_SCIPY) from None


def require_scipy() -> None:
    """Check that scipy can be imported.

    Raises:
        ConfigurationError: it cannot; the message says how to install it.
    """
    _scipy_stats()


def _check_confidence(confidence: float) -> float:
    if isinstance(confidence, bool) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(confidence)


def bootstrap_mean_ci(
    differences: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> MeanInterval:
    """The mean of paired differences with a percentile bootstrap confidence interval.

    The differences are resampled with replacement (`scipy.stats.bootstrap`,
    one sample: resampling the differences is resampling the pairs) and the
    interval is the `(1 - confidence) / 2` and `(1 + confidence) / 2`
    quantiles of the resampled means. Percentile rather than BCa: score
    differences are mostly exact ties (unchanged tests), where BCa's bias
    correction and jackknife acceleration degenerate (NaN bounds, warnings),
    and BCa's jackknife needs n x n memory; the percentile interval is
    defined for any data and reads plainly. `seed` fixes the resamples, so
    the same differences always give the same interval.

    Args:
        differences: head minus base, one per pair (finite numbers).
        confidence: the interval's coverage, between 0 and 1.
        resamples: how many bootstrap resamples.
        seed: the random generator's seed.

    Returns:
        `{n, mean, low, high, note}`. With no difference every figure is None;
        with one, `low`/`high` are None (no spread to resample); when all
        differences are equal every resample has their mean, so `low` and
        `high` are that mean, without resampling. `note` says why a figure is
        missing (None otherwise).

    Raises:
        ConfigurationError: scipy is not installed (only where it is needed:
            two or more differences that are not all equal).
    """
    confidence = _check_confidence(confidence)
    values = [float(d) for d in differences]
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None, "note": "no pairs"}
    mean = math.fsum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "low": None, "high": None, "note": "one pair: no interval"}
    if all(v == values[0] for v in values):
        return {"n": n, "mean": mean, "low": mean, "high": mean, "note": None}
    stats = _scipy_stats()
    import numpy as np  # present wherever scipy is

    result = stats.bootstrap(
        (np.asarray(values),),
        np.mean,
        n_resamples=resamples,
        batch=max(1, _MAX_RESAMPLED_VALUES // n),
        vectorized=True,
        confidence_level=confidence,
        method="percentile",
        random_state=np.random.default_rng(seed),  # `rng` from scipy 1.15; this works on 1.11
    )
    interval = result.confidence_interval
    return {
        "n": n,
        "mean": mean,
        "low": float(interval.low),
        "high": float(interval.high),
        "note": None,
    }


def wilcoxon_p(differences: Sequence[float]) -> SignedRankTest:
    """The two-sided p-value of the Wilcoxon signed-rank test that the differences centre on 0.

    Zero differences are dropped (scipy's default `zero_method="wilcox"`);
    scipy chooses the exact distribution for small samples without ties and
    the normal approximation otherwise.

    Returns:
        `{n, p_value, note}`: `n` counts the non-zero differences. `p_value`
        is None, with the reason in `note`, when every difference is zero or
        fewer than `MIN_WILCOXON_PAIRS` are not (the test could not reach
        p < 0.05 however large the differences).

    Raises:
        ConfigurationError: scipy is not installed.
    """
    nonzero = [float(d) for d in differences if d != 0]
    n = len(nonzero)
    if n == 0:
        note = "no pairs" if not differences else "all differences are zero"
        return {"n": 0, "p_value": None, "note": note}
    if n < MIN_WILCOXON_PAIRS:
        return {
            "n": n,
            "p_value": None,
            "note": f"{n} non-zero difference(s): the test needs at least {MIN_WILCOXON_PAIRS}",
        }
    stats = _scipy_stats()
    result = stats.wilcoxon(nonzero)
    return {"n": n, "p_value": float(result.pvalue), "note": None}


def mcnemar_exact(b: int, c: int) -> float:
    """McNemar's exact two-sided p-value for `b` and `c` discordant pairs.

    Under no change, each discordant pair (here: a test that went from pass
    to fail, `b`, or from fail to pass, `c`) is either kind with probability
    1/2, so the p-value is the two-sided binomial test of `min(b, c)` in
    `b + c` trials. With no discordant pair nothing changed: 1.0.

    Raises:
        ConfigurationError: scipy is not installed.
        ValueError: `b` or `c` is negative.
    """
    if b < 0 or c < 0:
        raise ValueError(f"b and c must be counts, got {b!r} and {c!r}")
    if b + c == 0:
        return 1.0
    stats = _scipy_stats()
    return float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)


def wilson_interval(
    passes: int, n: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float] | None:
    """The Wilson score interval of a pass rate: `passes` out of `n` runs (no scipy needed).

    With z the normal quantile of `(1 + confidence) / 2` (1.959964 for 95%) and
    p = passes / n, the interval is
    `(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`. Unlike p ± z·se
    it stays within [0, 1] and does not collapse to a point at 0/n or n/n.

    Returns:
        `(low, high)`, or None when `n` is 0.
    """
    if n < 0 or not 0 <= passes <= max(n, 0):
        raise ValueError(f"need 0 <= passes <= n, got passes={passes!r}, n={n!r}")
    if n == 0:
        return None
    z = NormalDist().inv_cdf((1 + _check_confidence(confidence)) / 2)
    p = passes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
