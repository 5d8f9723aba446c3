"""Laplace approximation: a Gaussian at the posterior mode in the sampling coordinates.

``w ~ Normal(w_map, H^-1)`` where ``H`` is the Hessian of ``-log p(w, data)`` at the mode (from
:func:`bayesmoe.inference.find_map`; ``w`` is NumPyro's unconstrained space with the soft-bounded and
natural-scale maps of :mod:`bayesmoe.coordinates`, in which the posterior is closer to Gaussian); draws are pushed through the model's constraining transforms,
so truncated exponents stay in their bounds and coefficients stay positive, and every site NUTS
would record (latents, deterministics such as ``A`` from ``log_A``, ``sigma``) is present. Draws are
independent, so the "chains" are just a split of them; there are no divergences. Much faster than
NUTS (one optimisation, no sampler compile), and close to it when the posterior is near-Gaussian in
those coordinates; intervals of skewed or bounded parameters can be off (see
``benchmarks/laplace.py``).
"""
from __future__ import annotations

import jax
import numpy as np
from .errors import BayesMoeError
from .inference import Draws, Mode, Settings, find_map, to_idata


def laplace_draws(model, model_kwargs: dict, settings: Settings, mode: Mode | None = None) -> dict[str, np.ndarray]:
    """Draws from the Laplace approximation: every site, shape (chains, draws, *site_shape)."""
    key_map, key_draw = jax.random.split(jax.random.PRNGKey(settings.seed))
    mode = find_map(model, model_kwargs, key_map) if mode is None else mode
    if mode.covariance is None:
        raise BayesMoeError("the Laplace approximation needs a positive-definite Hessian at the posterior mode, "
                            "and this posterior's is not (a flat or boundary mode); use --method nuts")
    n = settings.chains * settings.draws
    flat = mode.flat + jax.random.normal(key_draw, (n, mode.flat.size)) @ mode.scale.T
    sites = jax.jit(jax.vmap(lambda v: mode.postprocess(mode.unravel(v))))(flat)
    return {k: np.asarray(v).reshape(settings.chains, settings.draws, *np.shape(v)[1:]) for k, v in sites.items()}


def laplace_idata(model, model_kwargs: dict, settings: Settings, *, dims: dict, coords: dict):
    """InferenceData shaped like a NUTS fit's: posterior, sample_stats (no divergences), log_likelihood, observed_data."""
    draws = laplace_draws(model, model_kwargs, settings)
    stats = {"diverging": np.zeros((settings.chains, settings.draws), dtype=bool)}
    return to_idata(model, model_kwargs, Draws(draws, stats), dims=dims, coords=coords)
