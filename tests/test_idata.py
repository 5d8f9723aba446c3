"""A saved fit is a complete InferenceData: ArviZ's own checks (az.loo, az.plot_ppc, az.plot_loo_pit) work on it."""
import warnings

import matplotlib
import numpy as np
import pytest

import bayesmoe
from bayesmoe.model.simulate import simulate_runs

matplotlib.use("Agg")
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az

TINY = {"chains": 2, "warmup": 150, "draws": 150, "progress_bar": False}
TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}
GROUPS = {"posterior", "posterior_predictive", "log_likelihood", "sample_stats", "prior", "prior_predictive",
          "observed_data"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    runs = simulate_runs("chinchilla", TRUTH, 40, noise=0.02, seed=5)
    path = tmp_path_factory.mktemp("idata") / "fit.nc"
    bayesmoe.fit(runs, "chinchilla", seed=1, **TINY).save(path)
    return path


def test_saved_fit_has_every_group_and_arviz_checks_run(saved):
    idata = az.from_netcdf(saved)
    assert GROUPS <= set(idata.groups())
    n = idata.observed_data["log_loss"].size
    assert idata.posterior_predictive["log_loss"].shape == (2, 150, n)
    assert idata.prior_predictive["log_loss"].shape[:1] == (1,) and "log_A" in idata.prior
    assert np.isfinite(idata.sample_stats["lp"].values).all()
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo) and loo.pareto_k.shape == (n,)
    assert az.plot_ppc(idata, show=False) is not None
    assert az.plot_loo_pit(idata, y="log_loss", show=False) is not None


def test_posterior_predictive_covers_the_observed_runs(saved):
    """The 90% posterior-predictive interval of each run's log loss covers most observed runs; the prior's
    is far wider."""
    idata = az.from_netcdf(saved)
    observed = idata.observed_data["log_loss"].values
    draws = idata.posterior_predictive["log_loss"].values.reshape(-1, observed.size)
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    assert np.mean((observed >= lo) & (observed <= hi)) >= 0.75
    prior = idata.prior_predictive["log_loss"].values.reshape(-1, observed.size)
    assert np.median(np.ptp(np.quantile(prior, [0.05, 0.95], axis=0), axis=0)) > 5 * np.median(hi - lo)


def test_lp_is_the_log_joint_density(saved):
    """lp rises with the likelihood: across draws it correlates with the summed pointwise log likelihood."""
    idata = az.from_netcdf(saved)
    lp = idata.sample_stats["lp"].values.ravel()
    loglik = idata.log_likelihood["log_loss"].values.reshape(lp.size, -1).sum(axis=1)
    assert np.corrcoef(lp, loglik)[0, 1] > 0.5


def test_laplace_fit_has_the_same_groups(tmp_path):
    runs = simulate_runs("chinchilla", TRUTH, 40, noise=0.02, seed=5)
    path = bayesmoe.fit(runs, "chinchilla", method="laplace", **TINY).save(tmp_path / "laplace.nc")
    assert GROUPS <= set(az.from_netcdf(path).groups())


def test_fit_prior_predictive_flag(tmp_path, capsys):
    import json

    from bayesmoe.cli.main import main

    table = tmp_path / "runs.csv"
    simulate_runs("chinchilla", TRUTH, 30, noise=0.02, seed=6).to_csv(table, index=False)
    args = ["fit", str(table), "--law", "chinchilla", "--out", str(tmp_path / "f.nc"), "--chains", "1",
            "--warmup", "100", "--draws", "100", "--prior-predictive"]
    assert main([*args, "--json"]) == 0
    prior = json.loads(capsys.readouterr().out)["prior_predictive"]
    assert prior["range"] == [0.5, 15.0] and prior["share_in_range"] >= 0.95
    assert prior["q05"] < prior["observed_min"] <= prior["observed_max"] < prior["q95"]
    assert main(args) == 0
    assert "prior predictive at these runs" in capsys.readouterr().out
