"""The InferenceData boundary (ArviZ 0.2x API): every ArviZ call on fits lives here, so moving to ArviZ 1.x
(DataTree) changes this module (and the report's plots, :mod:`bayesmoe.report.arviz_plots`).

Groups bayesmoe writes: ``posterior``, ``sample_stats`` (with ``lp``), ``log_likelihood``,
``posterior_predictive``, ``prior``, ``prior_predictive``, ``observed_data`` (log loss; the predictive
and likelihood groups name it ``log_loss`` too, so ``az.plot_ppc``, ``az.plot_loo_pit`` and ``az.loo``
work on a saved fit), ``constant_data`` (the observed runs table, dimension ``run``) and, when runs were held out,
``predictions_constant_data`` (the held-out runs). Metadata (law, priors, settings, versions, data
hash) is a JSON string in ``posterior.attrs["bayesmoe"]``.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

with warnings.catch_warnings():  # ArviZ 0.2x announces its 1.x refactor on import
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import BayesMoeError

META_KEY = "bayesmoe"


def table_to_dataset(frame: pd.DataFrame) -> xr.Dataset:
    """A runs table as an xarray Dataset along dimension ``run`` (object columns become str)."""
    frame = frame.reset_index(drop=True).copy()
    for name in frame.columns:
        if frame[name].dtype == object or str(frame[name].dtype).startswith("string"):
            frame[name] = frame[name].astype(str)
        elif frame[name].dtype == bool:
            frame[name] = frame[name].astype(np.int8)
    frame.index.name = "run"
    return xr.Dataset.from_dataframe(frame)


def dataset_to_table(ds: xr.Dataset) -> pd.DataFrame:
    frame = ds.to_dataframe().reset_index(drop=True)
    for name in frame.columns:
        if frame[name].dtype == object:
            frame[name] = frame[name].astype(str)
    return frame


def attach(idata: az.InferenceData, *, runs: pd.DataFrame, heldout: pd.DataFrame | None, meta: dict) -> None:
    """Store the runs table(s) and the metadata in ``idata`` (in place)."""
    groups = {"constant_data": table_to_dataset(runs)}
    if heldout is not None and len(heldout):
        groups["predictions_constant_data"] = table_to_dataset(heldout)
    for name in groups:
        if name in idata.groups():
            delattr(idata, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata.add_groups(groups)
    idata.posterior.attrs[META_KEY] = json.dumps(meta, sort_keys=True)


def metadata(idata: az.InferenceData) -> dict:
    return json.loads(idata.posterior.attrs[META_KEY])


def set_metadata(idata: az.InferenceData, meta: dict) -> None:
    """Replace the metadata stored in ``idata`` (in place; saved with it)."""
    idata.posterior.attrs[META_KEY] = json.dumps(meta, sort_keys=True)


def runs_table(idata: az.InferenceData, heldout: bool = False) -> pd.DataFrame | None:
    name = "predictions_constant_data" if heldout else "constant_data"
    if name not in idata.groups():
        return None
    return dataset_to_table(getattr(idata, name))


def save(idata: az.InferenceData, path: str | os.PathLike) -> Path:
    """Write netCDF atomically: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BayesMoeError(f"cannot write fit '{path}': folder '{folder}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        idata.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load(path: str | os.PathLike) -> az.InferenceData:
    """Read a fit file written by :func:`save` fully into memory (the file is closed afterwards)."""
    path = Path(path)
    if not path.exists():
        raise BayesMoeError(f"fit file '{path}' does not exist")
    try:
        idata = az.from_netcdf(path, engine="h5netcdf")
    except Exception as exc:  # h5py/xarray raise many types for a non-netCDF file
        raise BayesMoeError(
            f"cannot read fit file '{path}': not a bayesmoe netCDF fit ({type(exc).__name__})"
        ) from None
    for name in idata.groups():
        ds = getattr(idata, name)
        setattr(idata, name, ds.load())
        ds.close()
    if "posterior" not in idata.groups() or META_KEY not in idata.posterior.attrs:
        raise BayesMoeError(f"fit file '{path}' has no bayesmoe metadata; write it with `bayesmoe fit`")
    return idata


def diagnostics(idata: az.InferenceData, var_names: list[str]) -> pd.DataFrame:
    """R-hat, bulk and tail ESS per scalar quantity (vector sites get one row per element)."""
    post = idata.posterior[var_names]
    rhat, bulk, tail = az.rhat(post), az.ess(post, method="bulk"), az.ess(post, method="tail")
    rows = []
    for name in var_names:
        r, b, t = (np.atleast_1d(x[name].values) for x in (rhat, bulk, tail))
        labels = _element_labels(post[name])
        rows += [
            {"name": lab, "r_hat": float(r[i]), "ess_bulk": float(b[i]), "ess_tail": float(t[i])}
            for i, lab in enumerate(labels)
        ]
    return pd.DataFrame(rows).set_index("name")


def _element_labels(da: xr.DataArray) -> list[str]:
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    if not extra:
        return [da.name]
    values = da.isel(chain=0, draw=0)
    labels = []
    for idx in np.ndindex(*values.shape):
        coords = [str(values[d].values[i]) for d, i in zip(extra, idx)]
        labels.append(f"{da.name}[{','.join(coords)}]")
    return labels


def bfmi(idata: az.InferenceData) -> np.ndarray:
    """Bayesian fraction of missing information per chain."""
    return np.asarray(az.bfmi(idata))


def loo(idata: az.InferenceData):
    """PSIS-LOO: an ``ELPDData`` with ``elpd_loo``, ``se``, ``pareto_k`` (pointwise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.loo(idata, pointwise=True)


def compare(models: dict[str, az.InferenceData]) -> pd.DataFrame:
    """ArviZ's LOO comparison with stacking weights (index: model names)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.compare(models, ic="loo", method="stacking")


def from_draws(
    posterior: dict[str, np.ndarray],
    *,
    sample_stats: dict[str, np.ndarray] | None = None,
    dims: dict | None = None,
    coords: dict | None = None,
    log_likelihood: dict[str, np.ndarray] | None = None,
    observed_data: dict[str, np.ndarray] | None = None,
    posterior_predictive: dict[str, np.ndarray] | None = None,
    prior: dict[str, np.ndarray] | None = None,
    prior_predictive: dict[str, np.ndarray] | None = None,
) -> az.InferenceData:
    """InferenceData from arrays of shape (chain, draw, ...): NUTS draws with their ``sample_stats``, or
    draws not made by MCMC (a Laplace approximation: ``sample_stats`` None records no divergences).
    ``log_likelihood`` and ``posterior_predictive`` arrays are (chain, draw, n); ``prior`` and
    ``prior_predictive`` (1, prior draws, ...)."""
    chains, draws = next(iter(posterior.values())).shape[:2]
    if sample_stats is None:
        sample_stats = {"diverging": np.zeros((chains, draws), dtype=bool)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return az.from_dict(posterior=posterior, sample_stats=sample_stats, log_likelihood=log_likelihood,
                            observed_data=observed_data, posterior_predictive=posterior_predictive, prior=prior,
                            prior_predictive=prior_predictive, dims=dims, coords=coords)


def psislw(log_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ArviZ's Pareto-smoothed log weights and k along the last axis (reference for bayesmoe.decide.design.psis)."""
    return az.psislw(np.array(log_weights, dtype=float))
