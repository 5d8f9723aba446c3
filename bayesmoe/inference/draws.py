"""What a sampler returns, and the InferenceData built from it.

:class:`Settings` are the sampler settings saved with a fit; :class:`Draws` holds every site's draws
with shape (chains, draws, *site_shape); :func:`to_idata` adds what ArviZ's checks read (the pointwise
log likelihood, the posterior predictive, the prior and its predictive, the log density ``lp``) and hands
everything to the ArviZ boundary (:mod:`bayesmoe.inference.arviz_io`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import numpy as np
from numpyro import handlers
from numpyro.infer import Predictive, log_likelihood
from numpyro.infer.util import log_density

from ..model.simulate import draw_log_loss, latent_sites, likelihood_of
from . import arviz_io
from .arviz_io import az

#: prior (and prior-predictive) draws stored with every fit, one chain.
PRIOR_DRAWS = 1000
#: losses (nats) a weakly informative prior should mostly predict: above any trained LM, below log(vocabulary).
PLAUSIBLE_LOSS = (0.5, 15.0)


@dataclass(frozen=True)
class Settings:
    """Sampler settings (the CLI defaults, docs/cli.md)."""

    chains: int = 4
    warmup: int = 500
    draws: int = 1000
    seed: int = 0
    target_accept: float = 0.95
    dense_mass: bool = True
    max_tree_depth: int = 10
    progress_bar: bool | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "progress_bar"}


@dataclass(frozen=True)
class Draws:
    """Posterior draws and sampler statistics.

    Attributes:
        sites: every latent and deterministic site on the natural scale, shape (chains, draws, *site_shape).
        stats: per-draw sampler statistics under ArviZ's names (``diverging``, ``energy``, ``n_steps``,
            ``tree_depth``, ``acceptance_rate``, ``step_size``), shape (chains, draws).
        modes: the distinct local modes the mode search found, JSON-ready
            (:func:`bayesmoe.inference.nuts.describe_modes`); more than one with ``sampled`` True means
            the chains were started in different modes. Empty for Laplace draws.
    """

    sites: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    modes: tuple[dict, ...] = ()


def prior_predictive_summary(idata: az.InferenceData) -> dict:
    """What the fit's priors predict for its runs, before seeing the losses (``fit --prior-predictive``).

    Returns:
        ``range`` (:data:`PLAUSIBLE_LOSS`, nats), ``share_in_range`` (of all prior-predictive losses at
        the fitted runs), ``q05``/``q50``/``q95`` of those losses (nats) and ``observed_min``/``observed_max``.
    """
    loss = np.exp(idata.prior_predictive["log_loss"].values)
    observed = np.exp(idata.observed_data["log_loss"].values)
    low, high = PLAUSIBLE_LOSS
    q05, q50, q95 = np.quantile(loss, [0.05, 0.5, 0.95])
    return {"range": [low, high], "share_in_range": float(np.mean((loss >= low) & (loss <= high))),
            "q05": float(q05), "q50": float(q50), "q95": float(q95),
            "observed_min": float(observed.min()), "observed_max": float(observed.max())}


def to_idata(
    model: Callable, model_kwargs: dict, draws: Draws, *, dims: dict, coords: dict, seed: int = 0
) -> az.InferenceData:
    """InferenceData with every group ArviZ's checks read (``az.loo``, ``az.plot_ppc``, ``az.plot_loo_pit``).

    Groups: ``posterior`` (``draws.sites``); ``sample_stats`` (``draws.stats`` plus ``lp``, the log joint
    density of the parameters and data, nats, on the sampled sites' own scale: log A, alpha, ...);
    ``log_likelihood`` and ``posterior_predictive`` of ``log_loss`` (chain, draw, run); ``prior`` (every
    site) and ``prior_predictive`` (``log_loss``), :data:`PRIOR_DRAWS` draws in one chain; ``observed_data``.

    Args:
        model, model_kwargs: the NumPyro model the draws came from and its data.
        draws: the posterior draws, shape (chains, draws, ...).
        dims, coords: ArviZ dimensions of vector sites (``log_loss``: ``["run"]``) and their labels.
        seed: seed of the predictive and prior draws.
    """
    chains, n = next(iter(draws.sites.values())).shape[:2]
    names = latent_sites(model, model_kwargs)
    latent = {k: draws.sites[k].reshape(chains * n, *draws.sites[k].shape[2:]) for k in names}
    conditioned = handlers.condition(model, {"log_loss": model_kwargs["log_loss"]})

    def extras(key, posterior, kwargs):
        # one compiled program per model and data shape, found in the persistent cache by later fits
        def at(point):
            return likelihood_of(model, point, kwargs)

        lp = jax.vmap(lambda point: log_density(model, (), kwargs, point)[0])(posterior)
        prior = Predictive(conditioned, num_samples=PRIOR_DRAWS)(key, **kwargs)  # the log loss is conditioned on
        prior.pop("log_loss")
        return lp, jax.vmap(at)(posterior), prior, jax.vmap(at)({k: prior[k] for k in names})

    lp, fn_posterior, prior, fn_prior = jax.jit(extras)(jax.random.PRNGKey(seed), latent, model_kwargs)
    rng = np.random.default_rng(seed)
    loglik = log_likelihood(model, latent, **model_kwargs)["log_loss"]

    def per_chain(values) -> np.ndarray:
        return np.asarray(values).reshape(chains, n, *np.shape(values)[1:])

    return arviz_io.from_draws(
        draws.sites,
        sample_stats={**draws.stats, "lp": per_chain(lp)},
        log_likelihood={"log_loss": per_chain(loglik)},
        posterior_predictive={"log_loss": per_chain(draw_log_loss(fn_posterior, rng))},
        prior={k: np.asarray(v)[None] for k, v in prior.items()},
        prior_predictive={"log_loss": draw_log_loss(fn_prior, rng)[None]},
        observed_data={"log_loss": np.asarray(model_kwargs["log_loss"])},
        dims=dims,
        coords=coords,
    )
