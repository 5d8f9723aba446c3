"""The routing law (Clark et al. 2022, Eq. 1): published sets against the authors' runs, the
dense-anchored form, the effective parameter count and the optimum, and recovery by a pooled fit."""
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesmoe
from bayesmoe.decide.optimum import PointPosterior, optimum
from bayesmoe.decide.optimum.routing import effective_params
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws import get_law
from bayesmoe.laws.routing import ANCHORED, paper_parameters
from bayesmoe.runs.datasets import load

LAW = get_law("routing")


def _loss(theta, frame, law=LAW):
    x = {k: jnp.asarray(v) for k, v in law.covariates(frame).items()}
    t = {k: jnp.asarray(v) for k, v in theta.items()}
    return np.exp(np.asarray(law.mean_log_loss(t, x)))


@pytest.mark.parametrize(
    "router, name, r2", [("S-Base", "sbase", 0.995), ("RL-R", "rlr", 0.979), ("Hash", "hash", 0.991)]
)
def test_published_sets_reproduce_clark_fits(router, name, r2):
    """Table 3 of Clark et al. on their notebook subset (router runs + shared dense runs): R^2 per LAWS.md §6."""
    runs = load("clark2022_routing")
    runs = runs[runs["clark_notebook_subset"].astype(bool) & runs["group"].isin([router, "Dense"])]
    values = LAW.coefficient_set(f"routing:clark2022-{name}").values
    pred = _loss(values, runs)
    obs = runs["loss"].to_numpy()
    assert 1 - np.mean((pred - obs) ** 2) / np.var(obs) == pytest.approx(r2, abs=0.0015)
    # natural logs in place of base 10 make the same coefficients meaningless (the LAWS.md trap)
    wrong = np.exp(values["a"] * np.log(runs["n_active"]) + values["d"])
    assert 1 - np.mean((wrong - obs) ** 2) / np.var(obs) < 0


def test_anchored_form_is_eq1_and_dense_runs_ignore_router_terms():
    runs = load("clark2022_routing")
    values = dict(LAW.coefficient_set("routing:clark2022-hash").values)
    s = np.log10(values["E_start"])
    anchored = {**values, "a1": values["a"] + values["c"] * s, "d1": values["d"] + values["b"] * s}
    del anchored["a"], anchored["d"]
    assert np.allclose(_loss(anchored, runs, ANCHORED), _loss(values, runs), rtol=1e-12)
    back = paper_parameters(anchored)
    assert back["a"] == pytest.approx(values["a"]) and back["d"] == pytest.approx(values["d"])
    dense = runs[runs["n_experts"] == 1]
    other = {**anchored, "b": -5.0, "c": 3.0, "E_start": 7.0, "E_max": 90.0}
    assert np.array_equal(_loss(other, dense, ANCHORED), _loss(anchored, dense, ANCHORED))


def test_effective_parameter_count_matches_the_dense_law():
    """EPC is the dense N with the same loss: the dense law at EPC gives the routed run's loss."""
    pp = PointPosterior.from_set("routing", "clark2022-sbase")
    runs = pd.DataFrame({"n_active": [1e8, 1e8, 1.3e9, 1.3e9], "n_experts": [1, 64, 64, 512], "tokens": 1.3e11})
    table = effective_params(pp, runs)
    assert table["q50"].iloc[0] == pytest.approx(1e8)  # a dense run is its own EPC
    assert (table["q05"] == table["q50"]).all()  # one draw for a published set
    dense_runs = runs.assign(n_active=table["q50"], n_experts=1)
    assert np.allclose(_loss(pp.values, dense_runs), _loss(pp.values, runs), rtol=1e-10)
    assert table["ratio"].iloc[3] > table["ratio"].iloc[2] > 1  # more experts, more effective parameters


def test_effective_params_needs_a_routing_law():
    with pytest.raises(BayesMoeError, match="needs a 'routing' fit"):
        effective_params(
            PointPosterior.from_set("chinchilla", "hoffmann2022"), pd.DataFrame({"n_active": [1e8], "tokens": [1e9]})
        )


def test_optimum_uses_many_experts_until_routing_stops_paying():
    """Eq. 1's slope in log Ê is b + c log10 N: negative (more experts help) below N = 10^(-b/c)."""
    pp = PointPosterior.from_set("routing", "clark2022-sbase")
    values = pp.values
    n_cross = 10 ** (-values["b"] / values["c"])  # 1e12 for S-Base
    tokens = 1.305e11
    result = optimum(pp, [6 * tokens * n_cross / 100, 6 * tokens * n_cross * 100])
    low, high = (b["optimal"] for b in result.quantiles())
    assert low["n_experts"]["q50"] == 512 and high["n_experts"]["q50"] == 1
    assert low["n_active"]["q50"] == pytest.approx(n_cross / 100)
    assert low["effective_params"]["q50"] > 2 * low["n_active"]["q50"]  # 2.9x at N = 1e10, 512 experts
    assert high["effective_params"]["q50"] == pytest.approx(high["n_active"]["q50"])


def _simulate(seed=0):
    """Three routers sharing one dense law and saturation (E_start, E_max), with their own b and c."""
    rng = np.random.default_rng(seed)
    truth = {"a1": -0.0796, "d1": 1.075, "E_start": 2.0, "E_max": 400.0}
    routers = {"A": (-0.11, 0.009), "B": (-0.13, 0.012), "C": (-0.09, 0.008)}
    rows = []
    for n in (1.5e7, 2.5e7, 5.5e7, 1.3e8, 3.7e8):
        rows.append({"group": "Dense", "n_active": n, "n_experts": 1})
        for g in routers:
            rows += [{"group": g, "n_active": n, "n_experts": e} for e in (2, 8, 32, 128, 512)]
    frame = pd.DataFrame(rows).assign(tokens=1.305e11)
    theta = {k: np.array([v] * len(frame)) for k, v in truth.items()}
    for i, key in enumerate(("b", "c")):
        theta[key] = np.array([routers.get(g, routers["A"])[i] for g in frame["group"]])
    mean = np.asarray(
        ANCHORED.mean_log_loss(
            {k: jnp.asarray(v) for k, v in theta.items()},
            {k: jnp.asarray(v) for k, v in ANCHORED.covariates(frame).items()},
        )
    )
    frame["loss"] = np.exp(mean + 0.003 * rng.standard_normal(len(frame)))
    return frame, truth, routers


@pytest.mark.slow  # an MCMC fit of 1-2 minutes on 2 cores: run with `make test-slow`
def test_pooled_fit_recovers_router_terms_and_shares_the_dense_law(tmp_path):
    frame, truth, routers = _simulate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayesmoe.fit(
            frame, "routing", group="group", chains=4, warmup=500, draws=1000, seed=0, progress_bar=False
        )
    assert fit.groups == ("A", "B", "C")  # the dense rows join no router group
    assert fit.meta["reduction"]["shared_dense"] is True
    assert fit.law.param_names == ("a1", "b", "c", "d1", "E_start", "E_max")
    draws = fit.draws()
    for key in ("a1", "d1"):
        value = truth[key]
        lo, hi = np.quantile(draws[key], [0.02, 0.98])
        assert lo < value < hi, key
    # The routers' b share one posterior offset through the shared saturation (E_start, E_max): their errors
    # move together, so the check is joint. The truth of (b_A, b_B, b_C, ln E_start, ln E_max) must lie
    # inside the posterior's 98% region (squared Mahalanobis distance under the draws' covariance below the
    # chi-square(5) 98% point), and each b inside its own 99.8% interval.
    joint = np.column_stack([fit.draws(g)["b"] for g in routers]
                            + [np.log(draws["E_start"]), np.log(draws["E_max"])])
    value = np.array([b for b, _c in routers.values()] + [np.log(truth["E_start"]), np.log(truth["E_max"])])
    gap = value - joint.mean(axis=0)
    assert gap @ np.linalg.solve(np.cov(joint, rowvar=False), gap) < stats.chi2.ppf(0.98, df=5)
    for g, (b, *_rest) in routers.items():
        lo, hi = np.quantile(fit.draws(g)["b"], [0.001, 0.999])
        assert lo < b < hi, g
    assert np.median(fit.draws("B")["b"]) < np.median(fit.draws("C")["b"])
    # dense predictions do not depend on the router label; the fit round-trips through a file
    dense = frame[frame["group"] == "Dense"].iloc[:2]
    p1 = fit.predict(dense.assign(group="A"), noise=False)["q50"].to_numpy()
    p2 = fit.predict(dense.assign(group="zzz"), noise=False)["q50"].to_numpy()
    assert np.allclose(p1, p2)
    fit.save(tmp_path / "r.nc")
    again = bayesmoe.load_fit(tmp_path / "r.nc")
    assert again.law.param_names == fit.law.param_names
    assert np.allclose(again.predict(frame, seed=3)["q50"], fit.predict(frame, seed=3)["q50"])
    epc = effective_params(again, frame[frame["group"] != "Dense"].iloc[:3])
    assert (epc["q05"] <= epc["q50"]).all() and (epc["q50"] <= epc["q95"]).all() and (epc["ratio"] > 1).all()
