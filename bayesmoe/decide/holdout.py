"""Extrapolation check: how well a fit predicts the runs it left out (``fit --holdout-top-compute K``).

The papers report the maximum absolute error of the fitted law on held-out (largest) runs, e.g.
0.018 nats for Ludziejewski et al. 2025. We report that, computed from the posterior median of the
law's mean loss, and the calibration of the predictive band: the fraction of held-out losses inside
the central ``prob`` posterior-predictive interval (observation noise included), with the covered count
against the count the band's own joint predictive expects (:func:`.coverage.coverage_count`: the held-out
runs share the fit's posterior draw, so their coverage is not Binomial).
"""
from __future__ import annotations

import numpy as np

from ..inference import Fit
from ..runs import validate_runs
from .coverage import coverage_count


def check(fit: Fit, prob: float = 0.9) -> dict | None:
    """Held-out coverage and errors of ``fit`` (a :class:`~bayesmoe.fit.Fit`); None when nothing was held out.

    Returns:
        ``{"n_runs", "prob", "coverage", "max_abs_error", "mean_abs_error", "runs": [{"run_id",
        "observed", "predicted", "lo", "hi", "abs_error", "inside"}], "count": {...}}``; losses in nats,
        ``predicted`` = posterior median of the law's mean loss, ``lo``/``hi`` the predictive interval,
        ``count`` as :func:`~bayesmoe.decide.coverage.coverage_count` returns it for that interval.
    """
    heldout = fit.heldout
    if heldout is None or not len(heldout):
        return None
    frame = validate_runs(heldout, required=fit.law.required_columns, law=fit.law.name, what="held-out runs")
    draws = np.exp(fit.predictive_log_loss(frame))  # the draws of ``Fit.predict``'s band
    point = fit.predict(heldout, prob=prob, noise=False)["q50"].to_numpy(float)
    observed = heldout["loss"].to_numpy(float)
    lo, hi = np.quantile(draws, [(1 - prob) / 2, 1 - (1 - prob) / 2], axis=0)
    inside = (observed >= lo) & (observed <= hi)
    error = np.abs(point - observed)
    runs = [
        {"run_id": str(r), "observed": float(o), "predicted": float(p), "lo": float(a), "hi": float(b),
         "abs_error": float(e), "inside": bool(i)}
        for r, o, p, a, b, e, i in zip(heldout["run_id"], observed, point, lo, hi, error, inside)
    ]
    count = coverage_count(draws, observed, prob)
    return {"n_runs": len(runs), "prob": prob, "coverage": float(inside.mean()), "max_abs_error": float(error.max()),
            "mean_abs_error": float(error.mean()), "runs": runs, "count": count}


def describe(result: dict) -> str:
    """One line for the terminal."""
    count = result["count"]
    expected = (f"{count['covered']} of {count['n_runs']}; its joint predictive expects {count['range'][0]}-"
                f"{count['range'][1]}" + ("" if count["consistent"] else ", so the band is miscalibrated"))
    return (f"held-out runs: {result['n_runs']}; {result['prob']:.0%} predictive coverage {result['coverage']:.0%} "
            f"({expected}); max abs error {result['max_abs_error']:.4f}, mean abs error "
            f"{result['mean_abs_error']:.4f} nats")
