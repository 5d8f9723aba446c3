"""Default priors are weakly informative in outcome space, and simulated runs come from the model's likelihood."""
import numpy as np
import pytest
from scipy import stats

from bayesmoe.errors import BayesMoeError
from bayesmoe.model.simulate import DESIGNS, law_loss, prior_predictive, simulate_runs

#: issue 17 item 5: at least this share of the prior-predictive loss in [0.5, 15] nats on a typical design.
MIN_SHARE = 0.95


@pytest.mark.parametrize("law", ["chinchilla", "granularity", "joint", "routing"])
def test_prior_predictive_loss_mass_in_plausible_range(law):
    design = DESIGNS[law](np.random.default_rng(0), 60)
    sites, runs = prior_predictive(law, design, draws=2000, seed=1)
    loss = np.exp(sites["log_loss"])
    assert loss.shape == (2000, 60) and len(runs) == 60
    share = np.mean((loss >= 0.5) & (loss <= 15.0))
    assert share >= MIN_SHARE, f"{law}: {share:.3f} of the prior-predictive loss in [0.5, 15] nats"


def test_prior_predictive_draws_parameters_from_the_priors():
    """The parameter draws follow the priors the fit uses: log A ~ Normal(5.8, 1) for chinchilla."""
    sites, _ = prior_predictive("chinchilla", DESIGNS["chinchilla"](np.random.default_rng(0), 10), draws=4000, seed=2)
    assert stats.kstest(sites["log_A"], stats.norm(5.8, 1.0).cdf).pvalue > 1e-3
    assert np.all((sites["alpha"] >= 0) & (sites["alpha"] <= 2))
    np.testing.assert_allclose(sites["A"], np.exp(sites["log_A"]))


def test_pooled_prior_predictive_has_group_values():
    design = DESIGNS["chinchilla"](np.random.default_rng(0), 12).assign(lab=["x", "y", "z"] * 4)
    sites, _ = prior_predictive("chinchilla", design, group="lab", draws=5, seed=0)
    assert sites["E_group"].shape == (5, 3) and sites["log_E_tau"].shape == (5,)


def test_simulated_noise_is_the_student_t_likelihood():
    """Standardised residuals of log loss follow a Student-t with 4 degrees of freedom, not a Normal."""
    truth = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}
    runs = simulate_runs("chinchilla", truth, 3000, noise=0.05, seed=4)
    z = (np.log(runs["loss"].to_numpy()) - np.log(law_loss("chinchilla", truth, runs))) / 0.05
    assert stats.kstest(z, stats.t(4).cdf).pvalue > 1e-3
    assert stats.kstest(z, stats.norm.cdf).pvalue < 1e-3
    normal = simulate_runs("chinchilla", truth, 3000, noise=0.05, seed=4, likelihood="normal")
    z = (np.log(normal["loss"].to_numpy()) - np.log(law_loss("chinchilla", truth, normal))) / 0.05
    assert stats.kstest(z, stats.norm.cdf).pvalue > 1e-3


def test_simulate_runs_names_missing_parameters():
    with pytest.raises(BayesMoeError, match="needs values for beta"):
        simulate_runs("chinchilla", {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35}, 5)
