"""Fitting a law to a runs table: :func:`fit`, which returns a :class:`~bayesmoe.inference.fitted.Fit`.

>>> import bayesmoe
>>> fit = bayesmoe.fit("runs.csv", law="chinchilla", chains=4, warmup=1000, draws=1000, seed=0)

``docs/sampling.md`` describes how a fit runs (mode search, sampling coordinates, NUTS or Laplace).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import replace
from os import PathLike
from typing import Iterable, Mapping

import jax
import numpy as np
import pandas as pd

from ..config import float64
from ..errors import BayesMoeError
from ..laws import Law, get_law, register_law
from ..model import IdentifiabilityWarning, Prior, build_model, model_data
from ..model.specify import check_enough_runs, specify
from ..runs import load_runs, split_top_compute
from . import arviz_io
from .centring import estimate_centring
from .draws import Draws, Settings, to_idata
from .fitted import Fit, FitWarning
from .laplace import laplace_draws
from .metadata import fit_metadata
from .mode import ModeFinder
from .nuts import run_nuts

#: inference methods: NUTS, or the Laplace approximation at the mode.
METHODS = ("nuts", "laplace")


@float64
def fit(
    runs: str | PathLike | pd.DataFrame,
    law: str | Law,
    *,
    group: str | None = None,
    pool: Iterable[str] = (),
    prior: str | Mapping[str, Prior] | None = None,
    likelihood: str = "student_t",
    chains: int = 4,
    warmup: int = 500,
    draws: int = 1000,
    seed: int = 0,
    target_accept: float = 0.95,
    where: str | None = None,
    exclude_top_loss: int = 0,
    holdout_top_compute: int = 0,
    progress_bar: bool | None = None,
    method: str = "nuts",
) -> Fit:
    """Fit ``law`` to a runs table with NUTS.

    Args:
        runs: path to a CSV/Parquet runs table (docs/runs-table.md) or a DataFrame.
        law: law id (``bayesmoe.laws.law_names()``) or a :class:`Law` (a law of your own is registered
            for the session, :func:`bayesmoe.register_law`; register it again before loading its saved fit).
        group: column whose values define groups for partial pooling (e.g. ``"group"``); None = no pooling.
        pool: parameters pooled across groups in addition to the level terms (e.g. ``("alpha",)``).
        prior: None (the law's defaults), a published set name (``"chinchilla:besiroglu2024"``: priors
            centred on it, widths in :mod:`bayesmoe.model.priors`), or a dict of :class:`Prior` by parameter.
        likelihood: ``"student_t"`` (nu = 4) or ``"normal"``, on log loss.
        chains, warmup, draws, seed: NUTS settings; the same seed gives the same draws.
        target_accept: NUTS target acceptance probability, in (0, 1).
        method: ``"nuts"`` (default) or ``"laplace"`` (fast approximation: Gaussian at the mode in the
            sampling coordinates, :mod:`bayesmoe.inference.laplace`; ``warmup`` is unused).
        where: pandas query selecting runs; exclude_top_loss: drop the K highest-loss runs;
        holdout_top_compute: leave the K largest-compute runs out of the fit (kept in the file).

    Returns:
        A :class:`Fit`. Emits :class:`FitWarning` for each problem :meth:`Fit.problems` finds: separate
        modes, R-hat > 1.01, bulk or tail ESS < 400, divergent transitions, more than 5% of draws at the
        maximum tree depth, parameters the data barely identify.
    """
    law = register_law(law) if isinstance(law, Law) else get_law(law)
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if int(value) < 1:
            raise BayesMoeError(f"--{name} must be a positive integer, got {value}")
    if not 0.0 < float(target_accept) < 1.0:
        raise BayesMoeError(f"--target-accept must be between 0 and 1 (exclusive), got {target_accept}")
    source = str(runs) if not isinstance(runs, pd.DataFrame) else "DataFrame"
    frame = load_runs(runs, required=law.required_columns, law=law.name, where=where, exclude_top_loss=exclude_top_loss)
    heldout = None
    if holdout_top_compute:
        frame, heldout = split_top_compute(frame, holdout_top_compute)
    check_enough_runs(law, frame, source)
    specified = specify(law, frame, group=group, pool=pool, prior=prior, likelihood=likelihood)
    spec, reduction, prior_set = specified.spec, specified.reduction, specified.prior_set
    law, groups, pooled = spec.law, spec.groups, spec.pooled
    settings = Settings(chains=int(chains), warmup=int(warmup), draws=int(draws), seed=int(seed),
                        target_accept=float(target_accept), progress_bar=progress_bar)

    kwargs = model_data(law, frame, group_index=specified.group_index)
    if method not in METHODS:
        raise BayesMoeError(f"--method must be one of {', '.join(METHODS)}, got '{method}'")
    start = time.perf_counter()
    if groups and method == "nuts":
        spec = replace(spec, centring=estimate_centring(spec, kwargs, jax.random.PRNGKey(settings.seed)))
    model = build_model(spec)

    dims = {"log_loss": ["run"], **{f"{name}_group": ["group"] for name in pooled}}
    coords = {"run": frame["run_id"].tolist(), "group": list(groups)}
    modes: tuple[dict, ...] = ()
    if method == "nuts":
        samples = run_nuts(model, kwargs, settings)
        wall = time.perf_counter() - start
        idata = to_idata(model, kwargs, samples, dims=dims, coords=coords, seed=settings.seed)
        modes = samples.modes
    else:
        key_map, key_draw = jax.random.split(jax.random.PRNGKey(settings.seed))
        sites = laplace_draws(ModeFinder(model, kwargs, key_map), kwargs, chains=settings.chains,
                              draws=settings.draws, key=key_draw)
        stats = {"diverging": np.zeros((settings.chains, settings.draws), dtype=bool)}
        idata = to_idata(model, kwargs, Draws(sites, stats), dims=dims, coords=coords, seed=settings.seed)
        wall = time.perf_counter() - start
    meta = fit_metadata(
        law=law, frame=frame, spec=spec, group_column=group, source=source, prior_set=prior_set,
        settings=settings.as_dict(), method=method,
        selection={"where": where, "exclude_top_loss": exclude_top_loss, "holdout_top_compute": holdout_top_compute},
        seconds=wall, reduction=reduction, modes=modes)
    arviz_io.attach(idata, runs=frame, heldout=heldout, meta=meta)
    result = Fit(idata)
    for message in result.problems():
        warnings.warn(message, FitWarning, stacklevel=3)  # the caller of fit(), past the float64 wrapper
    for message in result.identification():
        warnings.warn(message, IdentifiabilityWarning, stacklevel=3)
    return result
