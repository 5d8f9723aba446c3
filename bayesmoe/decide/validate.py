"""Forward-chaining validation: how well a law fitted on smaller runs predicts the next, larger ones.

A scaling law is used to predict runs larger than any it was fitted on, so its intervals are judged
there. Within one fit's runs table:

1. order the runs by scale (``compute`` for laws with a data term; ``n_active`` where the training
   length is fixed: the routing law, or a fit whose token count was constant) and cut it into *levels*
   (runs whose log10 scale lies within ``LEVEL_GAP_DEX`` of the next form a cluster, e.g. one isoFLOP
   budget; a cluster wider than ``LEVEL_WIDTH_DEX`` is cut into bins of that width; the top levels are
   merged until each holds at least ``MIN_LEVEL_RUNS`` runs);
2. for each of the last ``steps`` levels j: refit the law (same law, priors, likelihood and pooling as
   the fit) on the runs below level j, and predict the runs of levels j to j + ``ahead`` - 1 (by default
   one and two steps past the data; a larger ``ahead`` reaches the distances a prediction will be
   asked at);
3. record per predicted run its error (observed minus median predicted log loss), the law-only
   predictive sd of log loss, whether it fell in the central ``prob`` interval, and its distance
   ``ln(scale / largest fitted scale)``.

From those errors :func:`validate` learns the model-discrepancy term of
:mod:`bayesmoe.inference.discrepancy` and stores it in the fit, so ``predict``, ``optimum`` and the
report widen their bands with the distance past the data. :func:`calibration` then scores a fit's
held-out runs (``fit --holdout-top-compute K``) with and without the term.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import BayesMoeError
from ..inference import Fit, fit
from ..inference.discrepancy import Discrepancy, past_fitted
from ..model import Prior
from ..runs import validate_runs
from .coverage import coverage_count

#: runs whose log10 scale is within this of the next run's belong to one level.
LEVEL_GAP_DEX = 0.1
#: a cluster of scales wider than this (log10) is cut into levels of this width (continuous designs).
LEVEL_WIDTH_DEX = 0.25
#: the top levels are merged until each has at least this many runs.
MIN_LEVEL_RUNS = 3
#: refits run in the fit's default NUTS settings, in which they pass the fit diagnostics (a refit on one
#: isoFLOP budget of our sweep reaches tail ESS 190 for one parameter with 2 chains x 1000 draws, 630 with 4).
REFIT_CHAINS, REFIT_WARMUP, REFIT_DRAWS = 4, 500, 1000
#: inference method of the refits (``"laplace"`` makes a quick, approximate check).
REFIT_METHOD = "nuts"


@dataclass
class Validation:
    """The result of :func:`validate`.

    Attributes:
        errors: one row per predicted run: ``step`` (levels fitted), ``ahead`` (1 to ``ahead`` levels past the
            data), ``run_id``, ``scale``, ``distance`` (``ln`` past the largest fitted scale),
            ``observed`` / ``predicted`` (loss, nats; predicted = median of the law's mean), ``error``
            (log loss, observed minus predicted), ``law_sd`` (law-only predictive sd of log loss),
            ``inside`` (in the law-only central ``prob`` interval), ``log_n_active`` (``ln n_active``, for the
            term's tilt).
        refits: one dict per refit: ``step``, ``n_train``, ``max_scale``, ``warnings`` (diagnostic
            warnings of that refit).
        discrepancy: the term learned from ``errors`` (None when there were no errors to learn from).
        scale_column: ``"compute"`` or ``"n_active"``.
        prob: the interval probability.
    """

    errors: pd.DataFrame
    refits: list[dict]
    discrepancy: Discrepancy | None
    scale_column: str
    prob: float

    def summary(self) -> pd.DataFrame:
        """Per ``ahead`` (levels past the data): runs, coverage, median |relative error|, median distance."""
        rel = np.abs(np.expm1(self.errors["error"]))
        table = self.errors.assign(abs_rel_error=rel).groupby("ahead").agg(
            n_runs=("run_id", "size"), coverage=("inside", "mean"), median_abs_rel_error=("abs_rel_error", "median"),
            median_distance=("distance", "median"))
        return table


def scale_column(fitted: Fit) -> str:
    """What a fit's runs are ordered by: ``n_active`` where the training length is fixed, else ``compute``."""
    reduction = fitted.meta.get("reduction") or {}
    fixed_tokens = "tokens" in (reduction.get("constant") or {})
    needs_tokens = "tokens" in fitted.law.required_columns or "compute" in fitted.law.required_columns
    return "n_active" if fixed_tokens or not needs_tokens else "compute"


def scale_levels(
    scale: np.ndarray, *, gap_dex: float = LEVEL_GAP_DEX, width_dex: float = LEVEL_WIDTH_DEX,
    min_runs: int = MIN_LEVEL_RUNS,
) -> np.ndarray:
    """Level index (0 = smallest) of each run, shape (n,) (see the module docstring)."""
    log_scale = np.log10(np.asarray(scale, dtype=float))
    order = np.argsort(log_scale, kind="stable")
    cluster = np.zeros(len(log_scale), dtype=int)
    cluster[order[1:]] = np.cumsum(np.diff(log_scale[order]) > gap_dex)
    level = np.zeros(len(log_scale), dtype=int)
    next_level = 0
    for c in range(int(cluster.max()) + 1):  # a cluster wider than width_dex is cut into bins of that width
        members = cluster == c
        bins = np.floor((log_scale[members] - log_scale[members].min()) / width_dex).astype(int)
        _, dense = np.unique(bins, return_inverse=True)
        level[members] = next_level + dense
        next_level += int(dense.max()) + 1
    counts = np.bincount(level)
    while len(counts) > 1 and counts[-1] < min_runs:  # merge from the top down
        level[level == len(counts) - 1] = len(counts) - 2
        counts = np.bincount(level)
    return level


def _refit_priors(meta: dict) -> str | dict[str, Prior] | None:
    if meta.get("prior_set"):
        return meta["prior_set"]
    return {name: Prior(*values) for name, values in (meta.get("priors") or {}).items()}


def _refit(fitted: Fit, train: pd.DataFrame, seed: int) -> tuple[Fit, list[str]]:
    meta = fitted.meta
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refit = fit(train, law=meta["law"], group=meta.get("group_column") or None, pool=meta.get("pooled") or (),
                    prior=_refit_priors(meta), likelihood=meta.get("likelihood", "student_t"), chains=REFIT_CHAINS,
                    warmup=REFIT_WARMUP, draws=REFIT_DRAWS, seed=seed, progress_bar=False,
                    method=REFIT_METHOD)
    return refit, sorted({str(w.message) for w in caught if w.category.__name__ == "FitWarning"})


def forward_chain(fitted: Fit, *, steps: int = 3, prob: float = 0.9, seed: int = 0,
                  log=None, score=None, ahead: int = 2) -> tuple[pd.DataFrame, list[dict], str]:
    """Errors of refits on the smaller runs of ``fitted`` at the next ``ahead`` levels (module docstring).

    Args:
        fitted: the fit whose runs, law and priors are validated.
        steps: how many of the top levels are predicted (each needs one refit).
        prob: central interval probability for ``inside``.
        seed: seed of the refits.
        log: optional callable taking one line of progress.
        score: optional callable ``(refit, test runs) -> array (m,)``, e.g. the log predictive density of
            each predicted run (:func:`bayesmoe.decide.compare.chaining_scores`); kept as column ``score``.
        ahead: each refit predicts the next 1 to ``ahead`` levels.

    Returns:
        (errors, refits, scale column) as in :class:`Validation`.
    """
    if steps < 1:
        raise BayesMoeError(f"--steps must be a positive integer, got {steps}")
    if ahead < 1:
        raise BayesMoeError(f"--ahead must be a positive integer, got {ahead}")
    column = scale_column(fitted)
    runs = fitted.runs.reset_index(drop=True)
    level = scale_levels(runs[column].to_numpy(float))
    n_levels = int(level.max()) + 1
    first = max(1, n_levels - steps)
    if n_levels < 2:
        raise BayesMoeError(f"forward chaining needs runs at 2 or more scales of '{column}'; this fit's runs have one")
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    rows, refits = [], []
    for j in range(first, n_levels):
        train = runs[level < j]
        refit, warned = _refit(fitted, train, seed)
        max_scale = float(train[column].max())
        refits.append({"step": j, "n_train": len(train), "max_scale": max_scale, "warnings": warned})
        if log:
            log(f"refit {j - first + 1}/{n_levels - first}: {len(train)} runs up to {column} {max_scale:.3g}"
                + (f" ({len(warned)} diagnostic warnings)" if warned else ""))
        for levels_ahead in range(1, ahead + 1):
            test = runs[level == j + levels_ahead - 1]
            if not len(test):
                continue
            draws = refit.predictive_log_loss(test, seed=seed, discrepancy=False)
            mean = np.median(refit.log_mean(test, seed=seed), axis=0)
            observed = np.log(test["loss"].to_numpy(float))
            lo, hi = np.quantile(draws, [lo_q, hi_q], axis=0)
            extra = {} if score is None else {"score": np.asarray(score(refit, test), dtype=float)}
            rows.append(pd.DataFrame({
                "step": j, "ahead": levels_ahead, "run_id": test["run_id"].to_numpy(),
                "scale": test[column].to_numpy(float),
                "distance": past_fitted(test[column].to_numpy(float), max_scale),
                "observed": np.exp(observed), "predicted": np.exp(mean), "error": observed - mean,
                "law_sd": draws.std(axis=0), "inside": (observed >= lo) & (observed <= hi),
                "log_n_active": np.log(test["n_active"].to_numpy(float)), **extra,
            }))
    errors = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return errors, refits, column


def validate(fitted: Fit, *, steps: int = 3, prob: float = 0.9, seed: int = 0, log=None,
             score=None, ahead: int = 2, prior_scale: str = "fixed") -> Validation:
    """Forward-chain ``fitted``'s runs, learn the discrepancy term and store it in ``fitted`` (in place).

    The stored term is measured from the largest scale of ``fitted``'s own runs; save the fit to keep it.
    ``score`` and ``ahead`` are passed to :func:`forward_chain` (``score``: an extra column of the errors).
    ``prior_scale``: ``"fixed"`` (the term's HalfNormal(0.02) prior) or ``"learned"`` (a hierarchical prior on
    that scale, :mod:`bayesmoe.inference.discrepancy`).
    """
    if prior_scale not in ("fixed", "learned"):
        raise BayesMoeError(f"--prior-scale must be 'fixed' or 'learned', got '{prior_scale}'")
    errors, refits, column = forward_chain(fitted, steps=steps, prob=prob, seed=seed, log=log, score=score,
                                           ahead=ahead)
    term = None
    if len(errors):
        term = Discrepancy.learned(errors["error"].to_numpy(), errors["law_sd"].to_numpy(),
                                   errors["distance"].to_numpy(), chaining_steps(errors), scale_column=column,
                                   reference=float(fitted.runs[column].max()),
                                   log_n=errors["log_n_active"].to_numpy(), prior_scale=prior_scale)
        fitted.update_meta(discrepancy=term.as_meta(), validation=_validation_meta(errors, refits, prob))
    return Validation(errors, refits, term, column, prob)


def chaining_steps(errors: pd.DataFrame) -> np.ndarray:
    """The chaining step of each error, as one label per (refit ``step``, levels ``ahead``): the runs whose
    errors share the discrepancy term's shift (:mod:`bayesmoe.inference.discrepancy`), shape (m,)."""
    return (errors["step"].astype(int).astype(str) + "+" + errors["ahead"].astype(int).astype(str)).to_numpy()


def _validation_meta(errors: pd.DataFrame, refits: list[dict], prob: float) -> dict:
    rel = np.abs(np.expm1(errors["error"].to_numpy()))
    by_ahead = {
        str(int(a)): {"n_runs": int((errors["ahead"] == a).sum()),
                      "coverage": float(errors.loc[errors["ahead"] == a, "inside"].mean()),
                      "median_abs_rel_error": float(np.median(rel[errors["ahead"].to_numpy() == a]))}
        for a in sorted(errors["ahead"].unique())
    }
    refit_rows = [{k: v for k, v in r.items() if k != "warnings"} | {"n_warnings": len(r["warnings"])} for r in refits]
    kept = errors[["run_id", "step", "ahead", "distance", "error", "law_sd", "inside"]]
    return {"prob": prob, "refits": refit_rows, "ahead": by_ahead,
            "errors": [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                       for row in kept.to_dict(orient="records")]}


def calibration(fitted: Fit, heldout: pd.DataFrame | None = None, *, prob: float = 0.9, seed: int = 0) -> dict | None:
    """Held-out runs scored with the law-only band and with the discrepancy term.

    Args:
        fitted: the fit (with a discrepancy term from :func:`validate` for the second score).
        heldout: runs the fit did not see (with ``loss``); default the fit's own held-out runs
            (``fit --holdout-top-compute K``).

    Returns None when there is nothing held out; else ``{"n_runs", "prob", "law_only": {...},
    "with_discrepancy": {...}}`` with ``coverage``, ``median_abs_rel_error`` and ``r2`` (of loss, against
    the held-out runs' mean) each, and the median ``distance`` of the held-out runs past the fitted ones.
    Each band also has ``count``: the covered count against the count the band's own joint predictive
    expects for these runs, which share the fit's draw and the term's shift (:func:`.coverage.coverage_count`).
    """
    heldout = fitted.heldout if heldout is None else heldout
    if heldout is None or not len(heldout):
        return None
    observed = heldout["loss"].to_numpy(float)
    frame = validate_runs(heldout, required=fitted.law.required_columns, law=fitted.law.name, what="held-out runs")
    out: dict = {"n_runs": len(heldout), "prob": prob}
    term = fitted.discrepancy
    if term is not None:
        out["median_distance"] = float(np.median(term.distance(heldout)))
    # one pass of draws per band: the band is their central ``prob`` interval (as ``Fit.predict``'s) and the point
    # the law-only median whatever the band (the term is zero-mean: ``Fit.predict``'s q50)
    law_only = fitted.predictive_log_loss(frame, seed=seed, discrepancy=False)
    residual = observed - np.exp(np.median(law_only, axis=0))
    errors = {"median_abs_rel_error": float(np.median(np.abs(residual / observed))),
              "r2": float(1 - np.sum(residual**2) / np.sum((observed - observed.mean()) ** 2))}
    for name, use in (("law_only", False), ("with_discrepancy", True)):
        if use and term is None:
            continue
        draws = fitted.predictive_log_loss(frame, seed=seed, discrepancy=True) if use else law_only
        count = coverage_count(np.exp(draws), observed, prob)
        out[name] = {"coverage": count["covered"] / len(heldout), **errors, "count": count}
    return out
