"""The five-factor law (Zhao et al. 2025, arXiv 2509.23678): formula, covariates, the paper's stated
optima from its published coefficients, closed forms against brute-force minimisation, and recovery."""
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import bayesmoe
from bayesmoe.decide.optimum import PointPosterior, optimum
from bayesmoe.errors import BayesMoeError
from bayesmoe.model.simulate import simulate_runs

LAW = bayesmoe.get_law("five_factor")
PUBLISHED = dict(LAW.coefficient_set("zhao2025").values)


def law_at(values, n_total, n_active, tokens, g, s):
    """Loss from the law's own log-space code at raw covariates (arrays broadcast)."""
    x = {
        "log_N": jnp.log(n_total),
        "log_Na": jnp.log(n_active),
        "log_D": jnp.log(tokens),
        "G": jnp.asarray(g, float),
        "S": jnp.asarray(s, float),
    }
    return np.exp(np.asarray(LAW.mean_log_loss({k: jnp.asarray(v) for k, v in values.items()}, x)))


def direct(v, n_total, n_active, tokens, g, s):
    """The paper's formula written out on the natural scale."""
    p = v["e"] * g + v["f"] / g + v["m"] * s**2 + v["n"] * s
    q = n_total ** -v["alpha"] + v["k"] * n_active ** -v["alpha"] + v["h"] * n_active / n_total
    return (
        p * q
        + v["a"] * n_total ** -v["alpha"]
        + v["b"] * tokens ** -v["beta"]
        + v["c"] * n_active ** -v["alpha"]
        + v["eps"]
    )


def test_value_by_hand():
    # N = Na = 1e9, D = 2e10, G = 1, S = 0 by hand: P = e + f = 7.4023, Q = 0.052176, P Q = 0.38622,
    # a/N^alpha 0.27269, b/D^beta 0.39640, c/Na^alpha 0.22285, eps 1.8182: L = 3.0964.
    assert law_at(PUBLISHED, 1e9, 1e9, 2e10, 1.0, 0.0) == pytest.approx(3.0964, abs=1e-4)


def test_log_space_form_matches_formula_for_either_sign_of_first_factor():
    rng = np.random.default_rng(0)
    n_total = np.exp(rng.uniform(np.log(1e8), np.log(1e11), 50))
    n_active = n_total * rng.uniform(0.02, 1.0, 50)
    tokens = np.exp(rng.uniform(np.log(1e9), np.log(1e12), 50))
    g, s = rng.uniform(1, 32, 50), rng.uniform(0, 0.9, 50)
    np.testing.assert_allclose(
        law_at(PUBLISHED, n_total, n_active, tokens, g, s),
        direct(PUBLISHED, n_total, n_active, tokens, g, s),
        rtol=1e-10,
    )
    negative = {**PUBLISHED, "n": -12.0}  # P = e G + f/G + m S^2 + n S < 0 near S = 0.6, G = 7
    p = negative["e"] * g + negative["f"] / g + negative["m"] * s**2 + negative["n"] * s
    expected = direct(negative, n_total, n_active, tokens, g, s)
    assert (p < 0).any() and (expected > 0).all()
    np.testing.assert_allclose(law_at(negative, n_total, n_active, tokens, g, s), expected, rtol=1e-10)


def test_nonpositive_loss_is_floored_not_nan():
    absurd = {**PUBLISHED, "n": -300.0, "eps": 0.01}
    value = law_at(absurd, 1e8, 1e7, 1e9, 7.0, 0.8)
    assert direct(absurd, 1e8, 1e7, 1e9, 7.0, 0.8) < 0
    assert np.isfinite(value) and 0 < value < 1e-5


def test_covariates_count_shared_experts_in_g():
    runs = pd.DataFrame({"loss": 3.0, "tokens": 1e10, "n_total": [8e8, 4e8], "n_active": [1e8, 4e8],
                         "top_k": [6, 1], "shared_ratio": [0.25, 0.0], "n_experts": [64, 1]})
    x = LAW.covariates(bayesmoe.runs.validate_runs(runs, required=LAW.required_columns))
    np.testing.assert_allclose(x["G"], [8.0, 1.0])  # 6 routed + 2 shared; dense
    np.testing.assert_allclose(x["S"], [0.25, 0.0])


def test_missing_shared_ratio_is_a_clean_error():
    runs = pd.DataFrame({"loss": [3.0], "tokens": [1e10], "n_total": [8e8], "n_active": [1e8], "top_k": [2]})
    with pytest.raises(BayesMoeError, match="shared_ratio.*five_factor"):
        bayesmoe.fit(runs, "five_factor")


def test_paper_optima_from_published_set():
    # Zhao et al. 2025: G* = 6.78, S* = 0.315 (independent of N and D); optimal Na/N 40.1% at N = 30B,
    # 22.0% at N = 671B.
    result = optimum(PointPosterior.from_set("five_factor", "zhao2025"), [1e23, 1e24], n_total=[30e9, 671e9])
    g, s, ratio = (result.draws[k][0] for k in ("activated_experts", "shared_ratio", "ratio_active_total"))
    np.testing.assert_allclose(g, 6.78, atol=0.005)
    np.testing.assert_allclose(s, 0.315, atol=0.0005)
    np.testing.assert_allclose(ratio, [0.401, 0.220], atol=0.0005)
    np.testing.assert_allclose(result.draws["n_active"][0], ratio * [30e9, 671e9])
    np.testing.assert_allclose(result.draws["tokens"][0], np.array([1e23, 1e24]) / (6 * result.draws["n_active"][0]))


def test_closed_forms_agree_with_brute_force_minimisation_of_the_law():
    n_total, tokens = 30e9, 1e12
    g, s = np.meshgrid(np.linspace(1, 20, 1901), np.linspace(0, 0.9, 901))
    loss = law_at(PUBLISHED, n_total, 3e9, tokens, g, s)
    best = np.unravel_index(np.argmin(loss), loss.shape)
    na = n_total * np.exp(np.linspace(np.log(0.01), 0, 20001))
    best_na = na[np.argmin(law_at(PUBLISHED, n_total, na, tokens, 6.7778, 0.31485))]
    result = optimum(PointPosterior.from_set("five_factor", "zhao2025"), [1e23], n_total=n_total)
    assert result.draws["activated_experts"][0, 0] == pytest.approx(g[best], abs=0.011)
    assert result.draws["shared_ratio"][0, 0] == pytest.approx(s[best], abs=0.0011)
    assert result.draws["n_active"][0, 0] == pytest.approx(best_na, rel=1e-3)


def test_optimal_activation_ratio_falls_with_n_as_a_power_law():
    sizes = np.array([1e9, 1e10, 1e11, 1e12])
    ratio = optimum(PointPosterior.from_set("five_factor", "zhao2025"), np.full(4, 1e23), n_total=sizes).draws[
        "ratio_active_total"
    ][0]
    slopes = np.diff(np.log(ratio)) / np.diff(np.log(sizes))
    alpha = PUBLISHED["alpha"]
    np.testing.assert_allclose(slopes, -alpha / (1 + alpha), rtol=1e-9)  # not -1/(1 + alpha)


def test_optimum_options():
    post = PointPosterior.from_set("five_factor", "zhao2025")
    only = optimum(post, [1e22, 1e23]).draws
    assert set(only) == {"activated_experts", "shared_ratio"}
    by_memory = optimum(post, [1e23], memory=60e9).draws
    assert by_memory["n_total"][0, 0] == pytest.approx(30e9)  # bf16: 2 bytes per parameter
    with pytest.raises(BayesMoeError, match="n_total"):
        optimum(post, [1e22, 1e23, 1e24], n_total=[1e9, 2e9])
    with pytest.raises(BayesMoeError, match="objective"):
        optimum(post, [1e22], objective="inference")


def design(rng, n):
    """MoE runs: N in [1e8, 3e10], Na/N in [0.03, 1], top_k 1-16, S in {0, 0.25, 0.5}, D in [1e9, 1e12]."""
    n_total = np.exp(rng.uniform(np.log(1e8), np.log(3e10), n))
    return pd.DataFrame({
        "n_total": n_total,
        "n_active": n_total * np.exp(rng.uniform(np.log(0.03), 0, n)),
        "tokens": np.exp(rng.uniform(np.log(1e9), np.log(1e12), n)),
        "top_k": rng.choice([1, 2, 3, 4, 6, 8, 12, 16], n),
        "shared_ratio": rng.choice([0.0, 0.25, 0.5], n),
        "n_experts": 64,
    })


@pytest.mark.slow  # an MCMC fit of 1-2 minutes on 2 cores: run with `make test-slow`
def test_recovers_the_optima_from_simulated_runs():
    runs = simulate_runs("five_factor", PUBLISHED, 0, noise=0.005, seed=5, design=design(np.random.default_rng(0), 120))
    fit = bayesmoe.fit(runs, "five_factor", seed=1, **{**FAST, "warmup": 300, "draws": 300})
    assert fit.divergences == 0
    sizes = np.array([3e9, 3e10])  # inside the simulated range of N
    bands = optimum(fit, [1e21, 1e22], n_total=sizes).quantiles(0.98)
    v = PUBLISHED
    p_star = 2 * np.sqrt(v["e"] * v["f"]) - v["n"] ** 2 / (4 * v["m"])
    ratio = (v["alpha"] * (p_star * v["k"] + v["c"]) / (p_star * v["h"])) ** (1 / (1 + v["alpha"])) * sizes ** (
        -v["alpha"] / (1 + v["alpha"])
    )
    truth = {"activated_experts": np.sqrt(v["f"] / v["e"]), "shared_ratio": -v["n"] / (2 * v["m"])}
    for budget, r in zip(bands, ratio):
        for key, value in {**truth, "ratio_active_total": r}.items():
            q = budget["optimal"][key]
            assert q["q01"] <= value <= q["q99"], (key, value, q)
