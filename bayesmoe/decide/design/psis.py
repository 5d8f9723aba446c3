"""Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao & Gabry 2024, JMLR 25(72), arXiv
1507.02646), in JAX and vectorised over rows of log weights.

For one row of S log importance weights: the M = min(ceil(0.2 S), ceil(3 sqrt(S))) largest weights are
the tail; a generalised Pareto distribution (GPD) is fitted to their exceedances over the (M+1)-th largest
weight with the Zhang & Stephens (2009) profile-likelihood estimator (grid of 30 + floor(sqrt(M)) values
of b = -k / sigma, posterior-mean b), the shape k is shrunk towards 0.5 by a weak prior worth 10
observations, and the tail weights are replaced by the GPD's quantiles at (i - 1/2) / M, capped at the
largest raw weight. The fitted k is the diagnostic: k <= 0.7 means the importance estimate is reliable.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

#: Pareto k above which importance-sampling estimates are not to be trusted (Vehtari et al. 2024).
K_THRESHOLD = 0.7
_PRIOR_K, _PRIOR_N = 0.5, 10.0


def tail_length(n_draws: int) -> int:
    """Number of largest weights that are smoothed, for S = ``n_draws`` draws."""
    return int(min(math.ceil(0.2 * n_draws), math.ceil(3.0 * math.sqrt(n_draws))))


def gpd_fit(x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Shape k and scale sigma of a GPD fitted to ascending positive exceedances ``x`` (shape (M,)).

    Zhang & Stephens (2009): for b on a grid below 1 / max(x), the profile MLE of k is
    ``mean(log(1 - b x))`` and the profile log likelihood ``M (log(-b / k) - k - 1)``; b is the
    likelihood-weighted mean over the grid. Returns k (with the weak prior towards 0.5) and sigma = -k / b.
    """
    n = x.shape[-1]
    m = 30 + int(math.sqrt(n))
    grid = 1.0 - jnp.sqrt(m / (jnp.arange(1, m + 1) - 0.5))
    quartile = x[max(int(n / 4 + 0.5) - 1, 0)]
    b = 1.0 / x[-1] + grid / (3.0 * quartile)
    b = jnp.where(b == 0.0, 1e-300, b)
    k_b = jnp.mean(jnp.log1p(-b[:, None] * x[None, :]), axis=1)
    profile = n * (jnp.log(-b / k_b) - k_b - 1.0)
    b_post = jnp.sum(b * jax.nn.softmax(profile))
    k = jnp.mean(jnp.log1p(-b_post * x))
    sigma = -k / b_post
    k = (n * k + _PRIOR_N * _PRIOR_K) / (n + _PRIOR_N)
    return k, sigma


def tail_indices(log_weights: np.ndarray) -> np.ndarray:
    """Indices (any order) of the ``tail_length(S) + 1`` largest log weights along the last axis.

    NumPy's introselect (``argpartition``) is used because XLA's CPU sort is an order of magnitude
    slower on rows of thousands of draws; shape (..., M + 1).
    """
    log_weights = np.asarray(log_weights)
    keep = tail_length(log_weights.shape[-1]) + 1
    return np.argpartition(log_weights, log_weights.shape[-1] - keep, axis=-1)[..., -keep:]


def _smooth_row(log_weights: jnp.ndarray, candidates: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Smooth one row; ``candidates`` are the indices of its M + 1 largest weights, in any order."""
    tail = candidates.shape[0] - 1
    lw = log_weights - jnp.max(log_weights)
    order = jnp.argsort(-lw[candidates])
    index = candidates[order]
    top = lw[index]  # descending
    cutoff = top[tail]
    ascending = top[:tail][::-1]
    x = jnp.exp(ascending) - jnp.exp(cutoff)
    degenerate = x[-1] <= 1e-12 * jnp.exp(cutoff)
    safe_x = jnp.where(degenerate, jnp.linspace(1.0, 2.0, tail), jnp.maximum(x, 1e-300))
    k, sigma = gpd_fit(safe_x)
    p = (jnp.arange(1, tail + 1) - 0.5) / tail
    small_k = jnp.abs(k) < 1e-8
    safe_k = jnp.where(small_k, 1.0, k)
    quantile = jnp.where(small_k, -sigma * jnp.log1p(-p), sigma / safe_k * ((1.0 - p) ** (-safe_k) - 1.0))
    smoothed = jnp.minimum(jnp.log(jnp.exp(cutoff) + quantile), 0.0)
    new_tail = jnp.where(degenerate | ~jnp.isfinite(k), ascending, smoothed)
    out = lw.at[index[:tail][::-1]].set(new_tail)
    return out, jnp.where(degenerate, -jnp.inf, k)


@jax.jit
def psis_from_tail(log_weights: jnp.ndarray, tail_index: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """:func:`psis` given the indices of each row's M + 1 largest weights (from :func:`tail_indices`)."""
    shape = log_weights.shape
    rows = log_weights.reshape(-1, shape[-1])
    index = tail_index.reshape(-1, tail_index.shape[-1])
    smoothed, k = jax.vmap(_smooth_row)(rows, index)
    smoothed = smoothed - jax.nn.logsumexp(smoothed, axis=-1, keepdims=True)
    return smoothed.reshape(shape), k.reshape(shape[:-1])


def psis(log_weights: jnp.ndarray | np.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Pareto-smooth log importance weights along the last axis.

    Args:
        log_weights: shape (..., S), unnormalised log weights (e.g. log likelihood of new data per draw).

    Returns:
        (smoothed log weights normalised to sum to 1 along the last axis, shape (..., S);
         Pareto k per row, shape (...); -inf where all tail weights are equal, i.e. nothing to smooth).
    """
    log_weights = np.asarray(log_weights, dtype=float)
    return psis_from_tail(jnp.asarray(log_weights), jnp.asarray(tail_indices(log_weights)))
