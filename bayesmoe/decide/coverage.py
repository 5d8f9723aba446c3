"""How many held-out runs a band should cover, when the runs are predicted together.

A 90% band covers each held-out run with probability 0.9, but the runs of one prediction are not independent
draws: they share the fit's posterior draw (one exponent, one floor for all of them) and, with the
discrepancy term, one shift of the law's error (:mod:`bayesmoe.inference.discrepancy`). So the number covered
is not Binomial(n, 0.9). Where the shared part dominates, a calibrated band covers all n runs or few of them,
and "9 of 9 inside" is no evidence that it is too wide.

:func:`coverage_count` asks the model itself: each joint draw of the predictive (one row of ``(S, n)`` draws,
the runs' losses under one posterior draw, one shift) is a set of runs the model thinks could have happened;
counting how many of them fall in the marginal bands gives the count's predictive distribution. The observed
count is *consistent* with the band when it lies inside that distribution's central ``prob`` range, that is
when neither tail probability (at least / at most the observed count) is below ``(1 - prob) / 2``.

``tests/test_coverage.py`` checks the whole discrepancy layer this way by simulation. The truth is drawn from the
term's prior, chaining errors and 24 held-out runs come from the term's model, and the term is learned and
predicts. Over 400 replicates the count's PIT is uniform and all 24 are covered as often as predicted, inside the
chaining's reach and past it. A term blind to the shared shift (independent errors only) gets the marginal
coverage about right, but covers all 24 far more often than it predicts.
"""
from __future__ import annotations

import numpy as np

from ..errors import BayesMoeError


def coverage_count(draws: np.ndarray, observed: np.ndarray, prob: float = 0.9) -> dict:
    """The observed covered count against the count the joint predictive expects.

    Args:
        draws: joint predictive draws of the held-out runs' loss (nats, or any monotone transform of it, as
            long as ``observed`` is on the same scale), shape (S, n): row s is one joint draw.
        observed: the runs' observed losses on the same scale, shape (n,).
        prob: central interval probability of the marginal bands (from ``draws``' own quantiles).

    Returns:
        ``{"covered", "n_runs", "expected", "range", "p_at_least", "p_at_most", "p_all", "consistent",
        "distribution"}``: the observed count; the count's predictive mean and central ``prob`` range
        ``[lo, hi]``; the predictive probabilities of a count at least / at most the observed one and of all n
        covered; whether both tail probabilities exceed ``(1 - prob) / 2``; and the count's predictive
        probabilities of 0, 1, ..., n (length n + 1).
    """
    draws, observed = np.asarray(draws, dtype=float), np.asarray(observed, dtype=float)
    if draws.ndim != 2 or observed.shape != (draws.shape[1],):
        raise BayesMoeError(f"coverage_count needs draws of shape (S, n) and n observed values; "
                            f"got {draws.shape} and {observed.shape}")
    if not 0 < prob < 1:
        raise BayesMoeError(f"prob must be between 0 and 1, got {prob}")
    tail = (1 - prob) / 2
    lo, hi = np.quantile(draws, [tail, 1 - tail], axis=0)
    covered = int(np.sum((observed >= lo) & (observed <= hi)))
    replicated = np.sum((draws >= lo) & (draws <= hi), axis=1)
    p_at_least, p_at_most = float(np.mean(replicated >= covered)), float(np.mean(replicated <= covered))
    return {
        "covered": covered, "n_runs": int(draws.shape[1]), "expected": float(replicated.mean()),
        "range": [int(v) for v in np.quantile(replicated, [tail, 1 - tail], method="inverted_cdf")],
        "p_at_least": p_at_least, "p_at_most": p_at_most, "p_all": float(np.mean(replicated == draws.shape[1])),
        "consistent": bool(p_at_least > tail and p_at_most > tail),
        "distribution": (np.bincount(replicated, minlength=draws.shape[1] + 1) / len(replicated)).tolist(),
    }


def pooled_count(records: list[dict], prob: float = 0.9) -> dict:
    """Several independent predictions' counts taken together (separate fits of separate datasets, whose joint
    predictives share nothing): the sum of their covered counts against the convolution of their count
    distributions.

    Args:
        records: :func:`coverage_count` results, each with its ``distribution``.
        prob: as for :func:`coverage_count` (the verdict's tails are ``(1 - prob) / 2``).

    Returns:
        ``{"covered", "n_runs", "expected", "p_at_least", "p_at_most", "p_all", "consistent"}`` for the total.
    """
    if not records:
        raise BayesMoeError("pooled_count needs at least one coverage_count record")
    total = np.ones(1)
    for record in records:
        total = np.convolve(total, np.asarray(record["distribution"], dtype=float))
    covered = sum(int(r["covered"]) for r in records)
    p_at_least, p_at_most = float(total[covered:].sum()), float(total[: covered + 1].sum())
    tail = (1 - prob) / 2
    return {"covered": covered, "n_runs": len(total) - 1, "expected": float(np.arange(len(total)) @ total),
            "p_at_least": p_at_least, "p_at_most": p_at_most, "p_all": float(total[-1]),
            "consistent": bool(p_at_least > tail and p_at_most > tail)}
