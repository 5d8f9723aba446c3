"""Mode finding and the Laplace approximation against known truth and against NUTS."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayesmoe
from bayesmoe.errors import BayesMoeError
from bayesmoe.inference import find_map
from bayesmoe.model import ModelSpec, build_model
from bayesmoe.model.priors import default_priors
from bayesmoe.model.simulate import simulate_runs

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}


@pytest.fixture(scope="module")
def runs():
    return simulate_runs("chinchilla", TRUTH, 150, noise=0.005, seed=3)


@pytest.fixture(scope="module")
def fits(runs):
    kw = {"chains": 2, "draws": 1000, "progress_bar": False}
    return {m: bayesmoe.fit(runs, "chinchilla", method=m, warmup=300, **kw) for m in ("laplace", "nuts")}


def test_map_lands_near_truth_from_every_start(runs):
    law = bayesmoe.get_law("chinchilla")
    model = build_model(ModelSpec(law, default_priors(law)))
    kwargs = {"x": {k: jnp.asarray(v) for k, v in law.covariates(runs).items()},
              "group_index": jnp.zeros(len(runs), jnp.int32), "log_loss": jnp.log(jnp.asarray(runs["loss"].to_numpy()))}
    mode = find_map(model, kwargs, jax.random.PRNGKey(0))
    natural = mode.postprocess(mode.z)
    assert mode.agree == mode.starts
    assert abs(float(natural["E"]) / TRUTH["E"] - 1) < 0.03
    assert abs(float(natural["alpha"]) - TRUTH["alpha"]) < 0.03
    assert abs(float(natural["beta"]) - TRUTH["beta"]) < 0.03
    assert np.all(np.linalg.eigvalsh(np.asarray(mode.covariance)) > 0)


def test_laplace_has_nuts_variables_and_no_divergences(fits):
    assert set(fits["laplace"].idata.posterior.data_vars) == set(fits["nuts"].idata.posterior.data_vars)
    assert fits["laplace"].divergences == 0
    assert fits["laplace"].meta["method"] == "laplace"
    assert fits["laplace"].idata.posterior.sizes["draw"] == 1000


def test_laplace_intervals_close_to_nuts(fits):
    nuts, lap = fits["nuts"].summary(), fits["laplace"].summary()
    width = nuts["q95"] - nuts["q05"]
    for name in ("E", "A", "B", "alpha", "beta"):
        assert abs(lap.loc[name, "q05"] - nuts.loc[name, "q05"]) < 0.2 * width[name], name
        assert abs(lap.loc[name, "q95"] - nuts.loc[name, "q95"]) < 0.2 * width[name], name


def test_unknown_method_is_a_clean_error(runs):
    with pytest.raises(BayesMoeError, match="--method"):
        bayesmoe.fit(runs, "chinchilla", method="vi")
