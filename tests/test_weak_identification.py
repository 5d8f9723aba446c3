"""A parameter the data cannot identify is named, with why and what to do, instead of silently given bands."""
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayesmoe
import bayesmoe.laws
from bayesmoe.laws.base import Law, Param, column
from bayesmoe.model import IdentifiabilityWarning


def _covariates(frame):
    return {"x": column(frame, "n_active", "slope_and_idle")}


def _log_loss(theta, x):
    return jnp.log(1.0 + theta["s"] * x["x"])   # q does not enter: the data say nothing about it


SLOPE_AND_IDLE = Law(name="slope_and_idle", title="log L = log(1 + s x)", citation="test", formula="L = 1 + s x",
                     n_counts="x = n_active",
                     params=(Param("s", "log", 0.0, 1.0, doc="slope"), Param("q", "linear", 0.0, 1.0, doc="idle")),
                     required_columns=("n_active",), covariates=_covariates, log_loss=_log_loss)


def test_a_parameter_the_likelihood_ignores_is_named_and_the_identified_one_is_not(monkeypatch):
    monkeypatch.setattr(bayesmoe.laws, "LAWS", (*bayesmoe.laws.LAWS, SLOPE_AND_IDLE))   # known by id when read back
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, 30)
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(30)], "n_active": x, "tokens": 1e9,
                         "loss": (1.0 + 2.0 * x) * np.exp(rng.normal(0.0, 0.01, 30))})
    with pytest.warns(IdentifiabilityWarning, match="barely identify q") as caught:
        fit = bayesmoe.fit(runs, SLOPE_AND_IDLE, chains=2, warmup=200, draws=300, seed=0, progress_bar=False)
    assert set(fit.weakly_identified()) == {"q"}
    assert 0.8 < fit.weakly_identified()["q"] < 1.2   # its posterior is its prior
    message = next(str(w.message) for w in caught if "barely identify" in str(w.message))
    assert "--prior" in message and "without these terms" in message
    assert not any("barely" in problem for problem in fit.problems())   # not a sampler problem
