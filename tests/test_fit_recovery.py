"""Recovery of known parameters from data simulated by each law (truth inside the posterior intervals)."""
import numpy as np
import pytest
from conftest import FAST
from scipy.stats import chi2

import bayesmoe
from bayesmoe.model.simulate import simulate_runs

SETS = {"chinchilla": "besiroglu2024", "granularity": "krajewski2024", "joint": "ludziejewski2025"}


def interval_misses(fit, truth, lo, hi):
    table = fit.summary()
    misses = []
    for name, value in truth.items():
        q = np.quantile(fit.draws()[name], [lo, hi])
        if not q[0] <= value <= q[1]:
            misses.append(f"{name}={value:g} outside [{q[0]:.4g}, {q[1]:.4g}] (median {table.loc[name, 'q50']:.4g})")
    return misses


@pytest.mark.parametrize("law", sorted(SETS))
def test_truth_inside_posterior_intervals(law):
    truth = dict(bayesmoe.get_law(law).coefficient_set(SETS[law]).values)
    runs = simulate_runs(law, truth, 150, noise=0.01, seed=11)
    fit = bayesmoe.fit(runs, law, seed=1, **FAST)
    assert fit.divergences == 0
    assert max(fit.summary()["r_hat"]) < 1.05
    # Marginal 90% intervals miss correlated parameters together (e.g. b and beta), so the 90% check is
    # on the joint region: the truth's Mahalanobis distance on the latent scale against chi2(k) at 0.9.
    law_ = bayesmoe.get_law(law)
    draws = fit.draws()
    latent = np.stack([np.log(draws[p.name]) if p.scale == "log" else draws[p.name] for p in law_.params], axis=1)
    point = np.array([p.to_latent(truth[p.name]) for p in law_.params])
    delta = point - latent.mean(axis=0)
    distance = float(delta @ np.linalg.solve(np.cov(latent, rowvar=False), delta))
    assert distance < chi2.ppf(0.9, len(law_.params)), (distance, interval_misses(fit, truth, 0.05, 0.95))
    assert not interval_misses(fit, truth, 0.005, 0.995)


def test_more_runs_give_tighter_posteriors():
    truth = dict(bayesmoe.get_law("chinchilla").coefficient_set("besiroglu2024").values)
    runs = simulate_runs("chinchilla", truth, 240, noise=0.01, seed=3)
    few = bayesmoe.fit(runs.iloc[:30], "chinchilla", seed=2, **FAST).summary()
    many = bayesmoe.fit(runs, "chinchilla", seed=2, **FAST).summary()
    for name in ("alpha", "beta", "E"):
        assert many.loc[name, "sd"] < 0.8 * few.loc[name, "sd"], name
