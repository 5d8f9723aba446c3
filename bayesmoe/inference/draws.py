"""What a sampler returns, and the InferenceData built from it.

:class:`Settings` are the sampler settings saved with a fit; :class:`Draws` holds every site's draws
with shape (chains, draws, *site_shape); :func:`to_idata` adds the pointwise log likelihood and hands
everything to the ArviZ boundary (:mod:`bayesmoe.inference.arviz_io`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpyro.infer import log_likelihood

from . import arviz_io
from .arviz_io import az


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
    """

    sites: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]


def to_idata(model: Callable, model_kwargs: dict, draws: Draws, *, dims: dict, coords: dict) -> az.InferenceData:
    """InferenceData: posterior, sample_stats, pointwise log likelihood (chain, draw, run), observed log loss."""
    chains, n = next(iter(draws.sites.values())).shape[:2]
    flat = {k: v.reshape(chains * n, *v.shape[2:]) for k, v in draws.sites.items()}
    loglik = log_likelihood(model, flat, **model_kwargs)
    return arviz_io.from_draws(
        draws.sites,
        sample_stats=draws.stats,
        log_likelihood={k: np.asarray(v).reshape(chains, n, *v.shape[1:]) for k, v in loglik.items()},
        observed_data={"log_loss": np.asarray(model_kwargs["log_loss"])},
        dims=dims,
        coords=coords,
    )
