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

**Forward-chaining weights** (``weights="chaining"``) need no held-out runs: each law is refitted on the
smaller runs of its own table and scored on the next one and two scale levels
(:func:`bayesmoe.decide.validate.forward_chain`, the same levels and refits ``bayesmoe validate`` uses);
:func:`chaining_scores` collects those log predictive densities, shape (k fits, m predictions), and
:func:`chaining_weights` stacks on them. A law that fits the runs it saw but bends the wrong way past them
scores poorly there, whatever its LOO.
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ..errors import BayesMoeError
from ..inference import Fit, arviz_io, load_fit
from ..inference.discrepancy import Discrepancy
from ..model import STUDENT_T_NU
from ..runs import validate_runs
from .validate import chaining_steps, forward_chain

PARETO_K_WARN = 0.7
#: where mixing weights come from: stacking on held-out log scores, PSIS-LOO stacking, or stacking on
#: forward-chaining log scores.
WEIGHTS_FROM = {"holdout": "stacking on the log scores of the held-out top-compute runs",
                "loo": "PSIS-LOO stacking on the fitted runs",
                "chaining": "stacking on forward-chaining log scores (each law refitted on the smaller runs, "
                            "scored on the next one and two scale levels)"}
#: the choices of ``weights=``: ``auto`` is held-out scores when every fit has the same held-out runs, else LOO.
WEIGHT_CHOICES = ("auto", "loo", "holdout", "chaining")


def _label(fit, index: int) -> str:
    return str(fit.path) if getattr(fit, "path", None) else f"fit{index}"


def compare(fits: Sequence[Fit | str | os.PathLike], *, weights: str = "auto", steps: int = 3,
            seed: int = 0, log=None) -> list[dict]:
    """Rank fits by expected log predictive density (PSIS-LOO), best first (see :func:`_rows`).

    With ``weights="chaining"`` each row also gets ``elpd_chaining`` (summed forward-chaining log score)
    and ``chaining_weight`` (:func:`chaining_weights`; ``steps`` refits per fit, ``seed``, ``log`` as in
    :func:`~bayesmoe.decide.validate.forward_chain`). Every row gets ``mixing_weight``, the weight the
    ``weights`` choice gives (:func:`mixing_weights`), and ``weights_from``, which one that was.
    """
    if weights not in WEIGHT_CHOICES:
        raise BayesMoeError(f"weights must be one of {', '.join(WEIGHT_CHOICES)}, got '{weights}'")
    fits = _load(fits)
    rows = _rows(fits)
    if weights == "chaining":
        scores, _ = chaining_scores(fits, steps=steps, seed=seed, log=log)
        for row, score, weight in zip(rows, scores, _stack(scores)):
            row.update(elpd_chaining=float(score.sum()), chaining_weight=float(weight))
    used = _resolve(fits, weights)
    key = {"loo": "weight", "holdout": "holdout_weight", "chaining": "chaining_weight"}[used]
    for row in rows:
        row.update(mixing_weight=row[key], weights_from=used)
    return sorted(rows, key=lambda m: -m["elpd_loo"])


def _resolve(fits: list[Fit], weights: str) -> str:
    """Which weights ``weights`` means for these fits (``auto``: held-out scores when there are some)."""
    has_holdout = holdout_scores(fits) is not None
    if weights == "holdout" and not has_holdout:
        raise BayesMoeError("held-out weights need every fit to hold out the same runs (fit --holdout-top-compute K)")
    if weights == "auto":
        return "holdout" if has_holdout else "loo"
    return weights


def stacking_weights(fits: Sequence[Fit | str | os.PathLike]) -> np.ndarray:
    """PSIS-LOO stacking weights of ``fits`` (fits or paths), in the order given."""
    return np.array([m["weight"] for m in _rows(fits)])


def mixing_weights(fits: Sequence[Fit | str | os.PathLike], *, weights: str = "auto", steps: int = 3,
                   seed: int = 0, log=None) -> tuple[np.ndarray, str]:
    """Weights for mixing the fits' extrapolated optima, in the order given, and where they come from.

    Args:
        fits: two or more fits (or paths) of the same runs.
        weights: ``"auto"`` (held-out scores when every fit left out the same runs, else LOO), ``"loo"``,
            ``"holdout"`` or ``"chaining"`` (:func:`chaining_weights`: ``steps`` refits per fit).
        steps, seed, log: forward-chaining settings (``weights="chaining"`` only).

    Returns:
        (weights (k,), source): ``source`` is ``"holdout"``, ``"loo"`` or ``"chaining"``; see :data:`WEIGHTS_FROM`.
    """
    if weights not in WEIGHT_CHOICES:
        raise BayesMoeError(f"weights must be one of {', '.join(WEIGHT_CHOICES)}, got '{weights}'")
    fits = _load(fits)
    used = _resolve(fits, weights)
    if used == "chaining":
        return chaining_weights(fits, steps=steps, seed=seed, log=log), "chaining"
    if used == "holdout":
        return _stack(holdout_scores(fits)), "holdout"
    return stacking_weights(fits), "loo"


def chaining_scores(fits: Sequence[Fit | str | os.PathLike], *, steps: int = 3, seed: int = 0,
                    log=None) -> tuple[np.ndarray, pd.DataFrame]:
    """Forward-chaining log predictive densities of each fit, shape (k fits, m predictions), nats of log loss.

    Each fit is refitted on the runs below each of its top ``steps`` scale levels and scores the runs of the
    next one and two levels (:func:`~bayesmoe.decide.validate.forward_chain`, law-only: no discrepancy
    term); a run predicted from two different refits counts twice. The fits must be of the same runs, and
    their runs must fall into the same levels (the same scale column: ``n_active`` or ``compute``).

    Returns:
        (scores, keys): ``keys`` has one row per prediction (``step``, ``ahead``, ``run_id``), in the
        order of the score columns.

    Raises:
        BayesMoeError: fewer than two fits, fits of different runs, or predictions that do not line up.
    """
    fits = _load(fits)
    for i, f in enumerate(fits[1:], start=1):
        if not _same_runs(f.runs.reset_index(drop=True), fits[0].runs.reset_index(drop=True)):
            raise BayesMoeError(f"chaining weights need fits of the same runs; fit{i} ({f.law.name}) has "
                                f"{len(f.runs)} runs, fit0 ({fits[0].law.name}) {len(fits[0].runs)}")
    tables = []
    for i, f in enumerate(fits):
        prefixed = None if log is None else (lambda line, i=i, f=f: log(f"fit{i} {f.law.name}: {line}"))
        errors, _, _ = forward_chain(f, steps=steps, seed=seed, score=_log_score, log=prefixed)
        tables.append(errors)
    return chaining_matrix(tables)


def chaining_matrix(tables: Sequence[pd.DataFrame]) -> tuple[np.ndarray, pd.DataFrame]:
    """Stack per-fit forward-chaining tables (with a ``score`` column) into scores (k, m) and their keys.

    ``tables`` are :func:`~bayesmoe.decide.validate.forward_chain` errors tables made with
    ``score=``; e.g. the ``errors`` of :func:`~bayesmoe.decide.validate.validate` called with
    ``score=log_score``, so one set of refits gives both the discrepancy term and the weights.
    """
    keys = ["step", "ahead", "run_id"]
    if any(t is None or not len(t) or "score" not in t.columns for t in tables):
        raise BayesMoeError("chaining weights need forward-chaining predictions with log scores for every fit")
    first = tables[0][keys].astype(str).reset_index(drop=True)
    for i, t in enumerate(tables[1:], start=1):
        if not t[keys].astype(str).reset_index(drop=True).equals(first):
            raise BayesMoeError(f"fit{i}'s forward-chaining predictions are not those of fit0 (different scale "
                                "levels or runs); chaining weights compare laws on the same predictions")
    return np.stack([t["score"].to_numpy(float) for t in tables]), tables[0][keys].reset_index(drop=True)


def chaining_weights(fits: Sequence[Fit | str | os.PathLike], *, steps: int = 3, seed: int = 0,
                     log=None) -> np.ndarray:
    """Stacking weights on forward-chaining log scores (:func:`chaining_scores`), shape (k,), in the order given."""
    scores, _ = chaining_scores(fits, steps=steps, seed=seed, log=log)
    return _stack(scores)


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


def mixture_predictive(fits: Sequence[Fit], weights: Sequence[float], runs: pd.DataFrame, *, draws: int = 4000,
                       seed: int = 0, noise: bool = True, discrepancy: bool | Discrepancy = True) -> np.ndarray:
    """Draws of log loss from the weighted mixture of the fits' posterior predictives, shape (draws, n).

    Each draw comes from fit k with probability ``weights[k]``; ``noise`` adds each fit's per-run scatter.
    ``discrepancy``: True adds each fit's own discrepancy term (where it has one), False none, and a
    :class:`~bayesmoe.inference.discrepancy.Discrepancy` (e.g. :func:`mixture_discrepancy`) adds that one term
    to every draw of the law-only mixture. ``runs``: a runs table with every column the fits' laws need.
    """
    weights = np.asarray(weights, dtype=float)
    if len(weights) != len(fits) or np.any(weights < 0) or not weights.sum() > 0:
        raise BayesMoeError(f"mixture needs one non-negative weight per fit ({len(fits)}), not all zero; got {weights}")
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(int(draws), weights / weights.sum())
    parts = []
    for f, count in zip(fits, counts):
        if not count:
            continue
        frame = validate_runs(runs, required=f.law.required_columns, law=f.law.name, require_loss=False,
                              what="runs to predict")
        own = f.predictive_log_loss(frame, seed=seed, noise=noise, discrepancy=discrepancy is True)
        parts.append(own[rng.integers(0, len(own), count)])
    mixed = np.concatenate(parts)
    if isinstance(discrepancy, Discrepancy):
        mixed = mixed + discrepancy.noise(runs, rng, mixed.shape)
    return mixed


def mixture_discrepancy(tables: Sequence[pd.DataFrame], weights: Sequence[float], *, scale_column: str,
                        reference: float) -> Discrepancy:
    """The discrepancy term of a weighted mixture, learned from its members' forward-chaining errors.

    Per chained prediction the mixture's error and law-only sd are moment-matched on log loss:
    ``error = sum_k w_k e_k`` and ``law_sd^2 = sum_k w_k (sd_k^2 + (e_k - error)^2)``, where ``e_k`` and ``sd_k``
    are member k's ``error`` and ``law_sd`` (:func:`~bayesmoe.decide.validate.forward_chain` tables, aligned as in
    :func:`chaining_matrix`); (s0, s1, t) are then learned as for one law
    (:func:`bayesmoe.inference.discrepancy.learn`). The weights were stacked on the same predictions, so the
    mixture's errors there are slightly optimistic. Its tilt is learned from the same errors when the tables carry
    ``log_n_active``. ``scale_column`` (``n_active`` or ``compute``, as the
    members were chained) and ``reference`` (its largest value among the fitted runs) place the term;
    its reach (``max_distance``) is the largest chained distance.
    """
    chaining_matrix(tables)  # checks that the predictions line up (scores unused)
    w = np.asarray(weights, dtype=float)[:, None] / float(np.sum(weights))
    errors = np.stack([t["error"].to_numpy(float) for t in tables])
    sds = np.stack([t["law_sd"].to_numpy(float) for t in tables])
    error = np.sum(w * errors, axis=0)
    law_sd = np.sqrt(np.sum(w * (sds**2 + (errors - error) ** 2), axis=0))
    log_n = tables[0]["log_n_active"].to_numpy(float) if "log_n_active" in tables[0].columns else None
    return Discrepancy.learned(error, law_sd, tables[0]["distance"].to_numpy(float), chaining_steps(tables[0]),
                               scale_column=scale_column, reference=reference, log_n=log_n)


def log_score(fit: Fit, runs: pd.DataFrame) -> np.ndarray:
    """Pointwise log predictive density of ``runs``' log losses under ``fit`` (law-only), shape (m,)."""
    return _log_score(fit, runs)


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


def stack_log_scores(scores: np.ndarray) -> np.ndarray:
    """Stacking weights (k,) on pointwise log predictive densities ``scores`` of shape (k models, m points)."""
    return _stack(np.asarray(scores, dtype=float))


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

