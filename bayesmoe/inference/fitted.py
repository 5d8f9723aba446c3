"""A fitted law, :class:`Fit`: posterior draws, diagnostics, predictions and the data it saw.

>>> fit.summary()                      # mean, sd, q05, q50, q95, r_hat, ess_bulk, ess_tail
>>> fit.predict(new_runs)              # predictive loss quantiles per run
>>> fit.save("fit.nc"); bayesmoe.load_fit("fit.nc")
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..config import float64
from ..errors import BayesMoeError
from ..model import STUDENT_T_NU, Prior, law_from_meta, pooling_map
from ..runs import group_labels, has_group_columns, validate_runs
from . import arviz_io
from .arviz_io import az
from .discrepancy import Discrepancy

#: Diagnostic thresholds behind the warnings: R-hat, bulk and tail ESS (all chains together).
RHAT_MAX = 1.01
ESS_MIN = 400
#: the report's per-parameter verdicts ask for this bulk and tail ESS per chain (400 for the default 4 chains).
ESS_MIN_PER_CHAIN = 100
#: warn when more than this share of NUTS draws hit the maximum tree depth.
TREE_DEPTH_SATURATED_SHARE = 0.05
#: a parameter whose posterior sd (latent scale) exceeds this share of its prior sd is barely identified.
WEAK_SD_RATIO = 0.7
#: what :meth:`Fit.draws` gives for a group label (:meth:`Fit.group_kind`).
POPULATION, FITTED_GROUP, NEW_GROUP = "population", "fitted group", "new group"


class FitWarning(UserWarning):
    """A fit whose diagnostics (R-hat, ESS, divergences) say its numbers should not be trusted yet."""


class Fit:
    """A fitted law: posterior draws, diagnostics, predictions and the data it saw.

    Attributes:
        idata: the ArviZ InferenceData (see :mod:`bayesmoe.inference.arviz_io` for its groups).
        law: the :class:`Law`.
        meta: law, priors, settings, versions and data hash, as saved.
        runs: the runs the fit saw; heldout: runs left out by ``holdout_top_compute`` (or None).
    """

    def __init__(self, idata: az.InferenceData):
        self.idata = idata
        self.meta = arviz_io.metadata(idata)
        self.law = law_from_meta(self.meta)
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
            group: for a hierarchical fit, None gives the *population* value of each pooled parameter
                (its ``mu``: the centre of the between-group distribution on the pooling scale of
                :mod:`bayesmoe.model.pooling`, i.e. the typical group, not a new group's spread); a
                fitted group's name gives that group's values; any other name gives a *new group*:
                ``mu`` plus an effect ``tau * eps`` per draw on the pooling scale, so its band includes
                the between-group spread and bounded parameters stay in bounds. ``eps ~ Normal(0, 1)``
                is seeded by the label together with ``seed``: the same label gets the same effects,
                two labels independent ones. :meth:`group_kind` says which of the three a label gets.
            seed: mixed with the label's CRC-32 for a new group's effects.
        """
        out = {k: np.full(self.n_draws, float(v)) for k, v in self.meta["constants"].items()}
        kind = self.group_kind(group)
        rng = np.random.default_rng([int(seed), zlib.crc32(str(group).encode())]) if kind == NEW_GROUP else None
        for p in self.law.params:
            if p.name not in self.pooled or kind == POPULATION:
                out[p.name] = self._flat(p.name)
            elif kind == FITTED_GROUP:
                out[p.name] = self._flat(f"{p.name}_group")[:, self.groups.index(group)]
            else:
                pooling = pooling_map(Prior(*self.meta["priors"][p.name]))
                centre = pooling.to_pooling(self._flat(p.latent))
                effect = self._flat(f"{p.latent}_tau") * rng.standard_normal(self.n_draws)
                out[p.name] = np.asarray(p.to_natural(pooling.from_pooling(centre + effect)))
        out["sigma"] = self._flat("sigma")
        return out

    def group_kind(self, group: str | None) -> str:
        """What :meth:`draws` gives for ``group``: ``POPULATION`` (None, or a fit without pooling),
        ``FITTED_GROUP`` (a group the fit saw) or ``NEW_GROUP`` (any other label)."""
        if group is None or not self.pooled:
            return POPULATION
        return FITTED_GROUP if group in self.groups else NEW_GROUP

    def _per_run_draws(self, frame: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
        """Parameter draws for each run of ``frame``: shape (S, 1) when shared, (S, n) when pooled."""
        base = self.draws()
        theta = {k: v[:, None] for k, v in base.items()}
        if not self.pooled:
            return theta
        column = self.meta["group_column"]
        labels = group_labels(frame, column) if has_group_columns(frame, column) else np.full(len(frame), "")
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
                rows.append(
                    {"name": label, "mean": col.mean(), "sd": col.std(ddof=1), "q05": q05, "q50": q50, "q95": q95}
                )
        table = pd.DataFrame(rows).set_index("name")
        diag.index = [i.replace("_group[", "[") for i in diag.index]
        return table.join(diag)

    def problems(self) -> list[str]:
        """Plain-language sampler diagnostics (empty when modes, R-hat, ESS, divergences and tree depth are fine)."""
        table = self.summary()
        out = []
        sampled = [m for m in self.meta.get("modes") or [] if m["sampled"]]
        if len(sampled) > 1:
            where = "; ".join(f"chains {m['chains']}: " + ", ".join(
                f"{p.name} = {np.round(m['location'][p.name], 4).tolist()}" for p in self.law.params
                if p.name in m["location"]) + f" (log density {m['log_density']:.2f})" for m in sampled)
            out.append(f"the posterior has {len(sampled)} separate modes of comparable mass, and the chains were "
                       f"started in different ones ({where}); bands mix them only if the chains moved between them "
                       "(see R-hat); the modes are in the fit's metadata (meta['modes'])")
        bad_rhat = table.index[table["r_hat"] > RHAT_MAX].tolist()
        if bad_rhat:
            out.append(
                f"R-hat > {RHAT_MAX} for {', '.join(bad_rhat)}: chains disagree; run more warmup/draws or "
                "check the priors"
            )
        low_ess = table.index[(table["ess_bulk"] < ESS_MIN) | (table["ess_tail"] < ESS_MIN)].tolist()
        if low_ess:
            out.append(
                f"bulk or tail ESS < {ESS_MIN} for {', '.join(low_ess)}: run more draws before trusting intervals"
            )
        if self.divergences:
            out.append(f"{self.divergences} divergent transitions: the posterior has regions NUTS cannot explore; "
                       "try more warmup, a higher --target-accept (e.g. 0.99), or inspect outliers")
        saturated = self.tree_depth_saturation
        if saturated > TREE_DEPTH_SATURATED_SHARE:
            depth = self.meta.get("settings", {}).get("max_tree_depth", 10)
            out.append(
                f"{saturated:.0%} of draws hit the maximum tree depth ({depth}): the posterior is strongly curved "
                "(often the irreducible loss traded against an exponent); sampling is slow and the ESS per "
                "draw low; runs spanning more compute, or an informative --prior, help"
            )
        return out

    def identification(self) -> list[str]:
        """What the data leave to the prior (:meth:`weakly_identified`), with why and what to do; empty when
        every parameter's posterior is well inside its prior."""
        weak = self.weakly_identified()
        if not weak:
            return []
        return ["the data barely identify " + ", ".join(f"{name} (posterior sd {ratio:.0%} of the prior's)"
                                                        for name, ratio in weak.items())
                + ": their bands are mostly the prior's, not the runs'; fit a law without these terms (or runs that "
                "vary what they describe), or state an informative prior for them (--prior SET)"]

    def weakly_identified(self) -> dict[str, float]:
        """Parameters whose posterior sd on the latent scale is over ``WEAK_SD_RATIO`` of their prior sd:
        name -> that ratio (population values for pooled parameters; fixed and reduced-away terms absent)."""
        out = {}
        for p in self.law.params:
            prior = self.meta["priors"].get(p.name)
            if prior is None or p.latent not in self.idata.posterior:
                continue
            ratio = float(np.std(self._flat(p.latent))) / float(prior[1])
            if ratio > WEAK_SD_RATIO:
                out[p.name] = ratio
        return out

    @property
    def tree_depth_saturation(self) -> float:
        """Share of NUTS draws whose trajectory hit ``max_tree_depth`` (0 for Laplace fits and older files)."""
        stats = self.idata.sample_stats
        depth = self.meta.get("settings", {}).get("max_tree_depth")
        if "n_steps" not in stats or depth is None:
            return 0.0
        return float(np.mean(stats["n_steps"].values >= 2 ** int(depth) - 1))

    def update_meta(self, **entries) -> None:
        """Add or replace metadata entries (kept in :attr:`idata`, so :meth:`save` writes them)."""
        self.meta.update(entries)
        arviz_io.set_metadata(self.idata, self.meta)

    @property
    def discrepancy(self) -> Discrepancy | None:
        """The model-discrepancy term learned by ``bayesmoe validate`` (None until then)."""
        return Discrepancy.from_meta(self.meta.get("discrepancy"))

    def predict(
        self,
        runs: str | os.PathLike | pd.DataFrame,
        *,
        prob: float = 0.9,
        seed: int = 0,
        noise: bool = True,
        discrepancy: bool = True,
    ) -> pd.DataFrame:
        """Predictive loss for each run of ``runs`` (a runs table; ``loss`` not needed).

        Returns one row per run: ``run_id``, ``q05``/``q50``/``q95`` (or the quantiles of ``prob``),
        ``mean`` (of the predictive loss), and ``observed`` where ``loss`` is present. With
        ``noise=False`` the band is for the law's mean loss, without observation noise.
        Hierarchical fits use each run's group; unseen or missing groups are predicted as a new group.
        With ``discrepancy`` (default) and a learned :attr:`discrepancy`, the law's own error, growing
        with the run's distance past the fitted runs (:mod:`bayesmoe.inference.discrepancy`), widens the
        band; ``discrepancy=False`` gives the law-only band. With the term, ``distance`` (``ln`` past the
        fitted runs) and ``past_term_reach`` (past the distances the term was learned from) are added, and
        ``q50`` stays the law-only predictive median: the term is zero-mean and symmetric on log loss, so it
        widens the band around the law's point without moving it (sampling it would move the median by
        Monte Carlo noise alone).
        """
        if not 0 < prob < 1:
            raise BayesMoeError(f"--prob must be between 0 and 1, got {prob}")
        frame = validate_runs(
            runs, required=self.law.required_columns, law=self.law.name, require_loss=False, what="runs to predict"
        )
        law_only = self.predictive_log_loss(frame, seed=seed, noise=noise, discrepancy=False)
        term = self.discrepancy if discrepancy else None
        loss = np.exp(law_only if term is None else law_only + _term_noise(term, frame, seed, law_only.shape))
        lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
        q = np.quantile(loss, [lo, hi], axis=0)
        out = pd.DataFrame({"run_id": frame["run_id"], "q_lo": q[0], "q50": np.exp(np.median(law_only, axis=0)),
                            "q_hi": q[1], "mean": loss.mean(axis=0)})
        out = out.rename(columns={"q_lo": _qname(lo), "q_hi": _qname(hi)})
        if "loss" in frame.columns and frame["loss"].notna().all():
            out["observed"] = frame["loss"].to_numpy(float)
        if term is not None:
            out["distance"] = term.distance(frame)
            out["past_term_reach"] = term.past_reach(frame)
        return out

    def predictive_log_loss(
        self, frame: pd.DataFrame, *, seed: int = 0, noise: bool = True, discrepancy: bool = True
    ) -> np.ndarray:
        """Posterior-predictive draws of log loss at each run of a validated runs table: shape (S, n).

        ``noise`` adds the per-run scatter (``sigma``, Student-t or Normal as fitted); ``discrepancy``
        adds the learned model-discrepancy term where there is one (see :meth:`predict`).
        """
        log_loss = self.log_mean(frame, seed=seed)
        if noise:
            sigma = self.draws()["sigma"][:, None]
            rng = np.random.default_rng(seed + 1)
            student_t = self.meta["likelihood"] == "student_t"
            eps = rng.standard_t(STUDENT_T_NU, log_loss.shape) if student_t else rng.standard_normal(log_loss.shape)
            log_loss = log_loss + sigma * eps
        term = self.discrepancy if discrepancy else None
        if term is not None:
            log_loss = log_loss + _term_noise(term, frame, seed, log_loss.shape)
        return log_loss

    @float64
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


def _term_noise(term: Discrepancy, frame: pd.DataFrame, seed: int, shape: tuple[int, int]) -> np.ndarray:
    """The discrepancy term's draws on log loss for ``frame``, shape ``shape`` (S, n), seeded from ``seed``."""
    return term.noise(frame, np.random.default_rng(seed + 2), shape)


def load_fit(path: str | os.PathLike) -> Fit:
    """Read a fit written by :meth:`Fit.save` / ``bayesmoe fit``.

    Raises:
        BayesMoeError: the file is not a bayesmoe fit, or its draws lack parameters of the law it names (a fit
            saved by a version whose form of that law differs, e.g. the joint law at a fixed D before commit b3f4f84).
    """
    result = Fit(arviz_io.load(path))
    missing = [name for name in result.law.param_names if name not in result.idata.posterior]
    if missing:
        raise BayesMoeError(
            f"fit file '{path}': law '{result.law.name}' here samples {', '.join(missing)}, which the file's draws "
            f"lack (it was saved with another form of the law, parameters {', '.join(result.meta.get('priors', {}))}); "
            "refit the runs with this version")
    result.path = Path(path)
    return result
