"""The scale a pooled parameter's group values spread on, and the prior of that spread.

A pooled parameter's group values are ``mu + tau * eps`` on its *pooling scale*: its latent (``log_A``,
``alpha``), or for a truncated latent an unbounded transform of it (the logit of its position between
two bounds, the log of its distance to a single bound), so every group value, fitted or drawn for a new
group, stays inside the truncation bounds. ``tau ~ HalfNormal(TAU_PRIOR_FRACTION x the parameter's prior
sd on that scale)``: the prior on the spread is scaled to the quantity it spreads (a parameter with
prior ``Normal(m, 0.05)`` gets ``tau ~ HalfNormal(0.025)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from .priors import Prior

#: ``tau ~ HalfNormal(TAU_PRIOR_FRACTION x the pooled parameter's prior sd on its pooling scale)``.
TAU_PRIOR_FRACTION = 0.5


@dataclass(frozen=True)
class PoolingMap:
    """The map between a pooled parameter's latent and its pooling scale (module doc).

    Attributes:
        low, high: the truncation bounds of the latent (None where open).
    """

    low: float | None = None
    high: float | None = None

    def to_pooling(self, latent: jax.Array) -> jax.Array:
        """The pooling-scale value of latent values inside the bounds (any shape)."""
        if self.low is not None and self.high is not None:
            share = (latent - self.low) / (self.high - self.low)
            return jnp.log(share) - jnp.log1p(-share)
        if self.low is not None:
            return jnp.log(latent - self.low)
        if self.high is not None:
            return jnp.log(self.high - latent)
        return jnp.asarray(latent)

    def from_pooling(self, u: jax.Array) -> jax.Array:
        """The latent of pooling-scale values (inverse of :meth:`to_pooling`); always inside the bounds."""
        if self.low is not None and self.high is not None:
            return self.low + (self.high - self.low) * jax.nn.sigmoid(u)
        if self.low is not None:
            return self.low + jnp.exp(u)
        if self.high is not None:
            return self.high - jnp.exp(u)
        return jnp.asarray(u)

    def slope(self, latent: float) -> float:
        """``|d to_pooling / d latent|`` at a latent value inside the bounds."""
        if self.low is not None and self.high is not None:
            return (self.high - self.low) / ((latent - self.low) * (self.high - latent))
        if self.low is not None:
            return 1.0 / (latent - self.low)
        if self.high is not None:
            return 1.0 / (self.high - latent)
        return 1.0

    def describe(self, latent: str) -> str:
        """The pooling scale as a formula in the latent's name."""
        if self.low is not None and self.high is not None:
            return f"logit(({latent} - {self.low:g}) / {self.high - self.low:g})"
        if self.low is not None:
            return f"log({latent} - {self.low:g})"
        if self.high is not None:
            return f"log({self.high:g} - {latent})"
        return latent


def pooling_map(prior: Prior) -> PoolingMap:
    """The :class:`PoolingMap` of a pooled parameter with this prior (from its truncation bounds)."""
    return PoolingMap(prior.low, prior.high)


def population_prior(prior: Prior) -> tuple[float, float]:
    """(mean, sd) of the Normal prior of a pooled parameter's population value on its pooling scale: the
    parameter's own prior for an untruncated latent; for a truncated one, centred on the pooling-scale
    value of the prior median with the prior sd times the map's slope there."""
    if prior.low is None and prior.high is None:
        return float(prior.loc), float(prior.sd)
    lo = -float("inf") if prior.low is None else (prior.low - prior.loc) / prior.sd
    hi = float("inf") if prior.high is None else (prior.high - prior.loc) / prior.sd
    median = float(stats.truncnorm.median(lo, hi, loc=prior.loc, scale=prior.sd))
    pooling = pooling_map(prior)
    with jax.ensure_compile_time_eval():   # a constant, also when called while a model is traced
        centre = float(pooling.to_pooling(median))
    return centre, prior.sd * pooling.slope(median)


def tau_prior_sd(prior: Prior) -> float:
    """Scale of the HalfNormal prior of a pooled parameter's ``tau``: ``TAU_PRIOR_FRACTION`` times the sd of
    its population prior on the pooling scale (:func:`population_prior`)."""
    return TAU_PRIOR_FRACTION * population_prior(prior)[1]


def contrasts(groups: int) -> np.ndarray:
    """An orthonormal basis of the zero-sum vectors of length ``groups``, shape (groups, groups - 1)."""
    basis = np.linalg.qr(np.eye(groups) - 1.0 / groups, mode="complete")[0]
    return basis[:, : groups - 1] if groups > 1 else np.zeros((1, 0))
