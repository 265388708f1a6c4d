"""Bootstrap confidence intervals: a mean over samples, any statistic recomputed on
resampled sets, and paired differences (numpy only; pure functions).

Every interval is a percentile bootstrap: ``resamples`` draws of ``n`` indices with
replacement from a seeded generator, the statistic on each draw, and the ``(1-level)/2`` and
``(1+level)/2`` quantiles of those values. The same seed gives the same interval.

>>> mean_ci(np.array([1.0, 0.0, 1.0, 1.0])).estimate
0.75
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        """Half the interval's width (what ``score ± half-width`` shows)."""
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        """True when 0 lies outside ``[low, high]`` (a difference the data supports)."""
        return self.low > 0 or self.high < 0


def _check(n: int, resamples: int, level: float) -> None:
    if n < 1:
        raise ValueError(f"a bootstrap needs at least one sample, got n={n}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def bootstrap_indices(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Row indices of each resample: int array (resamples, n), values in [0, n)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def _interval(estimate: float, draws: np.ndarray, level: float) -> Interval:
    """``draws``: (resamples,) statistic values; the percentile interval around ``estimate``."""
    low, high = np.nanquantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(estimate), float(low), float(high))


def mean_ci(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL
) -> Interval:
    """Mean of ``values`` (n,) with its bootstrap interval."""
    x = np.asarray(values, dtype=np.float64)
    _check(len(x), resamples, level)
    draws = x[bootstrap_indices(len(x), resamples, seed)].mean(axis=1)
    return _interval(x.mean(), draws, level)


def paired_mean_ci(
    values: np.ndarray,
    baseline: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> Interval:
    """Mean of ``values - baseline`` (both (n,), row i of one paired with row i of the other),
    resampling the pairs together. Identical inputs give exactly 0 with interval [0, 0]."""
    a = np.asarray(values, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    return mean_ci(a - b, resamples, seed, level)


def statistic_ci(
    n: int,
    statistic: Callable[[np.ndarray], float],
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> Interval:
    """``statistic(indices)`` on all ``n`` rows and on each resample of them: for a metric
    that is not a mean over rows (an F1 over the set, a mean of task means...); it returns
    NaN where it has no value. For a paired
    difference, let ``statistic`` score both runs on the same indices and subtract."""
    _check(n, resamples, level)
    estimate = statistic(np.arange(n))
    draws = np.array(
        [statistic(idx) for idx in bootstrap_indices(n, resamples, seed)], dtype=np.float64
    )  # a resample the statistic cannot score (NaN) is left out of the quantiles
    return _interval(estimate, draws, level)
