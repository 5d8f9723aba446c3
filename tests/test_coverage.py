"""The covered count of held-out runs predicted together, against the joint predictive (decide/coverage.py)."""
import numpy as np
import pytest
from scipy import stats

from bayesmoe.decide.coverage import coverage_count, pooled_count
from bayesmoe.errors import BayesMoeError

Z90 = stats.norm.ppf(0.95)


def test_independent_runs_give_the_binomial_count():
    rng = np.random.default_rng(0)
    n = 24
    draws = rng.standard_normal((40_000, n))
    observed = np.zeros(n)  # every run at the centre: all covered
    result = coverage_count(draws, observed)
    assert result["covered"] == n
    assert result["p_all"] == pytest.approx(0.9**n, abs=0.006)  # 0.080
    assert result["expected"] == pytest.approx(0.9 * n, abs=0.05)
    assert result["range"] == [int(stats.binom.ppf(0.05, n, 0.9)), n]
    assert result["consistent"]  # 8% > 5%
    forty_three = coverage_count(rng.standard_normal((40_000, 43)), np.zeros(43))
    assert forty_three["p_at_least"] == pytest.approx(0.9**43, abs=0.003)  # 0.011: too many covered
    assert not forty_three["consistent"]


def test_a_shift_shared_by_every_run_covers_all_or_none():
    rng = np.random.default_rng(1)
    n = 9
    shared = rng.standard_normal((20_000, 1)) * np.ones((1, n))
    draws = shared + 1e-6 * rng.standard_normal((20_000, n))
    result = coverage_count(draws, np.zeros(n))
    assert result["p_all"] == pytest.approx(0.9, abs=0.01)  # 9 of 9 is what such a band does 90% of the time
    assert result["consistent"]
    outside = coverage_count(draws, np.full(n, 2 * Z90))
    assert outside["covered"] == 0 and outside["p_at_most"] == pytest.approx(0.1, abs=0.01)


def test_the_observed_count_uses_the_draws_own_central_band():
    rng = np.random.default_rng(2)
    draws = rng.standard_normal((50_000, 4))
    observed = np.array([0.0, 1.5, -1.7, 3.0])  # inside, inside, outside (|z| > 1.645), outside
    assert coverage_count(draws, observed)["covered"] == 2
    assert coverage_count(draws, observed, prob=0.95)["covered"] == 3


def test_pooled_count_convolves_independent_predictions_like_one_binomial():
    rng = np.random.default_rng(3)
    parts = [coverage_count(rng.standard_normal((40_000, n)), np.zeros(n)) for n in (9, 10, 24)]
    assert all(len(p["distribution"]) == p["n_runs"] + 1 for p in parts)
    pooled = pooled_count(parts)
    assert pooled["covered"] == pooled["n_runs"] == 43
    assert pooled["p_all"] == pytest.approx(0.9**43, rel=0.1)  # independent runs: 43 of 43 is 1% of the time
    assert not pooled["consistent"]
    partial = pooled_count([coverage_count(rng.standard_normal((40_000, 20)), np.r_[np.zeros(17), [3, 3, 3]])])
    assert partial["covered"] == 17
    assert partial["p_at_least"] == pytest.approx(stats.binom.sf(16, 20, 0.9), abs=0.01)
    assert partial["p_at_most"] == pytest.approx(stats.binom.cdf(17, 20, 0.9), abs=0.01)


def test_bad_shapes_and_prob_are_refused():
    with pytest.raises(BayesMoeError, match=r"shape \(S, n\)"):
        coverage_count(np.zeros((10, 3)), np.zeros(2))
    with pytest.raises(BayesMoeError, match="between 0 and 1"):
        coverage_count(np.zeros((10, 3)), np.zeros(3), prob=1.0)
    with pytest.raises(BayesMoeError, match="at least one"):
        pooled_count([])
