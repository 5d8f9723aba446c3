"""A law of the user's own, end to end (fit, draws, summary, predict, save/load with a registration call),
and a table too small for the law: a clean error that leaves an existing output file alone."""
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.cli.main import main
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws import Law, Param, get_law, register_law
from bayesmoe.laws.base import column

TINY = {"chains": 2, "warmup": 150, "draws": 150, "progress_bar": False}


def _covariates(frame):
    return {"log_N": np.log(column(frame, "n_active", "power_law"))}


def _log_loss(t, x):
    return jnp.log(t["E"] + t["A"] * jnp.exp(-t["alpha"] * x["log_N"]))


POWER = Law(
    name="power_law", title="Power law in N", citation="(user law)", formula="L = E + A / N^alpha",
    n_counts="N = n_active", required_columns=("n_active",), covariates=_covariates, log_loss=_log_loss,
    params=(
        Param("E", "log", float(np.log(2.0)), 0.5, role="level", doc="irreducible loss"),
        Param("A", "log", 4.0, 1.0, role="level", doc="coefficient"),
        Param("alpha", "linear", 0.3, 0.1, low=0.0, high=2.0, doc="exponent"),
    ),
)


@pytest.fixture(scope="module")
def runs():
    rng = np.random.default_rng(3)
    n = np.exp(rng.uniform(np.log(1e6), np.log(1e10), 30))
    loss = 2.0 + 150.0 * n ** -0.3
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(30)], "n_active": n, "tokens": 1e10,
                         "loss": loss * np.exp(rng.normal(0, 0.01, 30))})


def test_user_law_end_to_end(runs, tmp_path):
    fit = bayesmoe.fit(runs, POWER, seed=0, **TINY)
    assert fit.law is POWER and get_law("power_law") is POWER
    assert set(fit.draws()) >= {"E", "A", "alpha", "sigma"}
    summary = fit.summary()
    assert list(summary.index) == ["E", "A", "alpha", "sigma"]
    assert summary.loc["alpha", "q05"] < 0.3 < summary.loc["alpha", "q95"]
    predicted = fit.predict(runs.head(3))
    assert np.all(np.abs(predicted["q50"] / runs["loss"].head(3).to_numpy() - 1) < 0.05)
    again = bayesmoe.load_fit(fit.save(tmp_path / "power.nc"))
    pd.testing.assert_frame_equal(again.summary(), summary)


def test_register_law_rejects_a_package_id_and_non_laws():
    from dataclasses import replace

    with pytest.raises(BayesMoeError, match="taken by a bayesmoe law"):
        register_law(replace(POWER, name="chinchilla"))
    with pytest.raises(BayesMoeError, match="needs a bayesmoe.laws.Law"):
        register_law("chinchilla")
    assert register_law(get_law("chinchilla")) is get_law("chinchilla")


def test_too_few_runs_is_a_clean_error_and_keeps_the_output(tmp_path, capsys, runs):
    table = tmp_path / "runs.csv"
    runs.head(4).assign(tokens=np.geomspace(1e9, 1e11, 4)).to_csv(table, index=False)
    out = tmp_path / "fit.nc"
    out.write_bytes(b"an earlier fit")
    code = main(["fit", str(table), "--law", "chinchilla", "--out", str(out), "--chains", "1"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert "4 run(s)" in err and "5 parameters" in err and str(table) in err
    assert out.read_bytes() == b"an earlier fit"
    with pytest.raises(BayesMoeError, match="1 run"):
        bayesmoe.fit(runs.head(1), "chinchilla", **TINY)
