"""The covered count of held-out runs predicted together, against the joint predictive (decide/coverage.py)."""
import numpy as np
import pandas as pd
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


def simulated_count(rng: np.random.Generator, *, past_reach: bool, shared: bool = True, held: int = 24,
                    law_sd: float = 0.005, steps: int = 4, per_step: int = 8,
                    prior_scale: str = "fixed") -> tuple[int, float, float]:
    """One replicate of simulation-based calibration of the discrepancy layer (no fits needed).

    The truth (s0, s1, t) is drawn from the term's prior on its grid, chaining errors are simulated from the term's
    model (``steps`` steps of ``per_step`` runs at distances 0.3-2.3, law sd ``law_sd``), the term is learned from
    them, and ``held`` runs at one distance (inside the reach, or 0.7 past it with a true slope s2 from its prior)
    are predicted. With ``prior_scale="learned"`` the truth's scale tau is first drawn from the hierarchical prior
    and the term learns it. Returns (covered count, randomized PIT of the count under the band's joint predictive,
    P(all))."""
    from bayesmoe.inference.discrepancy import LEARNED_SCALES, PRIOR_SD, Discrepancy, hyper_grid, learn

    tau = rng.choice(LEARNED_SCALES) if prior_scale == "learned" else PRIOR_SD
    values, log_mass = hyper_grid(tau)
    s0, s1, t = values[rng.choice(len(values), 3, p=np.exp(log_mass) / np.exp(log_mass).sum())]
    step = np.repeat(np.arange(steps), per_step)
    distance = rng.uniform(0.3, 2.0, steps)[step] + rng.uniform(0, 0.3, step.size)
    errors = (law_sd * rng.standard_normal(step.size) + (s0 + s1 * distance) * rng.standard_normal(step.size)
              + t * distance * rng.standard_normal(steps)[step])
    sd = np.full(step.size, law_sd)
    if shared:
        term = Discrepancy.learned(errors, sd, distance, step, scale_column="compute", reference=1.0,
                                   prior_scale=prior_scale)
    else:  # the independent term alone: blind to the shift the errors share
        post = learn(errors, sd, distance, step, shared=False)
        term = Discrepancy(post.mean[0], post.mean[1], "compute", 1.0, step.size, max_distance=float(distance.max()),
                           draws=post.kept.tolist())
    reach = distance.max()
    at = reach + 0.7 if past_reach else 0.8 * reach
    s2 = abs(rng.normal(0.0, tau)) if past_reach else 0.0
    observed = (law_sd * rng.standard_normal(held) + (s0 + s1 * at + s2 * max(0.0, at - reach))
                * rng.standard_normal(held) + t * at * rng.standard_normal())
    frame = pd.DataFrame({"compute": np.full(held, np.exp(at))})
    draws = law_sd * rng.standard_normal((2000, held)) + term.noise(frame, rng, (2000, held))
    result = coverage_count(draws, observed)
    distribution, k = np.asarray(result["distribution"]), result["covered"]
    return k, distribution[:k].sum() + rng.uniform() * distribution[k], result["p_all"]


def _calibration(replicates: list[tuple[int, float, float]], held: int = 24) -> tuple[float, float, float]:
    """(mean coverage, KS p-value of the count PITs against uniform, z of the all-covered frequency against the
    mean predicted P(all))."""
    covered, pit, p_all = map(np.array, zip(*replicates))
    z = ((covered == held).mean() - p_all.mean()) / (np.sqrt(np.mean(p_all * (1 - p_all))) / np.sqrt(len(p_all)))
    return covered.mean() / held, stats.kstest(pit, "uniform").pvalue, z


@pytest.mark.parametrize("past_reach", [False, True])
def test_the_terms_joint_predictive_is_calibrated_where_its_model_holds(past_reach):
    rng = np.random.default_rng(10 + past_reach)
    coverage, ks_p, z = _calibration([simulated_count(rng, past_reach=past_reach) for _ in range(400)])
    assert coverage == pytest.approx(0.9, abs=0.03)
    assert ks_p > 0.01 and abs(z) < 3  # the count's PIT is uniform; all 24 covered as often as predicted


@pytest.mark.parametrize("past_reach", [False, True])
def test_a_learned_prior_scale_is_calibrated_where_its_hierarchical_model_holds(past_reach):
    rng = np.random.default_rng(13 + past_reach)
    coverage, ks_p, z = _calibration([simulated_count(rng, past_reach=past_reach, prior_scale="learned")
                                      for _ in range(400)])
    assert coverage == pytest.approx(0.9, abs=0.03)
    assert ks_p > 0.01 and abs(z) < 3


def test_a_term_blind_to_the_shared_shift_miscounts_it():
    rng = np.random.default_rng(12)
    coverage, ks_p, z = _calibration([simulated_count(rng, past_reach=False, shared=False) for _ in range(400)])
    assert coverage == pytest.approx(0.9, abs=0.04)  # its marginal bands are about right
    assert ks_p < 1e-3 and z > 4  # but all 24 runs fall inside far more often than it predicts
