"""Fitting a law to a runs table, and the :class:`Fit` it returns.

>>> import bayesmoe
>>> fit = bayesmoe.fit("runs.csv", law="chinchilla", chains=4, warmup=1000, draws=1000, seed=0)
>>> fit.summary()                      # mean, sd, q05, q50, q95, r_hat, ess_bulk, ess_tail
>>> fit.predict(new_runs)              # predictive loss quantiles per run
>>> fit.save("fit.nc"); bayesmoe.load_fit("fit.nc")
"""
from __future__ import annotations

import os
import platform
import time
import warnings
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import arviz_io, identifiability
from .errors import BayesMoeError
from .inference import Settings, run_nuts, to_idata
from .laplace import laplace_idata
from .laws import Law, get_law
from .model import STUDENT_T_NU, ModelSpec, build_model, default_pooled
from .priors import Prior, centred_priors, default_priors
from .runs import data_hash, load_runs, split_top_compute, validate_runs

#: Diagnostic thresholds behind the warnings.
RHAT_MAX = 1.01
ESS_MIN_PER_CHAIN = 100
#: warn when more than this share of NUTS draws hit the maximum tree depth.
TREE_DEPTH_SATURATED_SHARE = 0.1
#: inference methods: NUTS, or the Laplace approximation at the mode.
METHODS = ("nuts", "laplace")


class FitWarning(UserWarning):
    """A fit whose diagnostics (R-hat, ESS, divergences) say its numbers should not be trusted yet."""


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("bayesmoe", "jax", "numpyro", "arviz", "numpy", "pandas"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _group_index(frame: pd.DataFrame, column: str | None, groups: tuple[str, ...]) -> np.ndarray:
    if not column:
        return np.zeros(len(frame), dtype=np.int32)
    position = {g: i for i, g in enumerate(groups)}
    return np.array([position.get(g, -1) for g in frame[column].astype(str)], dtype=np.int32)


def fit(
    runs,
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
) -> "Fit":
    """Fit ``law`` to a runs table with NUTS.

    Args:
        runs: path to a CSV/Parquet runs table (SPEC §1) or a DataFrame.
        law: law id (``bayesmoe.laws.law_names()``) or a :class:`Law`.
        group: column whose values define groups for partial pooling (e.g. ``"group"``); None = no pooling.
        pool: parameters pooled across groups in addition to the level terms (e.g. ``("alpha",)``).
        prior: None (the law's defaults), a published set name (``"chinchilla:besiroglu2024"``: priors
            centred on it, widths in :mod:`bayesmoe.priors`), or a dict of :class:`Prior` by parameter.
        likelihood: ``"student_t"`` (nu = 4) or ``"normal"``, on log loss.
        chains, warmup, draws, seed: NUTS settings; the same seed gives the same draws.
        target_accept: NUTS target acceptance probability, in (0, 1).
        method: ``"nuts"`` (default) or ``"laplace"`` (fast approximation: Gaussian at the mode in the
            sampling coordinates, :mod:`bayesmoe.laplace`; ``warmup`` is unused).
        where: pandas query selecting runs; exclude_top_loss: drop the K highest-loss runs;
        holdout_top_compute: leave the K largest-compute runs out of the fit (kept in the file).

    Returns:
        A :class:`Fit`. Emits :class:`FitWarning` when R-hat > 1.01, bulk ESS < 100 per chain, or
        there were divergent transitions.
    """
    law = get_law(law)
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
    groups: tuple[str, ...] = ()
    if group and group not in frame.columns:
        raise BayesMoeError(f"--group column '{group}' is not in the runs table; columns: {', '.join(frame.columns)}")
    law, shared, reduction = identifiability.prepare(law, frame, group=group, prior=prior)  # rows in no group
    if group:
        groups = tuple(sorted(frame.loc[~shared, group].astype(str).unique()))
        if len(groups) < 2:
            raise BayesMoeError(f"--group column '{group}' has a single value {groups[0]!r}; partial pooling needs at least 2 groups")
    x = law.covariates(frame)
    if isinstance(prior, str):
        priors, prior_set = centred_priors(law, prior), law.coefficient_set(prior).name
    else:
        priors, prior_set = {**default_priors(law), **(prior or {})}, None
    pooled = tuple(dict.fromkeys([*default_pooled(law), *pool])) if groups else ()
    spec = ModelSpec(law=law, priors=priors, likelihood=likelihood, groups=groups, pooled=pooled)
    settings = Settings(chains=int(chains), warmup=int(warmup), draws=int(draws), seed=int(seed),
                        target_accept=float(target_accept), progress_bar=progress_bar)

    kwargs = {
        "x": {k: jnp.asarray(v) for k, v in x.items()},
        "group_index": jnp.asarray(_group_index(frame, group, groups)),
        "log_loss": jnp.asarray(np.log(frame["loss"].to_numpy(float))),
    }
    if method not in METHODS:
        raise BayesMoeError(f"--method must be one of {', '.join(METHODS)}, got '{method}'")
    start = time.perf_counter()
    model = build_model(spec)

    dims = {"log_loss": ["run"]}
    for name in pooled:
        p = law.param(name)
        dims[f"{p.latent}_z"] = ["group"]
        dims[f"{name}_group"] = ["group"]
    coords = {"run": frame["run_id"].tolist(), "group": list(groups)}
    if method == "nuts":
        samples = run_nuts(model, kwargs, settings)
        wall = time.perf_counter() - start
        idata = to_idata(model, kwargs, samples, dims=dims, coords=coords)
    else:
        idata = laplace_idata(model, kwargs, settings, dims=dims, coords=coords)
        wall = time.perf_counter() - start
    meta = {
        "law": law.name,
        "source": source,
        "priors": {k: [v.loc, v.sd, v.low, v.high] for k, v in priors.items()},
        "prior_set": prior_set,
        "prior_text": spec.describe_priors(),
        "likelihood": likelihood,
        "student_t_nu": STUDENT_T_NU,
        "group_column": group,
        "groups": list(groups),
        "pooled": list(pooled),
        "settings": settings.as_dict(),
        "method": method,
        "selection": {"where": where, "exclude_top_loss": exclude_top_loss, "holdout_top_compute": holdout_top_compute},
        "n_runs": len(frame),
        "data_hash": data_hash(frame),
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sampling_seconds": round(wall, 3),
        "constants": dict(law.constants),
        "reduction": reduction,
    }
    arviz_io.attach(idata, runs=frame, heldout=heldout, meta=meta)
    result = Fit(idata)
    for message in result.problems():
        warnings.warn(message, FitWarning, stacklevel=2)
    return result


class Fit:
    """A fitted law: posterior draws, diagnostics, predictions and the data it saw.

    Attributes:
        idata: the ArviZ InferenceData (see :mod:`bayesmoe.arviz_io` for its groups).
        law: the :class:`Law`.
        meta: law, priors, settings, versions and data hash, as saved.
        runs: the runs the fit saw; heldout: runs left out by ``holdout_top_compute`` (or None).
    """

    def __init__(self, idata):
        self.idata = idata
        self.meta = arviz_io.metadata(idata)
        self.law = identifiability.law_from_meta(self.meta)
        self.runs = arviz_io.runs_table(idata)
        self.heldout = arviz_io.runs_table(idata, heldout=True)
        self.path: Path | None = None

    # -- basic facts -------------------------------------------------------------------------
    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self.meta["groups"])

    @property
    def pooled(self) -> tuple[str, ...]:
        return tuple(self.meta["pooled"])

    @property
    def chains(self) -> int:
        return int(self.idata.posterior.sizes["chain"])

    @property
    def n_draws(self) -> int:
        """Total posterior draws (chains x draws per chain)."""
        return int(self.idata.posterior.sizes["chain"] * self.idata.posterior.sizes["draw"])

    @property
    def divergences(self) -> int:
        return int(self.idata.sample_stats["diverging"].values.sum())

    def _flat(self, name: str) -> np.ndarray:
        values = self.idata.posterior[name].values
        return values.reshape(values.shape[0] * values.shape[1], *values.shape[2:])

    # -- draws -------------------------------------------------------------------------------
    def draws(self, group: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
        """Natural-scale parameter draws, shape (S,), with the law's constants and ``sigma``.

        Args:
            group: for a hierarchical fit, a fitted group's name gives that group's parameters; a
                name the fit did not see gives draws for a *new* group (``mu + tau z``, z ~ N(0, 1),
                seeded by ``seed``); None gives the population-typical values (``mu``).
        """
        out = {k: np.full(self.n_draws, float(v)) for k, v in self.meta["constants"].items()}
        rng = np.random.default_rng(seed)
        for p in self.law.params:
            if p.name in self.pooled and group is not None:
                if group in self.groups:
                    out[p.name] = self._flat(f"{p.name}_group")[:, self.groups.index(group)]
                else:
                    mu, tau = self._flat(p.latent), self._flat(f"{p.latent}_tau")
                    out[p.name] = np.asarray(p.to_natural(mu + tau * rng.standard_normal(self.n_draws)))
            else:
                out[p.name] = self._flat(p.name)
        out["sigma"] = self._flat("sigma")
        return out

    def _per_run_draws(self, frame: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
        """Parameter draws for each run of ``frame``: shape (S, 1) when shared, (S, n) when pooled."""
        base = self.draws()
        theta = {k: v[:, None] for k, v in base.items()}
        if not self.pooled:
            return theta
        column = self.meta["group_column"]
        labels = frame[column].astype(str).to_numpy() if column in frame.columns else np.full(len(frame), "")
        per_label = {label: self.draws(label, seed=seed) for label in np.unique(labels)}
        for name in self.pooled:
            theta[name] = np.stack([per_label[label][name] for label in labels], axis=1)
        return theta

    # -- outputs -----------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """Per parameter: mean, sd, q05, q50, q95, r_hat, ess_bulk, ess_tail (natural scale).

        Hierarchical fits add one row per group (``A[group]``) and the pooling scales (``log_A_tau``).
        """
        names = [p.name for p in self.law.params]
        for name in self.pooled:
            names += [f"{name}_group", f"{self.law.param(name).latent}_tau"]
        names.append("sigma")
        diag = arviz_io.diagnostics(self.idata, names)
        rows = []
        for name in names:
            values = self._flat(name)
            columns = values.reshape(values.shape[0], -1).T
            labels = diag.index[[i for i, lab in enumerate(diag.index) if lab == name or lab.startswith(f"{name}[")]]
            for label, col in zip(labels, columns):
                label = label.replace("_group[", "[")
                q05, q50, q95 = np.quantile(col, [0.05, 0.5, 0.95])
                rows.append({"name": label, "mean": col.mean(), "sd": col.std(ddof=1), "q05": q05, "q50": q50, "q95": q95})
        table = pd.DataFrame(rows).set_index("name")
        diag.index = [i.replace("_group[", "[") for i in diag.index]
        return table.join(diag)

    def problems(self) -> list[str]:
        """Plain-language diagnostic warnings (empty when R-hat, ESS and divergences are fine)."""
        table = self.summary()
        out = []
        bad_rhat = table.index[table["r_hat"] > RHAT_MAX].tolist()
        if bad_rhat:
            out.append(f"R-hat > {RHAT_MAX} for {', '.join(bad_rhat)}: chains disagree; run more warmup/draws or check the priors")
        min_ess = ESS_MIN_PER_CHAIN * self.chains
        low_ess = table.index[(table["ess_bulk"] < min_ess) | (table["ess_tail"] < min_ess)].tolist()
        if low_ess:
            out.append(f"bulk or tail ESS < {min_ess} for {', '.join(low_ess)}: run more draws before trusting intervals")
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions: the posterior has regions NUTS cannot explore; "
                       "try more warmup, a higher --target-accept (e.g. 0.99), or inspect outliers")
        saturated = self.tree_depth_saturation
        if saturated > TREE_DEPTH_SATURATED_SHARE:
            depth = self.meta.get("settings", {}).get("max_tree_depth", 10)
            out.append(f"{saturated:.0%} of draws hit the maximum tree depth ({depth}): the posterior is strongly curved "
                       "(often the irreducible loss traded against an exponent); sampling is slow and the ESS per "
                       "draw low; runs spanning more compute, or an informative --prior, help")
        return out

    @property
    def tree_depth_saturation(self) -> float:
        """Share of NUTS draws whose trajectory hit ``max_tree_depth`` (0 for Laplace fits and older files)."""
        stats = self.idata.sample_stats
        depth = self.meta.get("settings", {}).get("max_tree_depth")
        if "n_steps" not in stats or depth is None:
            return 0.0
        return float(np.mean(stats["n_steps"].values >= 2 ** int(depth) - 1))

    def predict(self, runs, *, prob: float = 0.9, seed: int = 0, noise: bool = True) -> pd.DataFrame:
        """Predictive loss for each run of ``runs`` (a runs table; ``loss`` not needed).

        Returns one row per run: ``run_id``, ``q05``/``q50``/``q95`` (or the quantiles of ``prob``),
        ``mean`` (of the predictive loss), and ``observed`` where ``loss`` is present. With
        ``noise=False`` the band is for the law's mean loss, without observation noise.
        Hierarchical fits use each run's group; unseen or missing groups are predicted as a new group.
        """
        if not 0 < prob < 1:
            raise BayesMoeError(f"--prob must be between 0 and 1, got {prob}")
        frame = validate_runs(runs, required=self.law.required_columns, law=self.law.name, require_loss=False, what="runs to predict")
        log_mean = self.log_mean(frame, seed=seed)
        if noise:
            draws = self.draws()
            rng = np.random.default_rng(seed + 1)
            shape = log_mean.shape
            eps = rng.standard_t(STUDENT_T_NU, shape) if self.meta["likelihood"] == "student_t" else rng.standard_normal(shape)
            log_mean = log_mean + draws["sigma"][:, None] * eps
        loss = np.exp(log_mean)
        lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
        q = np.quantile(loss, [lo, 0.5, hi], axis=0)
        out = pd.DataFrame({"run_id": frame["run_id"], "q_lo": q[0], "q50": q[1], "q_hi": q[2], "mean": loss.mean(axis=0)})
        out = out.rename(columns={"q_lo": _qname(lo), "q_hi": _qname(hi)})
        if "loss" in frame.columns and frame["loss"].notna().all():
            out["observed"] = frame["loss"].to_numpy(float)
        return out

    def log_mean(self, runs: pd.DataFrame, *, seed: int = 0) -> np.ndarray:
        """Posterior draws of the law's mean log loss at each run: shape (S, n)."""
        x = {k: jnp.asarray(v) for k, v in self.law.covariates(runs).items()}
        theta = {k: jnp.asarray(v) for k, v in self._per_run_draws(runs, seed).items()}
        return np.asarray(self.law.mean_log_loss(theta, x))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit to a netCDF file atomically (an existing file is replaced only on success)."""
        self.path = arviz_io.save(self.idata, path)
        return self.path


def _qname(q: float) -> str:
    return f"q{round(q * 100):02d}"


def load_fit(path: str | os.PathLike) -> Fit:
    """Read a fit written by :meth:`Fit.save` / ``bayesmoe fit``."""
    result = Fit(arviz_io.load(path))
    result.path = Path(path)
    return result
