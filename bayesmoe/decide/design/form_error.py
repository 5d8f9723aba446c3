"""The law's form error in a loss target, and how a new run shrinks it by moving the data's edge.

A fit validated by ``bayesmoe validate`` carries a model-discrepancy term
(:mod:`bayesmoe.inference.discrepancy`): on log loss, a zero-mean error whose sd grows with the
distance ``d = ln(scale / edge)`` of a prediction past the largest fitted scale (the *edge*). A loss
target (the optimal loss at a budget, or the loss of one configuration) carries that error; a run
trained at a scale past the edge moves the edge to it and so shortens the extrapolation. Targets that
are not losses (optimal sizes, token counts, ratios) are unchanged: the term is zero-mean noise per
configuration and moves no optimum.

Draws are common random numbers: one standard Normal, one draw of the term's (s0, s1, t) and one past-reach
slope per posterior draw, so candidates differ only through the edge they set. A target is one loss, so the
term's independent part and its shared shift add up to its marginal sd.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...inference.discrepancy import Discrepancy, past_fitted


@dataclass(frozen=True)
class FormError:
    """The form-error part of a log-loss target.

    Attributes:
        term: the fit's learned discrepancy term.
        target_scale: the target's scale (``term.scale_column``: FLOPs or active parameters) per posterior
            draw, shape (S,).
        unit: standard Normal draws, shape (S,).
        slope: past-reach slope draws (:meth:`Discrepancy.prior_slopes`), shape (S,).
        hyper: draws of the term's (s0, s1, t) (:meth:`Discrepancy.hyper_draws`), shape (S, 3).
    """

    term: Discrepancy
    target_scale: np.ndarray
    unit: np.ndarray
    slope: np.ndarray
    hyper: np.ndarray

    def distance(self, edge: float | np.ndarray) -> np.ndarray:
        """The target's ``ln`` distance past the data with its edge at ``edge`` (scalar or (n,)), shape (S,) or
        (n, S); an edge below the fit's own largest scale counts as that scale."""
        edge = np.maximum(self.term.reference, np.asarray(edge, dtype=float))[..., None]
        return past_fitted(self.target_scale, edge)

    def shift(self, edge: float | np.ndarray) -> np.ndarray:
        """Draws of the form error on log loss with the data's edge at ``edge``, shape (S,) or (n, S)."""
        return self.term.sd_at(self.distance(edge), self.slope, self.hyper) * self.unit


def form_error(term: Discrepancy | None, target: str, scales: dict[str, np.ndarray], seed: int) -> FormError | None:
    """The form error of a ``loss`` target with the fit's ``term``; None for other targets or without a term.

    Args:
        term: the fit's discrepancy term (None: not learned, or left out).
        target: the design target.
        scales: the target's ``compute`` and, where known, ``n_active`` per draw, each shape (S,).
        seed: seeds the common random numbers.
    """
    if term is None or target != "loss" or term.scale_column not in scales:
        return None
    scale = np.asarray(scales[term.scale_column], dtype=float)
    rng = np.random.default_rng([int(seed), 20])
    return FormError(term, scale, rng.standard_normal(scale.shape), term.prior_slopes(rng, scale.size),
                     term.hyper_draws(rng, scale.size))
