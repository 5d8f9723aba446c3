"""Identifiability (issue 11): a constant covariate is detected, absorbed into a reduced law (recorded in
the fit and rebuilt on load), relied on an informative prior, or refused with the parameters named."""
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws import get_law
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


def test_reduced_joint_law_is_the_full_law_at_fixed_d():
    """b Ê^omega D0^(beta + zeta ln Ê) = b_D Ê^omega_D with b_D = b D0^beta, omega_D = omega + zeta ln D0."""
    runs = load("clark2022_routing")
    d0 = 1.305e11
    full = get_law("joint")
    reduced = ident.reduce_law(full, "tokens", d0)
    assert set(reduced.param_names) == {"a", "alpha", "c", "delta", "gamma", "b_D", "omega_D"}
    theta = dict(full.coefficient_set("joint:ludziejewski2025").values)
    small = {k: v for k, v in theta.items() if k not in ("b", "beta", "omega", "zeta")}
    small["b_D"] = theta["b"] * d0 ** theta["beta"]
    small["omega_D"] = theta["omega"] + theta["zeta"] * np.log(d0)
    at_d0 = runs.assign(tokens=d0)
    assert np.allclose(_mean(reduced, small, runs), _mean(full, theta, at_d0), rtol=1e-12)


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
    assert "beta" not in fit.law.param_names and "b_D" in fit.law.param_names
    draws = fit.draws()
    # the posterior is not the prior: omega_D prior sd ~1.4; the E-dependence of the data term is learnt
    assert np.std(draws["omega_D"]) < 0.5
    pred = fit.predict(fit.runs)
    obs = fit.runs["loss"].to_numpy()
    assert 1 - np.mean((pred["q50"] - obs) ** 2) / np.var(obs) > 0.95
    fit.save(tmp_path / "j.nc")
    again = bayesmoe.load_fit(tmp_path / "j.nc")
    assert again.law.param_names == fit.law.param_names
    assert np.allclose(again.predict(fit.runs, seed=1)["q50"], fit.predict(fit.runs, seed=1)["q50"])


def test_fixed_tokens_joint_law_shares_its_irreducible_loss_across_groups():
    """At D = D0 the dense group's b_D and c are both constant offsets: pooled per group, only their sum is
    identified. The reduced law shares c (the text's irreducible loss) and pools a and b_D; pool= overrides."""
    from bayesmoe.model.specify import specify

    runs = load("clark2022_routing")
    with pytest.warns(ident.IdentifiabilityWarning, match="c shared by every group"):
        spec = specify(get_law("joint"), runs, group="group").spec
    assert spec.pooled == ("a", "b_D")
    assert spec.law.param("c").role == "shared" and spec.law.param("b_D").role == "level"
    with pytest.warns(ident.IdentifiabilityWarning):
        assert "c" in specify(get_law("joint"), runs, group="group", pool=("c",)).spec.pooled
    varying = pd.DataFrame({"n_active": [1e8, 2e8, 4e8, 1e8], "tokens": [1e9, 1e10, 1e11, 1e10],
                            "n_experts": [1, 8, 8, 1], "group": ["x", "x", "y", "y"], "loss": [3.0, 2.6, 2.4, 2.9]})
    assert specify(get_law("joint"), varying, group="group").spec.pooled == ("a", "b", "c")

