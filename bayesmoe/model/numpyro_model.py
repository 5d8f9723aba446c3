"""NumPyro models: a law's mean in log space, a robust likelihood on log loss, optional partial pooling.

Likelihood: ``log L_obs ~ StudentT(nu=4, mean, sigma)`` (the Bayesian counterpart of the papers' Huber
loss on log L; ``likelihood="normal"`` for a Normal), ``sigma ~ HalfNormal(0.1)``.

Partial pooling (``group`` given): each pooled parameter has a population mean ``mu`` (the parameter's
prior) and a scale ``tau``, and group values ``mu + tau * z_g`` with ``z_g ~ Normal(0, 1)``
(non-centred). ``tau ~ HalfNormal(0.5)`` for coefficients on the log scale, ``HalfNormal(0.1)`` for
exponents. By default the level terms (log-coefficients, irreducible loss) are pooled and exponents
shared; ``pool=`` adds parameters.

Sites: ``log_<p>`` / ``<p>`` (population latent), ``<p>`` (natural, deterministic), and for pooled
parameters ``<latent>_tau``, ``<latent>_z`` (shape G) and ``<p>_group`` (natural, shape G).

Sampling coordinates (:mod:`bayesmoe.inference.coordinates`): each truncated latent is marked
``infer={"soft_bounds": True}`` and each shared (unpooled) log-scale parameter with
``sample_scale="natural"`` is marked ``infer={"natural_scale": True}``. The marks change how the
posterior is explored, not the model.
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
from .priors import Prior

STUDENT_T_NU = 4.0
SIGMA_PRIOR_SD = 0.1
TAU_PRIOR_SD = {"log": 0.5, "linear": 0.1}
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

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise BayesMoeError(f"unknown likelihood '{self.likelihood}'; expected one of {', '.join(LIKELIHOODS)}")
        for name in self.pooled:
            self.law.param(name)

    @property
    def hierarchical(self) -> bool:
        return len(self.groups) > 0

    def describe_priors(self) -> dict[str, str]:
        out = {p.name: self.priors[p.name].text(p) for p in self.law.params if p.name not in self.fixed}
        out.update({name: f"fixed at {value:g}" for name, value in self.fixed.items()})
        for name in self.pooled if self.hierarchical else ():
            p = self.law.param(name)
            out[f"{p.latent}_tau"] = f"HalfNormal({TAU_PRIOR_SD[p.scale]:g})"
            out[f"{p.latent}_z"] = "Normal(0, 1) per group (non-centred)"
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
            tau = numpyro.sample(f"{p.latent}_tau", dist.HalfNormal(TAU_PRIOR_SD[p.scale]))
            with numpyro.plate("group", len(spec.groups)):
                z = numpyro.sample(f"{p.latent}_z", dist.Normal(0.0, 1.0))
            group_values = numpyro.deterministic(f"{p.name}_group", p.to_natural(latent + tau * z))
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
