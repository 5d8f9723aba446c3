"""Identifiability (issue 11): a constant covariate is detected, absorbed into a reduced law (recorded in
the fit and rebuilt on load), relied on an informative prior, or refused with the parameters named."""
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.config import float64
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws import get_law
from bayesmoe.laws._ehat import e_hat as e_hat_of
from bayesmoe.model import identifiability as ident
from bayesmoe.runs.datasets import load


def _mean(law, theta, frame):
    x = {k: jnp.asarray(v) for k, v in law.covariates(frame).items()}
    return np.asarray(law.mean_log_loss({k: jnp.asarray(v) for k, v in theta.items()}, x))


def test_clark_tokens_are_constant_for_the_joint_law_only():
    runs = load("clark2022_routing")
    assert set(ident.constant_columns(get_law("joint"), runs)) == {"tokens"}
    assert ident.constant_columns(get_law("routing"), runs) == {}
    assert ident.constant_columns(get_law("chinchilla"), load("gadre2024_overtraining")) == {}


def _fixed_tokens_values(theta, d0):
    """The reduced joint law's parameters at D = D0 from the full law's (the module doc's mapping)."""
    constants = get_law("joint").constants
    b_d, omega_d = theta["b"] * d0 ** theta["beta"], theta["omega"] + theta["zeta"] * np.log(d0)
    dense, saturated = (theta["c"] + b_d * constants[e] ** omega_d for e in ("E_start", "E_max"))
    small = {k: v for k, v in theta.items() if k not in ("b", "beta", "omega", "zeta", "c")}
    return small | {"c_D": dense, "r_D": saturated / dense, "omega_D": omega_d}


def test_reduced_joint_law_is_the_full_law_at_fixed_d():
    """b Ê^omega D0^(beta + zeta ln Ê) + c = c_D (1 + (r_D - 1) B(u)), for the published set and for a set
    whose data term grows with Ê (omega_D > 0)."""
    runs = load("clark2022_routing")
    d0 = 1.305e11
    full = get_law("joint")
    reduced = ident.reduce_law(full, "tokens", d0)
    assert set(reduced.param_names) == {"a", "alpha", "c_D", "delta", "gamma", "r_D", "omega_D"}
    at_d0 = runs.assign(tokens=d0)
    published = dict(full.coefficient_set("joint:ludziejewski2025").values)
    for theta in (published, published | {"omega": 0.9, "b": 3.0}):
        reduced_theta = _fixed_tokens_values(theta, d0)
        assert np.allclose(_mean(reduced, reduced_theta, runs), _mean(full, theta, at_d0), rtol=1e-12)
    assert _fixed_tokens_values(published, d0)["r_D"] == pytest.approx(0.914, abs=0.002)


@float64  # as a fit evaluates the law
def test_fixed_tokens_floor_is_continuous_where_it_stops_curving():
    """omega_D -> 0: the floor tends to c_D (1 + (r_D - 1) ln(Ê/E_start) / ln(E_max/E_start)), with no jump
    where the shape switches to its expansion."""
    runs = load("clark2022_routing")
    reduced = ident.reduce_law(get_law("joint"), "tokens", 1.305e11)
    theta = {"a": 40.0, "alpha": -0.2, "delta": -0.1, "gamma": 0.0, "c_D": 1.6, "r_D": 0.9}
    switch = 1e-6 / np.log(290.4521 / 2.0732)  # |omega_D u_max| = 1e-6
    omegas = (0.0, switch * (1 - 1e-6), switch * (1 + 1e-6), -switch * (1 - 1e-6), -switch * (1 + 1e-6))
    means = [_mean(reduced, theta | {"omega_D": w}, runs) for w in omegas]
    assert np.allclose(means[1], means[2], rtol=1e-12) and np.allclose(means[3], means[4], rtol=1e-12)
    for other in means[1:]:
        assert np.allclose(other, means[0], rtol=1e-6)
    law = get_law("joint")
    start, top = law.constants["E_start"], law.constants["E_max"]
    e_hat = np.asarray(e_hat_of(runs["n_experts"].to_numpy(float), start, top))
    log_n = np.log(runs["n_active"].to_numpy(float))
    floor = 1.6 * (1 - 0.1 * np.log(e_hat / start) / np.log(top / start))
    assert np.allclose(means[0], np.log(40.0 * e_hat**-0.1 * np.exp(-0.2 * log_n) + floor), rtol=1e-12)


def test_reduced_chinchilla_absorbs_the_data_term():
    frame = pd.DataFrame({"n_active": [1e7, 1e8, 1e9], "tokens": 2e10})
    full = get_law("chinchilla")
    theta = dict(full.coefficient_set("chinchilla:hoffmann2022").values)
    reduced = ident.reduce_law(full, "tokens", 2e10)
    small = {"A": theta["A"], "alpha": theta["alpha"], "E_D": theta["E"] + theta["B"] / 2e10 ** theta["beta"]}
    assert np.allclose(_mean(reduced, small, frame), _mean(full, theta, frame))


def test_constant_column_without_a_rule_is_refused_naming_the_parameters():
    frame = pd.DataFrame({"n_active": 1e8, "n_total": 6e9, "tokens": [1e9, 1e10, 1e11], "granularity": [1.0, 2.0, 4.0],
                          "n_experts": 64, "loss": [3.0, 2.8, 2.6]})
    law = get_law("granularity")
    with pytest.raises(
        BayesMoeError, match=r"column 'n_total' is constant .*\(a, alpha, b, beta, g, gamma, c\).*--prior"
    ):
        ident.prepare(law, frame)
    with pytest.warns(ident.IdentifiabilityWarning, match="identified only by the prior"):
        same, shared, record = ident.prepare(law, frame, prior="granularity:krajewski2024")
    assert same is law and record["prior_only"] == ["n_total"] and not shared.any()


def test_routing_with_groups_shares_the_dense_rows():
    runs = load("clark2022_routing")
    law, shared, record = ident.prepare(get_law("routing"), runs, group="group")
    assert law.param_names[0] == "a1" and record == {"constant": {}, "prior_only": [], "shared_dense": True}
    assert shared.sum() == 13 and set(runs.loc[shared, "group"]) == {"Dense"}
    law, shared, record = ident.prepare(get_law("routing"), runs)
    assert law.name == "routing" and law.param_names[0] == "a" and record is None


@pytest.mark.slow  # an MCMC fit of 1-2 minutes on 2 cores: run with `make test-slow`
def test_joint_fits_clark_through_the_reduced_law_and_reloads(tmp_path):
    runs = load("clark2022_routing")
    where = "clark_notebook_subset and group in ['Dense', 'S-Base']"  # 58 runs
    with pytest.warns(ident.IdentifiabilityWarning, match="tokens is constant"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bayesmoe.FitWarning)
            fit = bayesmoe.fit(runs, "joint", where=where, chains=2, warmup=300, draws=300, seed=0, progress_bar=False)
    assert fit.meta["law"] == "joint"
    assert fit.meta["reduction"]["constant"]["tokens"] == pytest.approx(1.305e11, rel=0.01)
    assert "beta" not in fit.law.param_names and "r_D" in fit.law.param_names
    draws = fit.draws()
    # the posterior is not the prior, log r_D ~ Normal(0, 0.15): the floor's dependence on Ê is learnt
    log_ratio = np.log(draws["r_D"])
    assert np.std(log_ratio) < 0.15 and abs(np.mean(log_ratio)) > 2 * np.std(log_ratio)
    pred = fit.predict(fit.runs)
    obs = fit.runs["loss"].to_numpy()
    assert 1 - np.mean((pred["q50"] - obs) ** 2) / np.var(obs) > 0.95
    fit.save(tmp_path / "j.nc")
    again = bayesmoe.load_fit(tmp_path / "j.nc")
    assert again.law.param_names == fit.law.param_names
    assert np.allclose(again.predict(fit.runs, seed=1)["q50"], fit.predict(fit.runs, seed=1)["q50"])


def test_fixed_tokens_joint_law_pools_the_dense_floor_and_shares_its_shape():
    """At D = D0 a dense group cannot tell b_D from c; the reduced law pools the floor c_D they sum to (with a)
    and shares the floor's shape (r_D, omega_D), which dense runs do not see."""
    from bayesmoe.model.specify import specify

    runs = load("clark2022_routing")
    with pytest.warns(ident.IdentifiabilityWarning, match="tokens is constant"):
        spec = specify(get_law("joint"), runs, group="group").spec
    assert spec.pooled == ("a", "c_D")
    varying = pd.DataFrame({"n_active": [1e8, 2e8, 4e8, 1e8], "tokens": [1e9, 1e10, 1e11, 1e10],
                            "n_experts": [1, 8, 8, 1], "group": ["x", "x", "y", "y"], "loss": [3.0, 2.6, 2.4, 2.9]})
    assert specify(get_law("joint"), varying, group="group").spec.pooled == ("a", "b", "c")


def test_fixed_tokens_and_one_expert_count_leave_a_constant_floor():
    frame = pd.DataFrame({"n_active": [1e7, 1e8, 1e9], "tokens": 2e10, "n_experts": 1, "loss": [3.4, 2.9, 2.6]})
    with pytest.warns(ident.IdentifiabilityWarning):
        law, _, record = ident.prepare(get_law("joint"), frame)
    assert set(record["constant"]) == {"tokens", "n_experts"}
    assert set(law.param_names) == {"a", "alpha", "c_D"}
    theta = {"a": 40.0, "alpha": -0.2, "c_D": 1.7}
    expected = np.log(40.0 * frame["n_active"].to_numpy() ** -0.2 + 1.7)
    assert np.allclose(_mean(law, theta, frame), expected, rtol=1e-9)
