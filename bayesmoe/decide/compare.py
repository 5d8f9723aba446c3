"""Model comparison by PSIS-LOO, and weights for model averaging: LOO stacking or held-out log scores.

All fits must have seen the same runs (same run ids and losses): the pointwise log likelihoods
(Student-t or Normal on log loss) are then on the same observations, whatever the law. Pareto-k
above ``PARETO_K_WARN`` means the importance-sampling estimate for that run is unreliable; such
runs are highly influential (refit without them, or use K-fold CV, before trusting the ranking).

PSIS-LOO reweights posterior draws, so it needs draws from the posterior: fits made with
``--method laplace`` are refused (their draws come from a Gaussian at the mode).

LOO stacking weights say which law best predicts a run *like the fitted ones*. Mixing optima
extrapolated to budgets past the data asks a different question; when every fit left out the same
largest-compute runs (``fit --holdout-top-compute K``), :func:`holdout_scores` scores each fit on those
runs (log predictive density of the held-out log losses) and :func:`mixing_weights` stacks on them
instead, saying which it used.
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
from scipy import optimize, special, stats

from ..errors import BayesMoeError
from ..inference import Fit, arviz_io, load_fit
from ..model import STUDENT_T_NU

PARETO_K_WARN = 0.7
#: where mixing weights come from: stacking on held-out log scores, or PSIS-LOO stacking.
WEIGHTS_FROM = {"holdout": "stacking on the log scores of the held-out top-compute runs",
                "loo": "PSIS-LOO stacking on the fitted runs"}


def _label(fit, index: int) -> str:
    return str(fit.path) if getattr(fit, "path", None) else f"fit{index}"


def compare(fits: Sequence[Fit | str | os.PathLike]) -> list[dict]:
    """Rank fits by expected log predictive density (PSIS-LOO), best first (see :func:`_rows`)."""
    return sorted(_rows(fits), key=lambda m: -m["elpd_loo"])


def stacking_weights(fits: Sequence[Fit | str | os.PathLike]) -> np.ndarray:
    """PSIS-LOO stacking weights of ``fits`` (fits or paths), in the order given."""
    return np.array([m["weight"] for m in _rows(fits)])


def mixing_weights(fits: Sequence[Fit | str | os.PathLike]) -> tuple[np.ndarray, str]:
    """Weights for mixing the fits' extrapolated optima, in the order given, and where they come from.

    Returns:
        (weights (k,), source): ``source`` is ``"holdout"`` (stacking on held-out top-compute log scores)
        when every fit left out the same runs, else ``"loo"`` (PSIS-LOO stacking); see :data:`WEIGHTS_FROM`.
    """
    fits = _load(fits)
    scores = holdout_scores(fits)
    if scores is None:
        return stacking_weights(fits), "loo"
    return _stack(scores), "holdout"


def holdout_scores(fits: Sequence[Fit | str | os.PathLike]) -> np.ndarray | None:
    """Log predictive density of each fit at each held-out run, shape (k fits, m runs), nats of log loss.

    ``log mean_s p(y_i | theta_s)`` with the fit's likelihood (Student-t or Normal on log loss, scale
    ``sigma``); None unless every fit held out the same runs (``fit --holdout-top-compute K``).
    """
    fits = _load(fits)
    heldout = [f.heldout for f in fits]
    if any(h is None or not len(h) for h in heldout) or not all(_same_runs(h, heldout[0]) for h in heldout[1:]):
        return None
    return np.stack([_log_score(f, f.heldout) for f in fits])


def _log_score(fit: Fit, runs) -> np.ndarray:
    """Pointwise log predictive density of ``runs``' log losses under ``fit``, shape (m,)."""
    mean = fit.log_mean(runs)
    sigma = fit.draws()["sigma"][:, None]
    y = np.log(runs["loss"].to_numpy(float))[None, :]
    if fit.meta["likelihood"] == "student_t":
        log_p = stats.t.logpdf(y, STUDENT_T_NU, loc=mean, scale=sigma)
    else:
        log_p = stats.norm.logpdf(y, loc=mean, scale=sigma)
    return special.logsumexp(log_p, axis=0) - np.log(log_p.shape[0])


def _stack(scores: np.ndarray) -> np.ndarray:
    """Stacking weights maximising ``sum_i log sum_k w_k exp(scores[k, i])`` over the simplex, shape (k,)."""

    def objective(z):
        log_w = z - special.logsumexp(z)
        return -np.sum(special.logsumexp(log_w[:, None] + scores, axis=0))

    z = optimize.minimize(objective, np.zeros(len(scores)), method="BFGS").x
    return np.exp(z - special.logsumexp(z))


def _load(fits: Sequence[Fit | str | os.PathLike]) -> list[Fit]:
    fits = [load_fit(f) if isinstance(f, (str, os.PathLike)) else f for f in fits]
    if len(fits) < 2:
        raise BayesMoeError("compare needs at least two fits")
    return fits


def _same_runs(a, b) -> bool:
    """Same run ids and losses, in the same order."""
    return (len(a) == len(b) and np.array_equal(a["run_id"].astype(str).to_numpy(), b["run_id"].astype(str).to_numpy())
            and np.allclose(a["loss"].to_numpy(float), b["loss"].to_numpy(float)))


def _rows(fits: Sequence[Fit | str | os.PathLike]) -> list[dict]:
    """PSIS-LOO comparison rows, in the order of ``fits``.

    Args:
        fits: two or more :class:`~bayesmoe.inference.Fit` objects or paths to fit files.

    Returns:
        ``compare --json`` models (docs/cli.md): ``fit`` (path or ``fit<i>``), ``law``, ``elpd_loo``, ``se``,
        ``elpd_diff`` (to the best; 0 for it), ``dse`` (se of the difference), ``weight`` (stacking),
        ``pareto_k_max``, ``n_high_pareto_k`` (runs with k > 0.7), ``method`` (``nuts``); and, when every fit
        held out the same runs, ``elpd_holdout`` (summed log score of the held-out runs) and
        ``holdout_weight`` (stacking on those scores). Warns when any k > 0.7.

    Raises:
        BayesMoeError: fewer than two fits, fits of different runs, or a Laplace fit.
    """
    fits = _load(fits)
    labels = [_label(f, i) for i, f in enumerate(fits)]
    labels = [lab if labels.count(lab) == 1 else f"{lab}#{i}" for i, lab in enumerate(labels)]
    for label, f in zip(labels, fits):
        if f.meta.get("method") == "laplace":
            raise BayesMoeError(f"cannot compare '{label}': it is a Laplace approximation (--method laplace), and "
                                "PSIS-LOO and stacking weights need posterior draws; refit it with --method nuts")
    reference = fits[0].runs
    for label, f in zip(labels[1:], fits[1:]):
        if not _same_runs(f.runs, reference):
            raise BayesMoeError(f"cannot compare '{label}' with '{labels[0]}': they were fitted to different runs "
                                f"({len(f.runs)} vs {len(reference)} runs); refit on the same runs table and selection")
    table = arviz_io.compare({label: f.idata for label, f in zip(labels, fits)})
    out = []
    for label, f in zip(labels, fits):
        k = np.asarray(arviz_io.loo(f.idata).pareto_k, dtype=float)
        row = table.loc[label]
        out.append({
            "fit": label, "law": f.law.name, "elpd_loo": float(row["elpd_loo"]), "se": float(row["se"]),
            "elpd_diff": float(row["elpd_diff"]), "dse": float(row["dse"]), "weight": float(row["weight"]),
            "pareto_k_max": float(np.max(k)), "n_high_pareto_k": int(np.sum(k > PARETO_K_WARN)),
            "method": f.meta.get("method", "nuts"),
        })
        if np.max(k) > PARETO_K_WARN:
            warnings.warn(f"{label}: {int(np.sum(k > PARETO_K_WARN))} runs have Pareto k > {PARETO_K_WARN} "
                          f"(max {np.max(k):.2f}); its PSIS-LOO estimate is unreliable", UserWarning, stacklevel=2)
    scores = holdout_scores(fits)
    if scores is not None:
        for row, score, weight in zip(out, scores, _stack(scores)):
            row.update(elpd_holdout=float(score.sum()), holdout_weight=float(weight))
    return out

