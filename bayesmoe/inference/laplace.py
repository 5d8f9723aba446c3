"""The Laplace approximation: a Gaussian at the posterior mode in the sampling coordinates.

``w ~ Normal(w_mode, H^-1)``, where ``H`` is the Hessian of ``-log p(w, data)`` at the mode found by
:class:`~bayesmoe.inference.mode.ModeFinder` (``w``: the coordinates of
:mod:`bayesmoe.inference.coordinates`, in which the posterior is closer to Gaussian). Draws are pushed
through the model's constraining transforms, so bounded exponents stay in their bounds, coefficients stay
positive and every site NUTS would record is present. Draws are independent: the "chains" are a split
of them, and there are no divergences.

Two entry points share :func:`laplace_draws`: ``bayesmoe.fit(..., method="laplace")``, and
:func:`laplace_fit`, the lean refit used to check designs, which pads the table (``pad`` rows) so one
compiled mode search serves every table of similar size. ``docs/sampling.md`` says when the
approximation is close to NUTS.
"""
from __future__ import annotations

import time
from os import PathLike

import jax
import numpy as np
import pandas as pd

from ..config import float64
from ..errors import BayesMoeError
from ..laws import Law, get_law
from ..model import ModelSpec, build_model, centred_priors, default_priors, model_data
from ..runs import load_runs
from . import arviz_io
from .fitted import Fit
from .metadata import fit_metadata
from .mode import ModeFinder

#: :func:`laplace_fit` pads tables to a multiple of this many rows.
PAD = 16
_FINDERS: dict[tuple, ModeFinder] = {}


def laplace_draws(
    finder: ModeFinder, model_kwargs: dict, *, chains: int, draws: int, key: jax.Array
) -> dict[str, np.ndarray]:
    """Draws from the Laplace approximation: every site, shape (chains, draws, *site_shape).

    Args:
        finder: the compiled mode search of the model, built for data of ``model_kwargs``'s shape.
        model_kwargs: the model's data.
        chains, draws: how the independent draws are split (``chains * draws`` in all).
        key: PRNG key of the Gaussian draws.

    Raises:
        BayesMoeError: a hierarchical model, or the Hessian at the mode is not positive definite (no
            Gaussian there).
    """
    mode = finder(model_kwargs)
    if mode.held.any():
        raise BayesMoeError("the Laplace approximation is not available for a hierarchical fit: its joint mode is "
                            "degenerate (every between-group scale tau -> 0); use --method nuts")
    if mode.covariance is None:
        raise BayesMoeError("the Laplace approximation needs a positive-definite Hessian at the posterior mode, "
                            "and this posterior's is not (a flat or boundary mode); use --method nuts")
    n = chains * draws
    flat = mode.flat + jax.random.normal(key, (n, mode.flat.size)) @ mode.scale.T
    sites = finder.constrain(flat, model_kwargs, mode.coordinates)
    return {k: np.asarray(v).reshape(chains, draws, *np.shape(v)[1:]) for k, v in sites.items()}


def _finder(spec: ModelSpec, key: tuple, model_kwargs: dict) -> ModeFinder:
    """The compiled mode search for ``spec`` and the padded data shape, built once per ``key``."""
    if key not in _FINDERS:
        _FINDERS[key] = ModeFinder(build_model(spec), model_kwargs, jax.random.PRNGKey(0))
    return _FINDERS[key]


@float64
def laplace_fit(
    runs: str | PathLike | pd.DataFrame,
    law: str | Law,
    *,
    draws: int = 2000,
    seed: int = 0,
    prior: str | None = None,
    likelihood: str = "student_t",
    pad: int = PAD,
) -> Fit:
    """Fit ``law`` to a runs table by the Laplace approximation, with no pooling.

    For checking designs and benchmarks that refit many tables; use :func:`bayesmoe.fit` for results you
    report. The fit holds the posterior draws and the runs, not the pointwise log likelihood.

    Args:
        runs: runs table (path or DataFrame, ``docs/runs-table.md``).
        law: law id or :class:`Law`.
        draws: draws from the Gaussian approximation (one "chain"), at least 10.
        seed: seeds the draws.
        prior: None (the law's default priors) or a published set to centre the priors on.
        likelihood: ``"student_t"`` (nu = 4) or ``"normal"``.
        pad: row multiple the table is padded to (1 = no padding).
    """
    law = get_law(law)
    if int(draws) < 10:
        raise BayesMoeError(f"draws must be at least 10, got {draws}")
    frame = load_runs(runs, required=law.required_columns, law=law.name)
    priors = centred_priors(law, prior) if prior else default_priors(law)
    spec = ModelSpec(law=law, priors=priors, likelihood=likelihood)
    kwargs = model_data(law, frame, pad=pad)
    start = time.perf_counter()
    finder = _finder(spec, (law.name, prior, likelihood, len(kwargs["log_loss"])), kwargs)
    samples = laplace_draws(finder, kwargs, chains=1, draws=int(draws), key=jax.random.PRNGKey(seed))
    idata = arviz_io.from_draws(samples)
    meta = fit_metadata(
        law=law,
        frame=frame,
        spec=spec,
        group_column=None,
        source=runs if isinstance(runs, str) else "DataFrame",
        prior_set=prior,
        settings={"method": "laplace", "chains": 1, "draws": int(draws), "seed": int(seed)},
        method="laplace",
        selection={"where": None, "exclude_top_loss": 0, "holdout_top_compute": 0},
        seconds=time.perf_counter() - start,
        reduction=None,
    )
    arviz_io.attach(idata, runs=frame, heldout=None, meta=meta)
    return Fit(idata)
