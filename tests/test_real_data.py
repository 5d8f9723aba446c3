"""Out-of-sample checks on real runs (issue 11), a smaller version of ``benchmarks/real_data.py``.

Slow (several NUTS fits): run with ``pytest -m slow tests/test_real_data.py``. Thresholds are the public
anchors, not the goals: the held-out R^2 on Clark et al.'s 1.3B runs must beat the paper's own law
refit by least squares (0.70), and Gadre et al.'s 1.4B/6.9B runs must be predicted within a few percent.
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "real_data.py"
SETTINGS = dict(chains=2, warmup=300, draws=300, seed=0)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("real_data", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_clark_heldout_largest_size(bench):
    result = bench.clark(SETTINGS)
    assert result["n_train"] == 195 and result["n_test"] == 28
    stacked = result["laws"]["stacked"]
    assert stacked["r2"] > 0.70  # the paper's law refit by least squares on this split
    assert stacked["covered"] >= 20
    assert stacked["max_abs_error"] < 0.08
    assert np.isclose(sum(result["weights"].values()), 1.0)
    chosen = {r["chosen"] for r in result["laws"].values()}
    assert any("pooled by router" in c for c in chosen)


@pytest.mark.slow
def test_gadre_heldout_large_models(bench):
    result = bench.gadre(SETTINGS)
    assert result["n_train"] == 95 and result["n_test"] == 9
    rel = np.abs(result["rel_error"])
    assert np.median(rel) < 0.03
    assert result["covered"] >= 6
