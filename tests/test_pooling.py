"""Partial pooling: group values inside truncation bounds, centredness from the data, new groups seeded by label."""
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from numpyro.infer import Predictive
from scipy import stats

import bayesmoe
from bayesmoe.inference.centring import estimate_centring
from bayesmoe.inference.fitted import FITTED_GROUP, NEW_GROUP, POPULATION
from bayesmoe.model import ModelSpec, Prior, build_model, default_priors, pooling_map
from bayesmoe.model.simulate import DESIGNS, law_loss

LAW = bayesmoe.get_law("chinchilla")
BASE = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}


def _kwargs(runs: pd.DataFrame, groups: tuple[str, ...]) -> dict:
    index = np.array([groups.index(g) for g in runs["group"]], dtype=np.int32)
    return {"x": {k: jnp.asarray(v) for k, v in LAW.covariates(runs).items()}, "group_index": jnp.asarray(index),
            "log_loss": jnp.log(jnp.asarray(runs["loss"].to_numpy()))}


def _simulate(rng, shifts: dict[str, dict[str, float]], n: int = 40, noise: float = 0.01) -> pd.DataFrame:
    frames = []
    for name, shift in shifts.items():
        design = DESIGNS["chinchilla"](rng, n)
        loss = law_loss("chinchilla", {**BASE, **shift}, design) * np.exp(rng.normal(0, noise, n))
        frames.append(design.assign(group=name, loss=loss, run_id=[f"{name}-{i}" for i in range(n)]))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("w", [0.0, 0.3, 1.0])
def test_group_values_spread_by_tau_on_the_pooling_scale_and_stay_in_bounds(w):
    """Prior draws: alpha (truncated to [0, 2]) pooled with any centredness is mu + tau * N(0, 1) on the logit scale."""
    runs = _simulate(np.random.default_rng(0), {"g0": {}, "g1": {}, "g2": {}}, n=5)
    groups = ("g0", "g1", "g2")
    wide = {**default_priors(LAW), "alpha": Prior(0.35, 1.0, 0.0, 2.0)}   # a prior about as wide as the bounds
    spec = ModelSpec(LAW, wide, groups=groups, pooled=("alpha",), centring={"alpha": w})
    kwargs = _kwargs(runs, groups) | {"log_loss": None}
    draws = Predictive(build_model(spec), num_samples=4000)(jax.random.PRNGKey(1), **kwargs)
    values = np.asarray(draws["alpha_group"])
    assert values.shape == (4000, 3) and np.all((values > 0.0) & (values < 2.0))
    pooling = pooling_map(spec.priors["alpha"])
    eps = (np.asarray(pooling.to_pooling(values)) - np.asarray(pooling.to_pooling(draws["alpha"]))[:, None]) \
        / np.asarray(draws["alpha_tau"])[:, None]
    assert stats.kstest(eps.ravel(), "norm").pvalue > 1e-3
    # tau's prior (scaled to alpha's prior sd on the logit scale) allows spreads comparable to the bounds
    assert np.mean(np.asarray(draws["alpha_tau"]) > 0.5) > 0.3


def test_centring_is_high_for_groups_that_differ_clearly_and_about_half_for_groups_that_do_not():
    # E differs by 10-20% between groups (far beyond what each group's 40 runs leave uncertain); A and B do not differ
    shifts = {"g0": {"E": 1.5}, "g1": {"E": 1.8}, "g2": {"E": 2.1}}
    runs = _simulate(np.random.default_rng(2), shifts)
    groups = tuple(shifts)
    spec = ModelSpec(LAW, default_priors(LAW), groups=groups, pooled=("E", "A", "B"))
    centring = estimate_centring(spec, _kwargs(runs, groups), jax.random.PRNGKey(0))
    assert centring["E"] > 0.8, centring
    assert centring["A"] < 0.6 and centring["B"] < 0.6, centring


def _latent(param, values: np.ndarray) -> np.ndarray:
    return np.log(values) if param.scale == "log" else np.asarray(values)


@pytest.fixture(scope="module")
def pooled_fit():
    shifts = {"g0": {"E": 1.7}, "g1": {"E": 1.8, "alpha": 0.33}, "g2": {"E": 1.9, "alpha": 0.37}}
    runs = _simulate(np.random.default_rng(3), shifts, n=30)
    return bayesmoe.fit(runs, "chinchilla", group="group", pool=("alpha",), seed=0, **FAST)


def test_a_new_group_draws_its_own_effects_seeded_by_its_label(pooled_fit):
    fit = pooled_fit
    assert [fit.group_kind(g) for g in (None, "g1", "unseen")] == [POPULATION, FITTED_GROUP, NEW_GROUP]
    first, second = fit.draws("new-a"), fit.draws("new-b")
    assert np.array_equal(first["E"], fit.draws("new-a")["E"])          # same label, same draws
    assert not np.array_equal(fit.draws("new-a", seed=1)["E"], first["E"])
    assert np.array_equal(first["beta"], second["beta"])                 # shared parameters are the population's
    population = fit.draws()
    for name in ("E", "alpha"):
        p = fit.law.param(name)
        pooling = pooling_map(Prior(*fit.meta["priors"][name]))
        centre = np.asarray(pooling.to_pooling(_latent(p, population[name])))
        tau = fit._flat(f"{p.latent}_tau")
        eps = {label: (np.asarray(pooling.to_pooling(_latent(p, d[name]))) - centre) / tau
               for label, d in (("a", first), ("b", second))}
        # each label's effects are standard normal and independent of the other label's
        assert stats.kstest(eps["a"], "norm").pvalue > 1e-3 and stats.kstest(eps["b"], "norm").pvalue > 1e-3
        assert abs(np.corrcoef(eps["a"], eps["b"])[0, 1]) < 0.1
    assert np.all((first["alpha"] > 0) & (first["alpha"] < 2))
    # a new group's band includes the between-group spread: wider than the population value's
    assert np.std(np.log(first["E"])) > np.std(np.log(population["E"]))
