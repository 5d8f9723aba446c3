"""Vectorised minimisers and root finders used by the optimum modules (JAX, fixed iteration counts).

All work elementwise on arrays of any shape, so one call covers every (draw, budget, choice) at
once. Iteration counts are fixed (no data-dependent loops), which keeps them jit-friendly.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ...errors import BayesMoeError

Array = jnp.ndarray
_INV_PHI = 0.6180339887498949


def golden_min(f: Callable[[Array], Array], lo: Array, hi: Array, iterations: int = 80) -> Array:
    """Elementwise minimiser of a unimodal ``f`` on ``[lo, hi]`` by golden-section search.

    ``f`` maps an array of points (the broadcast shape of ``lo``/``hi``) to values of that shape
    (``inf`` allowed, e.g. outside a feasible region at one end). After ``iterations`` steps the
    bracket is ``0.618**iterations`` of its initial width; returns the bracket's midpoint.
    """
    lo, hi = jnp.broadcast_arrays(jnp.asarray(lo, float), jnp.asarray(hi, float))
    x1 = hi - _INV_PHI * (hi - lo)
    x2 = lo + _INV_PHI * (hi - lo)

    def step(_, s):
        lo, hi, x1, x2, f1, f2 = s
        left = f1 <= f2  # the minimum lies in [lo, x2]
        lo, hi = jnp.where(left, lo, x1), jnp.where(left, x2, hi)
        x_new = jnp.where(left, hi - _INV_PHI * (hi - lo), lo + _INV_PHI * (hi - lo))
        f_new = f(x_new)
        return (lo, hi,
                jnp.where(left, x_new, x2), jnp.where(left, x1, x_new),
                jnp.where(left, f_new, f2), jnp.where(left, f1, f_new))

    lo, hi, *_ = jax.lax.fori_loop(0, iterations, step, (lo, hi, x1, x2, f(x1), f(x2)))
    return 0.5 * (lo + hi)


def bisect_increasing(g: Callable[[Array], Array], target: Array, lo: Array, hi: Array, iterations: int = 80) -> Array:
    """Elementwise x in ``[lo, hi]`` with ``g(x) = target`` for an increasing ``g`` (clipped to the ends)."""
    lo, hi, target = jnp.broadcast_arrays(jnp.asarray(lo, float), jnp.asarray(hi, float), jnp.asarray(target, float))

    def step(_, s):
        lo, hi = s
        mid = 0.5 * (lo + hi)
        below = g(mid) < target
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, step, (lo, hi))
    return 0.5 * (lo + hi)


def newton_convex(
    grad_hess: Callable[[Array], tuple[Array, Array]], x0: Array, iterations: int = 10, max_step: float = 1.0
) -> Array:
    """Elementwise minimiser of a strictly convex function from its first and second derivatives.

    Newton steps ``x -= f'/f''``, each clipped to ``[-max_step, max_step]`` (a trust region that
    keeps the iteration safe far from the optimum).
    """

    def step(_, x):
        g, h = grad_hess(x)
        return x - jnp.clip(g / h, -max_step, max_step)

    x0 = jnp.asarray(x0)
    return jax.lax.fori_loop(0, iterations, step, x0 if jnp.issubdtype(x0.dtype, jnp.floating) else x0.astype(float))


def powers_of_two(low: float, high: float, what: str) -> np.ndarray:
    """The powers of two in ``[low, high]`` (1 <= low <= high), as floats; ``what`` names the option."""
    if not (1 <= low <= high):
        raise BayesMoeError(f"{what}: need 1 <= low <= high for a power-of-two range, got [{low:g}, {high:g}]")
    k = np.arange(int(np.ceil(np.log2(low) - 1e-9)), int(np.floor(np.log2(high) + 1e-9)) + 1)
    return 2.0**k


def broadcast_theta(theta: dict, ndim: int) -> dict:
    """Parameter draws (S,) reshaped to (S, 1, ..., 1) with ``ndim`` axes in all, as JAX arrays."""
    return {k: jnp.asarray(v, float).reshape((-1,) + (1,) * (ndim - 1)) for k, v in theta.items()}
