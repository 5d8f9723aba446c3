"""The value of a run that has not been trained yet: expected posterior sd and band of a target after
observing it, by Pareto-smoothed importance reweighting of the existing posterior draws.

Simulated worlds: M posterior draws s_1..s_M are taken as "truths"; in world m every candidate j gets an
outcome ``y[m, j] = mu[s_m, j] + sigma[s_m] * eps[m, j]`` (eps Student-t with nu = 4, or Normal, as in
:mod:`bayesmoe.model`). All candidates share the worlds (common random numbers), so differences between
candidates are not Monte Carlo noise, and a batch is scored by conditioning on the outcomes of the runs
already picked in the same world. Observing a set of runs in world m reweights draw s by
``prod_j p(y[m, j] | theta_s)``, Pareto-smoothed (:mod:`.psis`).

Shapes: S posterior draws, n candidates, M worlds. Candidates are scored in chunks of ``CHUNK``: log weights and
Pareto smoothing are jitted JAX, vectorised over candidates, worlds and draws; only the selection of each
row's largest weights uses NumPy (:func:`.psis.tail_indices`).
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from .psis import psis, psis_from_tail, tail_indices

#: Central interval whose width is reported (q05 to q95).
BAND_PROB = 0.9
#: Candidates scored per compiled call (memory: CHUNK x M x S doubles).
CHUNK = 16


def log_density(y: jnp.ndarray, mu: jnp.ndarray, sigma: jnp.ndarray, nu: float | None) -> jnp.ndarray:
    """Log density of log-loss ``y`` under StudentT(nu, mu, sigma) (``nu`` None: Normal); broadcasts."""
    r = (y - mu) / sigma
    if nu is None:
        return -0.5 * r**2 - jnp.log(sigma) - 0.5 * jnp.log(2 * jnp.pi)
    const = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * jnp.log(nu * jnp.pi)
    return const - jnp.log(sigma) - (nu + 1) / 2 * jnp.log1p(r**2 / nu)


def weighted_stats(log_w: jnp.ndarray, z_sorted: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """sd and 90% band (natural scale: exp(q95) - exp(q05)) of ``z_sorted`` under normalised log weights.

    Args:
        log_w: (..., S) normalised log weights, in the order of ``z_sorted``.
        z_sorted: (S,) target draws on the log scale, ascending; or one row per leading index of ``log_w``
            that broadcasts against it (e.g. (c, 1, S)), each ascending.
    """
    w = jnp.exp(log_w)
    mean = jnp.sum(w * z_sorted, axis=-1, keepdims=True)
    sd = jnp.sqrt(jnp.maximum(jnp.sum(w * (z_sorted - mean) ** 2, axis=-1), 0.0))
    cdf = jnp.cumsum(w, axis=-1)
    lo, hi = (1 - BAND_PROB) / 2, 1 - (1 - BAND_PROB) / 2
    last = z_sorted.shape[-1] - 1
    i_lo = jnp.minimum(jnp.sum(cdf < lo, axis=-1), last)
    i_hi = jnp.minimum(jnp.sum(cdf < hi, axis=-1), last)
    z_full = jnp.broadcast_to(z_sorted, w.shape)
    q_lo, q_hi = (jnp.take_along_axis(z_full, i[..., None], axis=-1)[..., 0] for i in (i_lo, i_hi))
    return sd, jnp.exp(q_hi) - jnp.exp(q_lo)


@partial(jax.jit, static_argnames=("nu",))
def outcome_log_lik(y_j: jnp.ndarray, mu_j: jnp.ndarray, sigma: jnp.ndarray, nu: float | None) -> jnp.ndarray:
    """(M, S) log likelihood of candidate j's simulated outcomes ``y_j`` (M,) under each draw."""
    return log_density(y_j[:, None], mu_j[None, :], sigma[None, :], nu)


@partial(jax.jit, static_argnames=("nu",))
def _chunk_log_weights(base_log_w, y, mu, sigma, nu):
    """(c, M, S) log weights after adding each of c candidates: y (M, c), mu (S, c)."""
    return base_log_w[None] + log_density(y.T[:, :, None], mu.T[:, None, :], sigma[None, None, :], nu)


@jax.jit
def _chunk_stats(log_w, tail_index, z_sorted):
    lw, k = psis_from_tail(log_w, tail_index)
    sd, band = weighted_stats(lw, z_sorted)
    return sd, band, k


@jax.jit
def _chunk_stats_per_candidate(log_w, tail_index, z):
    """As :func:`_chunk_stats` with one target row per candidate: ``z`` (c, S) in the draw order of ``log_w``."""
    lw, k = psis_from_tail(log_w, tail_index)
    order = jnp.argsort(z, axis=-1)
    lw = jnp.take_along_axis(lw, order[:, None, :], axis=-1)
    sd, band = weighted_stats(lw, jnp.take_along_axis(z, order, axis=-1)[:, None, :])
    return sd, band, k


def score_candidates(
    base_log_w: np.ndarray, y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, z_sorted: np.ndarray, nu: float | None,
    z_by_candidate: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Expected sd, band and Pareto k after adding each candidate to the runs already observed.

    Args:
        base_log_w: (M, S) log likelihood, per world, of the outcomes of runs already picked (zeros: none).
        y: (M, n) simulated outcomes; mu: (S, n) mean log loss per draw; sigma: (S,).
        z_sorted: (S,) log target, ascending; ``mu``, ``sigma``, ``base_log_w`` are in the same draw order.
        nu: Student-t degrees of freedom of the noise (None: Normal).
        z_by_candidate: optional (n, S) log target *after* each candidate, in the same draw order (not
            sorted), for a target that the run itself changes (the model-discrepancy part of a loss
            target shrinks when a run moves the data's edge towards it); replaces ``z_sorted``.

    Returns:
        ``sd`` (n, M), ``band`` (n, M), ``k`` (n, M), as NumPy arrays.
    """
    n = y.shape[1]
    pad = np.arange(-(-n // CHUNK) * CHUNK) % n  # the last chunk repeats candidates: one compiled shape
    parts = []
    for start in range(0, len(pad), CHUNK):
        part = pad[start:start + CHUNK]
        lw = _chunk_log_weights(base_log_w, y[:, part], mu[:, part], sigma, nu)
        tail = tail_indices(np.asarray(lw))
        if z_by_candidate is None:
            parts.append(_chunk_stats(lw, tail, z_sorted))
        else:
            parts.append(_chunk_stats_per_candidate(lw, tail, jnp.asarray(z_by_candidate[part])))
    sd, band, k = (np.concatenate([np.asarray(p[i]) for p in parts])[:n] for i in range(3))
    return {"sd": sd, "band": band, "k": k}


def base_stats(base_log_w: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sd (M,), band (M,) and Pareto k (M,) of the log target ``z`` (S,, any order) per world given the runs
    already picked (``base_log_w`` (M, S), in the draw order of ``z``)."""
    lw, k = psis(base_log_w)
    order = np.argsort(np.asarray(z), kind="stable")
    sd, band = weighted_stats(jnp.asarray(lw)[:, order], jnp.asarray(z)[order])
    return np.asarray(sd), np.asarray(band), np.asarray(k)
