"""The real Epoch AI extraction of the Chinchilla runs: Besiroglu et al. 2024's estimates inside our 90% intervals."""
import numpy as np
from conftest import shared_file

import bayesmoe

BESIROGLU_2024 = {"E": 1.81686, "A": 482.006, "B": 2085.434, "alpha": 0.34781, "beta": 0.36585}


def test_besiroglu_estimates_inside_90_percent_intervals():
    path = shared_file("chinchilla-epoch", "svg_extracted_data.csv")
    fit = bayesmoe.fit(
        path, "chinchilla", exclude_top_loss=5, chains=2, warmup=500, draws=500, seed=0, progress_bar=False
    )
    assert fit.meta["n_runs"] == 240
    assert fit.divergences == 0
    draws = fit.draws()
    for name, value in BESIROGLU_2024.items():
        lo, hi = np.quantile(draws[name], [0.05, 0.95])
        assert lo <= value <= hi, f"{name}: {value} not in [{lo:.4g}, {hi:.4g}]"
