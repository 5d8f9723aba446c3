"""Sampling coordinates: the flat vector ``w`` that the Laplace approximation and NUTS use.

NumPyro's unconstrained space ``z`` sends a bounded value through a logit (two bounds) or a log (one
bound), and a coefficient sampled as ``log_c`` stays a log. Where the posterior is well clear of the
bound (a few posterior sds), these maps bend it for nothing (examples in ``docs/sampling.md``).

Each marked element of ``z`` (see :func:`marks`) gets a smooth bijection from ``w`` whose softness
``s`` is set from the Laplace approximation in ``z`` (:func:`adapt`):

- **interval** [low, high]: value ``low + s (softplus(w/s) - softplus((w - (high - low))/s))``;
- **lower** (bounded below at ``low``; or a log-scale level marked ``natural_scale``, with ``low = 0``):
  value ``low + s softplus(w/s)``;
- **upper**: value ``high - s softplus(-w/s)``;
- **identity** for everything else.

Each map has slope 1 more than a few ``s`` inside its bounds and behaves like the log within ``s`` of
one. With ``s`` = the value's posterior sd, a posterior well clear of a bound is sampled on a linear
scale and one piled against it keeps NumPyro's exponential tail. A natural-scale level is sampled on
its natural scale only when its log is well determined (sd below ``NATURAL_MAX_LOG_SD``); a level the
data barely constrain (posterior close to its log-normal prior) stays on the log scale. Priors and
posterior are unchanged: the potential in ``w`` is ``U(z(w)) - log |dz/dw|``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions import constraints

IDENTITY, INTERVAL, LOWER, UPPER = 0, 1, 2, 3
#: softness of a bounded map, in posterior sds of the value (Laplace approximation at the mode).
BOUND_WIDTH_SDS = 1.0
#: a natural-scale level is sampled on its natural scale only if the posterior sd of its log is below this.
NATURAL_MAX_LOG_SD = 0.5
#: softness of natural-scale sampling, as a share of the value at the mode.
NATURAL_WIDTH = 0.025
#: below this (in units of s), log(softplus(u)) is computed as u (softplus underflows near -745).
_LOG_SOFTPLUS_CUTOFF = -30.0


def _softplus(u):
    return jnp.logaddexp(0.0, u)


def _log_softplus(u):
    """log(softplus(u)), finite and smooth for very negative u (where softplus(u) ~ exp(u))."""
    safe = jnp.maximum(u, _LOG_SOFTPLUS_CUTOFF)
    return jnp.where(u < _LOG_SOFTPLUS_CUTOFF, u, jnp.log(_softplus(safe)))


def _log_soft_gap(u, k):
    """log(softplus(u) - softplus(u - k)) for k > 0: the scaled distance from the lower bound of an interval map."""
    log_a = _log_softplus(u)
    return log_a + jnp.log1p(-jnp.exp(_log_softplus(u - k) - log_a))


def _inverse_softplus(y):
    """softplus^-1(y) = log(expm1(y)) for y > 0, without overflow."""
    return y + np.log(-np.expm1(-y))


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Coordinates:
    """Elementwise maps between the sampling coordinates ``w`` and NumPyro's unconstrained ``z``.

    A pytree of four arrays of shape (k,), the flat vector's length, so compiled functions take it
    as an argument (one program for any choice of maps):
        kind: IDENTITY, INTERVAL, LOWER or UPPER per element.
        low, high: the bounds (0 and 1 where unused).
        width: the softness ``s`` (1 where unused).
    """

    kind: np.ndarray
    low: np.ndarray
    high: np.ndarray
    width: np.ndarray

    def to_z(self, w: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``z(w)`` and ``log |det dz/dw|`` for ``w`` of shape (k,) (JAX; every branch is finite, then selected)."""
        kind, low, high, s = self.kind, self.low, self.high, self.width
        span = jnp.where(kind == INTERVAL, high - low, 1.0)  # keeps the unselected branches (and gradients) finite
        u, k = w / s, span / s
        # interval: z = logit((x - low) / span), x - low = s gap(u), high - x = s gap(k - u)
        log_below, log_above = _log_soft_gap(u, k), _log_soft_gap(k - u, k)
        z_interval = log_below - log_above
        jac_interval = (-_softplus(-u) - _softplus(u - k) + jnp.log1p(-jnp.exp(-k))
                        + jnp.log(span) - 2 * jnp.log(s) - log_below - log_above)
        # lower: z = log(x - low), x - low = s softplus(u); upper: z = log(high - x), high - x = s softplus(-u)
        z_lower = jnp.log(s) + _log_softplus(u)
        z_upper = jnp.log(s) + _log_softplus(-u)
        jac_lower = -_softplus(-u) - z_lower
        jac_upper = -_softplus(u) - z_upper
        z = jnp.select([kind == INTERVAL, kind == LOWER, kind == UPPER], [z_interval, z_lower, z_upper], w)
        log_jac = jnp.select(
            [kind == INTERVAL, kind == LOWER, kind == UPPER], [jac_interval, jac_lower, jac_upper], 0.0
        )
        return z, jnp.sum(log_jac)

    def from_z(self, z: np.ndarray) -> np.ndarray:
        """``w(z)`` (NumPy, float64), the inverse of :meth:`to_z`; ``z`` has shape (..., k)."""
        z = np.array(z, dtype=float)
        kind, low, high, s = (np.asarray(a) for a in (self.kind, self.low, self.high, self.width))
        w = z.copy()
        for i in np.flatnonzero(kind == INTERVAL):
            span = high[i] - low[i]
            a = span / (1.0 + np.exp(-z[..., i])) / s[i]   # (x - low) / s
            b = span / (1.0 + np.exp(z[..., i])) / s[i]    # (high - x) / s
            w[..., i] = s[i] * (_inverse_softplus(a) - np.log(-np.expm1(-b)))
        for i in np.flatnonzero(kind == LOWER):
            w[..., i] = s[i] * _inverse_softplus(np.exp(z[..., i]) / s[i])
        for i in np.flatnonzero(kind == UPPER):
            w[..., i] = -s[i] * _inverse_softplus(np.exp(z[..., i]) / s[i])
        return w


def identity(size: int) -> Coordinates:
    """Coordinates that leave ``z`` as it is."""
    return Coordinates(np.zeros(size, dtype=np.int32), np.zeros(size), np.ones(size), np.ones(size))


@dataclass(frozen=True)
class Marks:
    """Which elements of ``z`` may get a soft map (from the model's trace), shape (k,) each.

    Attributes:
        kind: the map an element gets if marked (IDENTITY where unmarked).
        low, high: its bounds (0 and 1 where unused).
        natural: True for a log-scale level marked ``natural_scale`` (LOWER at 0 on ``exp(z)``).
        pooling_scale: True for a pooled parameter's between-group scale ``tau`` (marked
            ``pooling_scale``), which the mode search holds fixed.
    """

    kind: np.ndarray
    low: np.ndarray
    high: np.ndarray
    natural: np.ndarray
    pooling_scale: np.ndarray


def marks(model: Callable, model_kwargs: dict, z: dict) -> Marks:
    """Read the model's marks from a trace.

    Args:
        model, model_kwargs: the NumPyro model and example data.
        z: the unconstrained sample sites by name (``initialize_model``'s ``param_info.z``); the flat
            order is that of ``jax.flatten_util.ravel_pytree(z)`` (sites sorted by name).

    A site is marked by ``infer={"soft_bounds": True}`` (its support gives the map: interval,
    greater_than or less_than) or ``infer={"natural_scale": True}`` (a real latent ``log_c`` whose value
    ``exp(log_c)`` may be sampled on its natural scale); ``infer={"pooling_scale": True}`` marks a
    between-group scale ``tau``; see :mod:`bayesmoe.model`.
    """
    trace = handlers.trace(handlers.seed(model, rng_seed=0)).get_trace(**model_kwargs)
    kinds, lows, highs, natural, pooling_scale = [], [], [], [], []
    for name in sorted(z):
        size = int(np.size(z[name]))
        infer = trace[name].get("infer") or {}
        support = trace[name]["fn"].support
        kind, low, high, is_natural = IDENTITY, 0.0, 1.0, False
        if infer.get("natural_scale"):
            kind, low, is_natural = LOWER, 0.0, True
        elif infer.get("soft_bounds"):
            if isinstance(support, constraints.interval):
                kind, low, high = INTERVAL, float(support.lower_bound), float(support.upper_bound)
            elif isinstance(support, constraints.greater_than):
                kind, low = LOWER, float(support.lower_bound)
            elif isinstance(support, constraints.less_than):
                kind, high = UPPER, float(support.upper_bound)
        kinds += [kind] * size
        lows += [low] * size
        highs += [high] * size
        natural += [is_natural] * size
        pooling_scale += [bool(infer.get("pooling_scale"))] * size
    return Marks(np.array(kinds, dtype=np.int32), np.array(lows), np.array(highs), np.array(natural),
                 np.array(pooling_scale, dtype=bool))


def adapt(site_marks: Marks, z_mode: np.ndarray, covariance_z: np.ndarray) -> Coordinates:
    """Coordinates for a posterior whose Laplace approximation in ``z`` is ``N(z_mode, covariance_z)``.

    Each marked element's softness is its value's posterior sd (delta method), times
    ``BOUND_WIDTH_SDS``; a natural-scale element is kept on the log scale (IDENTITY) unless the sd of
    its log is below ``NATURAL_MAX_LOG_SD``, and then gets softness ``NATURAL_WIDTH`` times its value.
    """
    z_mode = np.asarray(z_mode, dtype=float)
    sd_z = np.sqrt(np.clip(np.diag(np.asarray(covariance_z, dtype=float)), 0.0, None))
    kind, low, high = site_marks.kind.copy(), site_marks.low.copy(), site_marks.high.copy()
    width = np.ones(kind.size)
    for i in range(kind.size):
        if kind[i] == IDENTITY:
            continue
        if site_marks.natural[i]:
            if sd_z[i] < NATURAL_MAX_LOG_SD:
                width[i] = NATURAL_WIDTH * np.exp(z_mode[i])
            else:
                kind[i] = IDENTITY
            continue
        if kind[i] == INTERVAL:
            p = 1.0 / (1.0 + np.exp(-z_mode[i]))
            dx_dz = (high[i] - low[i]) * p * (1.0 - p)
        else:
            dx_dz = np.exp(z_mode[i])
        width[i] = BOUND_WIDTH_SDS * dx_dz * sd_z[i]
        if not (np.isfinite(width[i]) and width[i] > 0):
            kind[i], width[i] = IDENTITY, 1.0
    low = np.where(kind == IDENTITY, 0.0, low)
    high = np.where(kind == IDENTITY, 1.0, high)
    return Coordinates(kind, low, high, width)
