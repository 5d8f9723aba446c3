"""The routing law with an irreducible loss (``routing_irreducible``, bayesmoe/laws/routing_floor.py).

Checks: registration, the mean function against the formula written out by hand, the dense-anchored form
against the paper's parameters, priors weakly informative in outcome space, and recovery of a simulated
routed sweep (shared dense law and floor, router-specific b) by a fit pooled by router, including its
prediction of larger runs than it saw.
"""
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws import get_law, law_names, register_law
from bayesmoe.laws.routing_floor import ANCHORED, LAW
from bayesmoe.model.simulate import DESIGNS, prior_predictive

TRUTH = {"a1": -0.2, "d1": 1.7, "E_irr": 1.6, "E_start": 2.0, "E_max": 300.0, "c": 0.01}
B_BY_ROUTER = {"R1": -0.2, "R2": -0.1}


def e_hat(e, start, top):
    return 1.0 / (1.0 / (e - 1.0 + 1.0 / (1.0 / start - 1.0 / top)) + 1.0 / top)


def true_loss(n_active, experts, b):
    """L = E_irr + 10^(a1 lN + b u + c lN u + d1), u = log10(Ehat / E_start), written out with NumPy."""
    u = np.where(experts > 1, np.log10(e_hat(experts, TRUTH["E_start"], TRUTH["E_max"]) / TRUTH["E_start"]), 0.0)
    ln = np.log10(n_active)
    return TRUTH["E_irr"] + 10 ** (TRUTH["a1"] * ln + b * u + TRUTH["c"] * ln * u + TRUTH["d1"])


def simulate(sizes, seed=0, sigma=0.004):
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        rows.append({"group": "Dense", "n_active": n, "n_experts": 1, "b": 0.0})
        for router, b in B_BY_ROUTER.items():
            rows += [{"group": router, "n_active": n, "n_experts": e, "b": b} for e in (4, 16, 64, 256)]
    frame = pd.DataFrame(rows)
    frame["loss"] = true_loss(frame["n_active"].to_numpy(float), frame["n_experts"].to_numpy(float),
                              frame["b"].to_numpy(float)) * np.exp(sigma * rng.standard_normal(len(frame)))
    frame["run_id"] = [f"r{i}" for i in range(len(frame))]
    frame["tokens"] = 1.3e11
    return frame.drop(columns="b")


def test_registered_and_id_reserved():
    assert "routing_irreducible" in law_names() and get_law("routing_irreducible") is LAW
    assert get_law("routing").param_names == ("a", "b", "c", "d", "E_start", "E_max")  # routing unchanged
    with pytest.raises(BayesMoeError, match="taken"):
        register_law(type(LAW)(**{**LAW.__dict__, "dense_anchored": None}))


def test_mean_is_floor_plus_clark_power_law():
    frame = simulate([1e7, 1e8], seed=1)
    n, e = frame["n_active"].to_numpy(float), frame["n_experts"].to_numpy(float)
    b = np.where(frame["group"] == "R1", -0.2, -0.1)
    x = LAW.covariates(frame)
    start = np.log10(TRUTH["E_start"])
    paper = {"a": TRUTH["a1"] - TRUTH["c"] * start, "b": b, "c": TRUTH["c"], "d": TRUTH["d1"] - b * start,
             "E_irr": TRUTH["E_irr"], "E_start": TRUTH["E_start"], "E_max": TRUTH["E_max"]}
    np.testing.assert_allclose(np.exp(np.asarray(LAW.mean_log_loss(paper, x))), true_loss(n, e, b), rtol=1e-9)
    anchored = {**TRUTH, "b": b}
    np.testing.assert_allclose(np.asarray(ANCHORED.mean_log_loss(anchored, x)),
                               np.asarray(LAW.mean_log_loss(paper, x)), rtol=1e-9)
    # E_irr -> 0 gives Clark et al.'s law (routing), in natural log loss
    tiny = {**paper, "E_irr": 1e-12}
    np.testing.assert_allclose(np.asarray(LAW.mean_log_loss(tiny, x)),
                               np.asarray(get_law("routing").mean_log_loss(paper, x)), atol=1e-9)


def test_priors_weakly_informative_in_outcome_space():
    design = DESIGNS["routing"](np.random.default_rng(0), 200)
    sites, _ = prior_predictive("routing_irreducible", design, draws=1000, seed=3)
    loss = np.exp(sites["log_loss"])
    assert np.mean((loss > 0.5) & (loss < 15)) >= 0.95


def test_pooled_fit_recovers_floor_and_extrapolates():
    frame = simulate(np.logspace(7, 9, 7), seed=2)
    train, test = frame[frame["n_active"] < 5e8], frame[frame["n_active"] >= 5e8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = bayesmoe.fit(train, "routing_irreducible", group="group", chains=2, warmup=200, draws=200, seed=0,
                              progress_bar=False)
    assert fitted.meta["reduction"]["shared_dense"]  # the dense-anchored form was sampled
    draws = fitted.draws()
    assert abs(np.median(draws["E_irr"]) - TRUTH["E_irr"]) < 0.3
    assert abs(np.median(draws["a1"]) - TRUTH["a1"]) < 0.05
    # router-specific b recovered in order (R1 helps more)
    assert set(fitted.meta["groups"]) == {"R1", "R2"}  # dense runs join no router
    b1, b2 = (np.median(fitted.draws(router)["b"]) for router in ("R1", "R2"))
    assert b1 < b2 and abs(b1 - B_BY_ROUTER["R1"]) < 0.05 and abs(b2 - B_BY_ROUTER["R2"]) < 0.05
    predicted = np.median(np.exp(fitted.log_mean(test)), axis=0)
    np.testing.assert_allclose(predicted, test["loss"].to_numpy(), rtol=0.02)
