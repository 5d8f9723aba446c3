"""Starts that reveal modes: a posterior with two equal, separated modes is sampled in both and warned about."""
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayesmoe
import bayesmoe.laws
from bayesmoe.inference import FitWarning
from bayesmoe.inference.draws import Settings
from bayesmoe.inference.mode import ModeFinder, _cluster, _EndPoint
from bayesmoe.inference.nuts import run_nuts
from bayesmoe.laws.base import Law, Param, column
from bayesmoe.model import ModelSpec, build_model, default_priors

#: the truth's |s|; the likelihood depends on s^2 only, so +S and -S fit equally well.
S = 1.0


def _covariates(frame):
    return {"x": column(frame, "n_active", "two_mode")}


def _log_loss(theta, x):
    return jnp.log(1.0 + theta["s"] ** 2 * x["x"])


#: a law whose likelihood is symmetric in the sign of ``s`` (and a prior symmetric about 0).
TWO_MODE = Law(name="two_mode", title="log L = log(1 + s^2 x)", citation="test", formula="L = 1 + s^2 x",
               n_counts="x = n_active", params=(Param("s", "linear", 0.0, 2.0, doc="signed slope"),),
               required_columns=("n_active",), covariates=_covariates, log_loss=_log_loss)


def _runs(n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, n)
    loss = (1.0 + S**2 * x) * np.exp(rng.normal(0.0, 0.01, n))
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "n_active": x, "tokens": 1e9, "loss": loss})


def _kwargs(runs: pd.DataFrame) -> dict:
    return {"x": {k: jnp.asarray(v) for k, v in _covariates(runs).items()},
            "group_index": jnp.zeros(len(runs), jnp.int32), "log_loss": jnp.log(jnp.asarray(runs["loss"].to_numpy()))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_search_finds_both_modes_and_the_chains_start_in_both(seed):
    runs = _runs()
    model = build_model(ModelSpec(TWO_MODE, default_priors(TWO_MODE)))
    mode = ModeFinder(model, _kwargs(runs), jax.random.PRNGKey(seed))(_kwargs(runs))
    assert len(mode.modes) == 2
    signs = sorted(float(np.sign(mode.postprocess(mode.unravel(jnp.asarray(m.flat)))["s"])) for m in mode.modes)
    assert signs == [-1.0, 1.0]
    draws = run_nuts(model, _kwargs(runs), Settings(chains=4, warmup=150, draws=100, seed=seed, progress_bar=False))
    chain_means = draws.sites["s"].mean(axis=1)
    assert (chain_means > 0.9 * S).any() and (chain_means < -0.9 * S).any(), chain_means
    assert [m["sampled"] for m in draws.modes] == [True, True]
    assert sorted(c for m in draws.modes for c in m["chains"]) == [0, 1, 2, 3]
    assert sorted(np.sign(m["location"]["s"]) for m in draws.modes) == [-1.0, 1.0]


def test_a_fit_of_a_two_mode_posterior_warns_and_records_the_modes(monkeypatch, tmp_path):
    monkeypatch.setattr(bayesmoe.laws, "LAWS", (*bayesmoe.laws.LAWS, TWO_MODE))   # known by id when the fit is read
    with pytest.warns(FitWarning) as caught:
        fit = bayesmoe.fit(_runs(), TWO_MODE, chains=4, warmup=150, draws=100, seed=0, progress_bar=False)
    messages = " ".join(str(w.message) for w in caught)
    assert "2 separate modes" in messages and "R-hat" in messages
    loaded = bayesmoe.load_fit(fit.save(tmp_path / "two_mode.nc"))
    locations = sorted(m["location"]["s"] for m in loaded.meta["modes"])
    assert locations[0] == pytest.approx(-S, abs=0.05) and locations[1] == pytest.approx(S, abs=0.05)
    assert loaded.meta["modes"][0]["log_density"] == pytest.approx(loaded.meta["modes"][1]["log_density"], abs=1e-3)


def test_end_points_are_told_apart_by_location_not_by_value():
    hessian = np.diag([1e4, 1e4])   # Laplace sd 0.01 in each coordinate
    free = np.ones(2, dtype=bool)
    same_value_far = [_EndPoint(np.array([1.0, 0.0]), 3.0, hessian), _EndPoint(np.array([-1.0, 0.0]), 3.0, hessian)]
    assert len(_cluster(same_value_far, free)) == 2
    # 2 Laplace sds apart: the same mode; a saddle (no positive-definite Hessian) is no mode at all
    near = [_EndPoint(np.array([1.0, 0.0]), 3.0, hessian), _EndPoint(np.array([1.02, 0.0]), 3.1, hessian),
            _EndPoint(np.array([0.0, 0.0]), 2.0, None)]
    (best, count), = _cluster(near, free)
    assert count == 2 and best.f == 3.0
