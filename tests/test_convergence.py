"""Every fit the project ships or demos converges in default settings (issue 17): R-hat <= 1.01, bulk and
tail ESS >= 400, no divergent transitions, under 5% of draws at the maximum tree depth.

Real-scale fits of several minutes each on 2 cores: run with ``make test-slow``.

The demo's granularity fit of our sweep (the 70 runs below the top budget) adapts for 1000 warmup steps
(``bayesmoe.cli.demo.GRANULARITY_WARMUP``): with the default 500 its ``alpha`` ended at R-hat 1.011 (seed 0).
"""
import warnings

import pytest
from conftest import shared_file

import bayesmoe
from bayesmoe.cli.demo import GRANULARITY_WARMUP, top_budget_runs
from bayesmoe.model import IdentifiabilityWarning

#: name -> (runs, fit arguments) of each shipped or demoed fit.
FITS = {
    "clark_pooled": ("dataset:clark2022_routing",
                     {"law": "routing", "group": "group", "where": "routing_frequency == 0.5 and top_k == 1"}),
    "gadre_pooled": ("dataset:gadre2024_overtraining", {"law": "chinchilla", "group": "group"}),
    "sweep_granularity": ("dataset:trainer_cpu_sweep", {"law": "granularity"}),
    "sweep_joint": ("dataset:trainer_cpu_sweep", {"law": "joint"}),
    # the demo's fits of our sweep hold out its top budget
    "demo_granularity": ("dataset:trainer_cpu_sweep", {"law": "granularity", "holdout_top_compute": top_budget_runs(),
                                                        "warmup": GRANULARITY_WARMUP}),
    "demo_joint": ("dataset:trainer_cpu_sweep", {"law": "joint", "holdout_top_compute": top_budget_runs()}),
}


def _assert_converged(fit):
    table = fit.summary()
    assert table["r_hat"].max() <= 1.01, table["r_hat"].idxmax()
    assert table["ess_bulk"].min() >= 400, table["ess_bulk"].idxmin()
    assert table["ess_tail"].min() >= 400, table["ess_tail"].idxmin()
    assert fit.divergences == 0
    assert fit.tree_depth_saturation < 0.05
    assert fit.problems() == []   # sampler diagnostics; what the data leave to the prior is fit.identification()


@pytest.mark.slow
@pytest.mark.parametrize("name", FITS)
def test_shipped_fit_converges_in_default_settings(name):
    runs, arguments = FITS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)   # the routing fit samples the dense-anchored law
        fit = bayesmoe.fit(runs, progress_bar=False, **arguments)
    _assert_converged(fit)


@pytest.mark.slow
def test_epoch_chinchilla_converges_in_default_settings():
    fit = bayesmoe.fit(shared_file("chinchilla-epoch", "svg_extracted_data.csv"), "chinchilla", exclude_top_loss=5,
                       progress_bar=False)
    _assert_converged(fit)
