"""ArviZ's plots used by the report (ArviZ 0.2x API); each draws on axes it is given or returns the Figure."""
from __future__ import annotations

import warnings

with warnings.catch_warnings():  # ArviZ 0.2x announces its 1.x refactor on import
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az
import numpy as np
from matplotlib.axes import Axes


def _figure_of(axes):
    return np.ravel(np.asarray(axes, dtype=object))[0].figure


def plot_rank(idata: az.InferenceData, var_names: list[str]):
    """Rank plots per parameter: roughly uniform bars in every chain mean the chains agree."""
    rows = int(np.ceil(len(var_names) / 4))
    fig = _figure_of(az.plot_rank(idata, var_names=var_names, figsize=(10, 2.4 * rows), show=False))
    fig.tight_layout()
    return fig


def plot_trace(idata: az.InferenceData, var_names: list[str]):
    """Trace plots (density and draws per chain), divergent draws marked at the bottom."""
    fig = _figure_of(az.plot_trace(idata, var_names=var_names, compact=True, figsize=(10, 1.7 * len(var_names)),
                                   trace_kwargs={"linewidth": 0.6}, show=False))
    fig.tight_layout()
    return fig


def plot_loo_pit(idata: az.InferenceData, y_hat: np.ndarray, ax: Axes) -> None:
    """LOO-PIT ECDF difference of observed log loss against predictive draws ``y_hat`` (run, sample)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        az.plot_loo_pit(idata, y="log_loss", y_hat=y_hat, ecdf=True, ax=ax, show=False)


def plot_khat(loo_result: az.ELPDData, ax: Axes) -> None:
    """Pareto k of each run's PSIS-LOO weights (k > 0.7: the run is influential, LOO unreliable there)."""
    az.plot_khat(loo_result, ax=ax, show=False)


def plot_prior_posterior(posterior: np.ndarray, prior: np.ndarray, ax: Axes, *, label: str) -> None:
    """Density of ``prior`` draws (line) and ``posterior`` draws (filled) on one axis, shapes (S,)."""
    az.plot_dist(prior, ax=ax, color="0.45", label="prior", plot_kwargs={"linestyle": "--"}, show=False)
    az.plot_dist(posterior, ax=ax, color="C0", label="posterior", fill_kwargs={"alpha": 0.35}, show=False)
    ax.set_title(label)
