"""NumPyro models: a law's mean in log space, a robust likelihood on log loss, optional partial pooling.

Likelihood: ``log L_obs ~ StudentT(nu=4, mean, sigma)`` (the Bayesian counterpart of the papers' Huber
loss on log L; ``likelihood="normal"`` for a Normal), ``sigma ~ HalfNormal(0.1)``.

Partial pooling (``group`` given): each pooled parameter has a population value ``mu`` (the
parameter's prior), a between-group scale ``tau`` and one value per group, spread on the parameter's
pooling scale (:mod:`bayesmoe.model.pooling`: its latent, or for a truncated latent an unbounded
transform of it, so group values stay inside the bounds), with ``tau ~ HalfNormal(0.5 x the
parameter's prior sd on that scale)``. With ``m`` the population value on that scale, ``g_u ~
Normal(m, tau)`` is sampled *partially centred* (NumPyro's ``LocScaleReparam`` written out):
``r_g ~ Normal(w m, tau^w)``, ``g_u = m + tau^(1 - w) (r_g - w m)``. ``w = 0`` is the non-centred form,
a funnel when each group's data pin its value down far more tightly than ``tau``; ``w = 1`` the centred
form, a funnel when the group data are weak against ``tau``. ``ModelSpec.centring`` holds ``w`` per
term, estimated from the data by :func:`bayesmoe.inference.centring.estimate_centring`;
``CENTRING_DEFAULT`` otherwise. By default the level terms (log-coefficients, irreducible loss) are
pooled and exponents shared; ``pool=`` adds parameters.

Sites: ``log_<p>`` / ``<p>`` (population latent), ``<p>`` (natural, deterministic), and for pooled
parameters ``<latent>_tau``, ``<latent>_z`` (the partially centred ``r``, shape G) and ``<p>_group``
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
from ..laws.base import Law
from .pooling import TAU_PRIOR_FRACTION, pooling_map, tau_prior_sd
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
            out[f"{p.latent}_tau"] = (f"HalfNormal({tau_prior_sd(prior):.4g}) "
                                      f"({TAU_PRIOR_FRACTION:g} x the prior sd of {scale})")
            out[f"{p.latent}_z"] = (f"{scale} per group ~ Normal(population value, {p.latent}_tau), sampled with "
                                    f"centredness {self.centring_of(name):.2f}")
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
            continue
        prior = spec.priors[p.name]
        latent = numpyro.sample(p.latent, prior.distribution(), infer=_sampling_marks(spec, p, prior))
        if p.scale == "log":
            numpyro.deterministic(p.name, p.to_natural(latent))
        if spec.hierarchical and p.name in spec.pooled:
            pooling = pooling_map(prior)
            tau = numpyro.sample(f"{p.latent}_tau", dist.HalfNormal(tau_prior_sd(prior)), infer={"pooling_scale": True})
            centre, w = pooling.to_pooling(latent), spec.centring_of(p.name)
            with numpyro.plate("group", len(spec.groups)):
                raw = numpyro.sample(f"{p.latent}_z", dist.Normal(w * centre, tau**w))
            group_latent = pooling.from_pooling(centre + tau ** (1.0 - w) * (raw - w * centre))
            group_values = numpyro.deterministic(f"{p.name}_group", p.to_natural(group_latent))
            theta[p.name] = group_values[group_index]
        else:
            theta[p.name] = p.to_natural(latent)
    return theta


def _sampling_marks(spec: ModelSpec, param, prior: Prior) -> dict:
    """The site's ``infer`` marks read by :func:`bayesmoe.inference.coordinates.marks`."""
    pooled = spec.hierarchical and param.name in spec.pooled
    if prior.low is not None or prior.high is not None:
        return {"soft_bounds": True}
    if param.sample_scale == "natural" and param.scale == "log" and not pooled:
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
