"""Bootstrap intervals (experiment/stats.py) against known cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp

from sparse_attention_hub.experiment import stats


def test_mean_interval_matches_the_normal_interval_on_large_n() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=4000)
    ci = stats.mean_ci(x, resamples=2000, seed=5)
    half = sp.norm.ppf(0.975) * x.std(ddof=1) / np.sqrt(len(x))
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.low == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert ci.high == pytest.approx(x.mean() + half, abs=0.15 * half)
    assert ci.half_width == pytest.approx(half, rel=0.1)


def test_bernoulli_interval_matches_the_wald_interval() -> None:
    x = np.array([1.0] * 600 + [0.0] * 400)
    ci = stats.mean_ci(x, seed=3)
    half = sp.norm.ppf(0.975) * np.sqrt(0.6 * 0.4 / len(x))
    assert ci.half_width == pytest.approx(half, rel=0.12)
    assert ci.low < 0.6 < ci.high


def test_paired_difference_of_identical_runs_is_exactly_zero() -> None:
    x = np.random.default_rng(0).uniform(size=50)
    ci = stats.paired_mean_ci(x, x.copy())
    assert (ci.estimate, ci.low, ci.high) == (0.0, 0.0, 0.0)
    assert not ci.excludes_zero()


def test_paired_interval_is_tighter_than_unpaired_and_excludes_zero() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=300)
    shifted = base + 0.1 + rng.normal(scale=0.05, size=300)
    paired = stats.paired_mean_ci(shifted, base)
    assert paired.excludes_zero() and paired.low > 0
    assert paired.estimate == pytest.approx(float(np.mean(shifted - base)))
    unpaired = stats.mean_ci(shifted).half_width + stats.mean_ci(base).half_width
    assert paired.half_width < unpaired / 5


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    x = np.random.default_rng(4).exponential(size=40)
    assert stats.mean_ci(x, seed=7) == stats.mean_ci(x, seed=7)
    assert stats.mean_ci(x, seed=7) != stats.mean_ci(x, seed=8)


def test_statistic_interval_of_the_mean_equals_the_fast_path() -> None:
    x = np.random.default_rng(6).normal(size=30)
    fast = stats.mean_ci(x, resamples=200, seed=9)
    slow = stats.statistic_ci(len(x), lambda idx: float(x[idx].mean()), resamples=200, seed=9)
    assert slow.estimate == pytest.approx(fast.estimate)
    assert (slow.low, slow.high) == pytest.approx((fast.low, fast.high))


def test_statistic_interval_skips_resamples_without_a_value() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    ci = stats.statistic_ci(
        4, lambda idx: float("nan") if 0 in idx else float(x[idx].mean()), seed=1
    )
    assert 1.0 <= ci.low <= ci.high <= 3.0


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"resamples": 0}, "resamples"), ({"level": 1.0}, "level")],
)
def test_bad_settings_are_named(kwargs: dict[str, float], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        stats.mean_ci(np.ones(3), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one sample"):
        stats.mean_ci(np.array([]))
