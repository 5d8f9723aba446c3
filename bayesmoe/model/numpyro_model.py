"""NumPyro models: a law's mean in log space, a robust likelihood on log loss, optional partial pooling.

Likelihood: ``log L_obs ~ StudentT(nu=4, mean, sigma)`` (the Bayesian counterpart of the papers' Huber
loss on log L; ``likelihood="normal"`` for a Normal), ``sigma ~ HalfNormal(0.1)``.

Partial pooling (``group`` given): each pooled parameter has a population value ``m``, a between-group
scale ``tau`` and one value per group, spread on the parameter's pooling scale
(:mod:`bayesmoe.model.pooling`: its latent, or for a truncated latent an unbounded transform of it, so
group values stay inside the bounds): ``m ~ Normal(m0, s0)`` (the parameter's prior, carried to that
scale for a truncated latent), ``tau ~ HalfNormal(0.5 s0)``, ``g ~ Normal(m, tau)``. With few groups
whose data pin their values down, ``m`` given ``tau`` has sd about ``tau / sqrt(G)``, a funnel in
whichever form ``m`` and ``g`` are sampled; so the groups' mean ``gbar`` is sampled instead (the data fix
it whatever ``tau`` is), ``m`` from its exact conditional given ``gbar`` through a standard-normal
``shift``, and the zero-sum deviations ``g - gbar`` *partially centred* (NumPyro's ``LocScaleReparam``
written out) with centredness ``w``: 0 non-centred, a funnel when each group's data pin its value down
more tightly than ``tau``; 1 centred, a funnel when they are weak against ``tau`` (:func:`_pooled`).
``ModelSpec.centring`` holds ``w`` per term, estimated from the data by
:func:`bayesmoe.inference.centring.estimate_centring`; ``CENTRING_DEFAULT`` otherwise. By default the level
terms (log-coefficients, irreducible loss) are pooled and exponents shared; ``pool=`` adds parameters.

Sites: ``log_<p>`` / ``<p>`` (population latent), ``<p>`` (natural, deterministic), and for pooled
parameters (whose population latent is deterministic) ``<latent>_tau``, ``<latent>_mean`` (``gbar``),
``<latent>_shift``, ``<latent>_z`` (the partially centred deviations, shape G - 1) and ``<p>_group``
(natural, shape G).

Sampling coordinates (:mod:`bayesmoe.inference.coordinates`): each truncated latent is marked
``infer={"soft_bounds": True}`` and each shared (unpooled) log-scale parameter with
``sample_scale="natural"`` is marked ``infer={"natural_scale": True}``; each ``<latent>_tau`` is marked
``infer={"pooling_scale": True}`` (the mode search holds it at its prior median: the joint mode of a
hierarchical model is degenerate). The marks change how the posterior is explored, not the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro import handlers

from ..errors import BayesMoeError
from ..laws.base import Law, Param
from .pooling import TAU_PRIOR_FRACTION, contrasts, pooling_map, population_prior, tau_prior_sd
from .priors import Prior

STUDENT_T_NU = 4.0
SIGMA_PRIOR_SD = 0.1
#: centredness ``w`` of a pooled term when the spec gives none (0 = non-centred, 1 = centred).
CENTRING_DEFAULT = 0.5
LIKELIHOODS = ("student_t", "normal")


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines a model besides the data."""

    law: Law
    priors: Mapping[str, Prior]
    likelihood: str = "student_t"
    groups: tuple[str, ...] = ()
    pooled: tuple[str, ...] = ()
    fixed: Mapping[str, float] = field(default_factory=dict)
    #: pooled parameter -> centredness ``w`` in [0, 1] (module doc); absent terms get ``CENTRING_DEFAULT``.
    centring: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise BayesMoeError(f"unknown likelihood '{self.likelihood}'; expected one of {', '.join(LIKELIHOODS)}")
        for name in self.pooled:
            self.law.param(name)

    @property
    def hierarchical(self) -> bool:
        return len(self.groups) > 0

    def centring_of(self, name: str) -> float:
        """The centredness ``w`` of pooled parameter ``name``."""
        return float(self.centring.get(name, CENTRING_DEFAULT))

    def describe_priors(self) -> dict[str, str]:
        out = {p.name: self.priors[p.name].text(p) for p in self.law.params if p.name not in self.fixed}
        out.update({name: f"fixed at {value:g}" for name, value in self.fixed.items()})
        for name in self.pooled if self.hierarchical else ():
            p = self.law.param(name)
            prior, scale = self.priors[name], pooling_map(self.priors[name]).describe(p.latent)
            m0, s0 = population_prior(prior)
            out[name] = f"population {scale} ~ Normal({m0:.4g}, {s0:.4g})"
            out[f"{p.latent}_tau"] = (f"HalfNormal({tau_prior_sd(prior):.4g}) "
                                      f"({TAU_PRIOR_FRACTION:g} x the population prior sd)")
            out[f"{p.latent}_z"] = (f"{scale} per group ~ Normal(population value, {p.latent}_tau); group mean and "
                                    f"zero-sum deviations sampled, centredness {self.centring_of(name):.2f}")
        out["sigma"] = f"HalfNormal({SIGMA_PRIOR_SD:g}) (noise scale of log loss)"
        out["likelihood"] = f"StudentT(nu={STUDENT_T_NU:g})" if self.likelihood == "student_t" else "Normal"
        return out


def default_pooled(law: Law) -> tuple[str, ...]:
    """Parameters pooled across groups by default: the level terms."""
    return tuple(p.name for p in law.params if p.role == "level")


def sample_parameters(spec: ModelSpec, group_index: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """Sample the law's parameters; pooled ones come back per run (indexed by ``group_index``)."""
    theta = {}
    for p in spec.law.params:
        if p.name in spec.fixed:
            theta[p.name] = jnp.asarray(spec.fixed[p.name])
        elif spec.hierarchical and p.name in spec.pooled:
            theta[p.name] = _pooled(spec, p, spec.priors[p.name])[group_index]
        else:
            prior = spec.priors[p.name]
            latent = numpyro.sample(p.latent, prior.distribution(), infer=_sampling_marks(p, prior))
            if p.scale == "log":
                numpyro.deterministic(p.name, p.to_natural(latent))
            theta[p.name] = p.to_natural(latent)
    return theta


def _pooled(spec: ModelSpec, p: Param, prior: Prior) -> jnp.ndarray:
    """A pooled parameter's group values (natural scale, shape (G,)), sampled by their mean (module doc).

    On the pooling scale: population ``m ~ Normal(m0, s0)`` (:func:`population_prior`), group values
    ``g ~ Normal(m, tau)``. Sampled as the groups' mean ``gbar ~ Normal(m0, sqrt(s0^2 + tau^2 / G))``,
    ``m = m0 + k (gbar - m0) + sqrt(k / G) tau shift`` with ``k = s0^2 / (s0^2 + tau^2 / G)`` and
    ``shift ~ Normal(0, 1)`` (the exact conditional of ``m`` given ``gbar``), and the zero-sum deviations
    ``g - gbar = B tau^(1 - w) r`` with ``r ~ Normal(0, tau^w)`` (``G - 1`` values, ``B`` an orthonormal
    basis of zero-sum vectors, ``w`` the centredness). The same joint distribution as sampling ``m``
    and each ``g`` directly; but the data pin ``gbar`` down whatever ``tau`` is, and ``shift`` is
    exactly standard normal a posteriori, so neither forms a funnel with ``tau``.
    """
    pooling, groups = pooling_map(prior), len(spec.groups)
    m0, s0 = population_prior(prior)
    tau = numpyro.sample(f"{p.latent}_tau", dist.HalfNormal(TAU_PRIOR_FRACTION * s0), infer={"pooling_scale": True})
    spread = jnp.sqrt(s0**2 + tau**2 / groups)
    mean = numpyro.sample(f"{p.latent}_mean", dist.Normal(m0, spread))
    shift = numpyro.sample(f"{p.latent}_shift", dist.Normal(0.0, 1.0))
    k = s0**2 / spread**2
    population = m0 + k * (mean - m0) + jnp.sqrt(k / groups) * tau * shift
    latent = numpyro.deterministic(p.latent, pooling.from_pooling(population))
    if p.scale == "log":
        numpyro.deterministic(p.name, p.to_natural(latent))
    w = spec.centring_of(p.name)
    raw = numpyro.sample(f"{p.latent}_z", dist.Normal(0.0, tau**w).expand([groups - 1]).to_event(1))
    deviations = jnp.asarray(contrasts(groups)) @ (tau ** (1.0 - w) * raw)
    return numpyro.deterministic(f"{p.name}_group", p.to_natural(pooling.from_pooling(mean + deviations)))


def _sampling_marks(param: Param, prior: Prior) -> dict:
    """The ``infer`` marks of an unpooled parameter's site, read by :func:`bayesmoe.inference.coordinates.marks`."""
    if prior.low is not None or prior.high is not None:
        return {"soft_bounds": True}
    if param.sample_scale == "natural" and param.scale == "log":
        return {"natural_scale": True}
    return {}


def build_model(spec: ModelSpec):
    """The NumPyro model ``model(x, group_index, log_loss=None, mask=True)``.

    Args (of the returned callable):
        x: covariates from ``law.covariates`` as arrays of shape (n,).
        group_index: int array (n,) of group positions in ``spec.groups`` (ignored if not hierarchical).
        log_loss: observed log loss, shape (n,), or None to sample from the prior predictive.
        mask: True, or a bool array (n,) that leaves False rows out of the likelihood (padding rows,
            so tables of different sizes share one compiled program).
    """

    def model(x, group_index, log_loss=None, mask=True):
        theta = sample_parameters(spec, group_index)
        mean = spec.law.mean_log_loss(theta, x)
        sigma = numpyro.sample("sigma", dist.HalfNormal(SIGMA_PRIOR_SD))
        n = jnp.shape(mean)[-1]
        noise = dist.StudentT(STUDENT_T_NU, mean, sigma) if spec.likelihood == "student_t" else dist.Normal(mean, sigma)
        with numpyro.plate("run", n), handlers.mask(mask=mask):
            numpyro.sample("log_loss", noise, obs=log_loss)

    return model


def model_data(law: Law, frame: pd.DataFrame, *, group_index: np.ndarray | None = None, pad: int = 1) -> dict:
    """The keyword data of :func:`build_model`'s model for a validated runs table.

    Args:
        law: the law whose covariates the model reads.
        frame: validated runs table with ``loss`` (n rows).
        group_index: int array (n,) of group positions; None = all rows in group 0.
        pad: round the row count up to a multiple of ``pad`` by repeating the first row, masked out of
            the likelihood (``mask``), so tables of similar size share one compiled program; 1 = no
            padding and no mask.

    Returns:
        ``x`` (covariate arrays of shape (n_pad,)), ``group_index`` (n_pad,), ``log_loss`` (n_pad,, log
        nats) and, when padded, ``mask`` (n_pad,) that is True on the real rows.
    """
    n = len(frame)
    index = np.zeros(n, dtype=np.int32) if group_index is None else np.asarray(group_index, dtype=np.int32)
    x = law.covariates(frame)
    log_loss = np.log(frame["loss"].to_numpy(float))
    if pad <= 1:
        return {"x": {k: jnp.asarray(v) for k, v in x.items()}, "group_index": jnp.asarray(index),
                "log_loss": jnp.asarray(log_loss)}
    n_pad = -(-n // pad) * pad
    rows = np.concatenate([np.arange(n), np.zeros(n_pad - n, dtype=int)])
    return {
        "x": {k: jnp.asarray(np.asarray(v)[rows]) for k, v in x.items()},
        "group_index": jnp.asarray(index[rows]),
        "log_loss": jnp.asarray(log_loss[rows]),
        "mask": jnp.asarray(np.arange(n_pad) < n),
    }
