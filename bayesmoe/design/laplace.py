"""Laplace approximation of a law's posterior: a refit in about a second, for checking designs.

Same model as :mod:`bayesmoe.model` (priors, Student-t or Normal likelihood on log loss, no pooling):
the posterior mode in the sampling coordinates of :mod:`bayesmoe.coordinates`, found by the same
multi-start L-BFGS-B search as the NUTS fits (:class:`bayesmoe.inference.ModeFinder`: prior medians
and jittered copies), a Gaussian there with the inverse Hessian of the negative log density as covariance, and draws mapped
back to the parameters. Runs are padded to a multiple of ``PAD`` with masked rows, so one compiled
mode search serves every table of similar size; this is what makes 20-replication design benchmarks
cheap. It is an approximation (a Gaussian in those coordinates): use ``bayesmoe.fit``
(NUTS) for results you report.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from .. import arviz_io
from ..errors import BayesMoeError
from ..fit import Fit
from ..inference import ModeFinder
from ..laws import Law, get_law
from ..model import STUDENT_T_NU, ModelSpec, build_model
from ..priors import centred_priors, default_priors
from ..runs import data_hash, load_runs

PAD = 16
_CACHE: dict = {}


def _finder(spec: ModelSpec, key: tuple, kwargs: dict) -> ModeFinder:
    """The compiled mode search (and its constraining map), built once per ``key``."""
    if key not in _CACHE:
        _CACHE[key] = ModeFinder(build_model(spec), kwargs, jax.random.PRNGKey(0))
    return _CACHE[key]


def laplace_fit(
    runs,
    law: str | Law,
    *,
    draws: int = 2000,
    seed: int = 0,
    prior: str | None = None,
    likelihood: str = "student_t",
) -> Fit:
    """Fit ``law`` to a runs table by a Laplace approximation; returns a :class:`~bayesmoe.fit.Fit`.

    Args:
        runs: runs table (path or DataFrame, SPEC §1).
        law: law id or :class:`Law`.
        draws: draws from the Gaussian approximation (one "chain").
        seed: seeds the draws.
        prior: None (the law's default priors) or a published set to centre the priors on.
        likelihood: ``"student_t"`` (nu = 4) or ``"normal"``.
    """
    law = get_law(law)
    if int(draws) < 10:
        raise BayesMoeError(f"draws must be at least 10, got {draws}")
    frame = load_runs(runs, required=law.required_columns, law=law.name)
    priors = centred_priors(law, prior) if prior else default_priors(law)
    spec = ModelSpec(law=law, priors=priors, likelihood=likelihood)
    n = len(frame)
    n_pad = -(-n // PAD) * PAD
    pad = np.concatenate([np.arange(n), np.zeros(n_pad - n, dtype=int)])
    kwargs = {
        "x": {k: jnp.asarray(np.asarray(v)[pad]) for k, v in law.covariates(frame).items()},
        "group_index": jnp.zeros(n_pad, dtype=jnp.int32),
        "log_loss": jnp.asarray(np.log(frame["loss"].to_numpy(float))[pad]),
        "mask": jnp.asarray(np.arange(n_pad) < n),
    }
    start = time.perf_counter()
    finder = _finder(spec, (law.name, prior, likelihood, n_pad), kwargs)
    mode = finder(kwargs)
    if mode.covariance is None:
        raise BayesMoeError(f"Laplace fit of law '{law.name}' found no posterior mode with a positive-definite Hessian")
    eps = np.random.default_rng(seed).standard_normal((int(draws), mode.flat.size))
    w = np.asarray(mode.flat)[None, :] + eps @ np.asarray(mode.scale).T
    samples = finder.constrain(jnp.asarray(w), kwargs, mode.coordinates)
    posterior = {name: np.asarray(v)[None] for name, v in samples.items()}
    idata = arviz_io.from_draws(posterior)
    meta = {
        "law": law.name,
        "source": "DataFrame" if not isinstance(runs, (str,)) else runs,
        "priors": {k: [v.loc, v.sd, v.low, v.high] for k, v in priors.items()},
        "prior_set": prior,
        "prior_text": spec.describe_priors(),
        "likelihood": likelihood,
        "student_t_nu": STUDENT_T_NU,
        "group_column": None,
        "groups": [],
        "pooled": [],
        "settings": {"method": "laplace", "chains": 1, "draws": int(draws), "seed": int(seed)},
        "selection": {"where": None, "exclude_top_loss": 0, "holdout_top_compute": 0},
        "n_runs": n,
        "data_hash": data_hash(frame),
        "sampling_seconds": round(time.perf_counter() - start, 3),
        "constants": dict(law.constants),
    }
    arviz_io.attach(idata, runs=frame, heldout=None, meta=meta)
    return Fit(idata)
