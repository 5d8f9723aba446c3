"""Simulation-based calibration, CI-sized (benchmarks/sbc.py runs >= 100 replicates per law).

With the prior the data were drawn from, the truths' ranks among the posterior draws are uniform; with a
deliberately mis-specified prior (the irreducible loss forced about e times too high) they are not, and
the same loose test says so.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from bayesmoe.model import Prior

_SPEC = importlib.util.spec_from_file_location("sbc", Path(__file__).resolve().parents[1] / "benchmarks" / "sbc.py")
sbc = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(sbc)

SMALL = {"chains": 1, "warmup": 150, "draws": 100}
#: loose: a calibrated fit fails it once in a thousand runs.
ALPHA = 1e-3


def test_rank_and_uniformity_helpers():
    draws = np.arange(200, dtype=float).reshape(2, 100)
    rng = np.random.default_rng(0)
    assert sbc.rank(draws, -1.0, rng) == 0 and sbc.rank(draws, 1e9, rng) == sbc.L
    assert sbc.rank(draws, 99.5, rng) == sbc.L // 2  # half of each chain's thinned draws lie below
    uniform = np.random.default_rng(1).integers(0, sbc.L + 1, 400)
    assert sbc.uniformity(uniform) > ALPHA
    assert sbc.uniformity(np.zeros(40, dtype=int)) < 1e-6


def test_sbc_passes_with_the_true_prior_and_fails_with_a_wrong_one():
    calibrated = [sbc.replicate("chinchilla", seed, **SMALL) for seed in range(8)]
    for name in calibrated[0]["ranks"]:
        ranks = np.array([r["ranks"][name] for r in calibrated])
        assert sbc.uniformity(ranks, bins=4) > ALPHA, (name, ranks)
    wrong = {"E": Prior(float(np.log(2.0)) + 1.0, 0.05)}
    biased = [sbc.replicate("chinchilla", seed, fit_prior=wrong, **SMALL) for seed in range(8)]
    ranks = np.array([r["ranks"]["E"] for r in biased])
    assert sbc.uniformity(ranks, bins=4) < ALPHA, ranks


@pytest.mark.slow
def test_sbc_pooled_routing_replicate_runs():
    record = sbc.replicate("routing_pooled", 0, **SMALL)
    assert {"b_tau", "c_tau", "opt_loss", "sigma"} <= set(record["ranks"])
    assert all(0 <= r <= sbc.L for r in record["ranks"].values())
