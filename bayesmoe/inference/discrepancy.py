"""Model discrepancy: the error of the law's *form*, growing with the distance past the fitted runs.

A fit's posterior predictive treats the law as exact: its only noise is the per-run scatter ``sigma``.
Runs past the fitted range also carry the law's own error, which grows with how far they lie beyond the
data. The discrepancy term adds, on log loss, a zero-mean Normal whose sd grows linearly with that
distance:

    sd(d) = s0 + s1 * d,      d = max(0, ln(scale / reference))

``scale`` is a run's ``compute`` (FLOPs) for laws with a data term, or ``n_active`` where the training
length is fixed (the routing law, or a fit whose token count was constant); ``reference`` is the
largest scale of the fitted runs. ``s0`` (log-loss units) and ``s1`` (log-loss units per unit of
``ln`` distance) are learned from forward-chaining errors (:mod:`bayesmoe.decide.validate`): for held-out
run i with observed log loss y_i, law-only predictive draws of mean m_i and sd v_i, and distance d_i,

    y_i - m_i ~ Normal(0, sqrt(v_i^2 + sd(d_i)^2)),      s0, s1 ~ HalfNormal(PRIOR_SD)

and the posterior mode of (s0, s1) on their natural scale is kept: 0 where the errors need no term
(a two-parameter fit from a few dozen errors; the prior keeps it small when they hardly do).

The term is only learned as far as the chaining reached: ``max_distance`` (d_max) is the largest distance
among the errors it was learned from. No error says how the law's form error grows past it, so there the
growth gets a fresh slope that only the prior knows:

    sd(d) = s0 + s1 * d + s2 * max(0, d - d_max),      s2 ~ HalfNormal(PRIOR_SD), one draw per posterior draw

and the predictive integrates over s2 (:meth:`Discrepancy.noise`). Inside the reach this is the learned
term; past it the band widens by about ``PRIOR_SD`` per unit of ``ln`` distance, on the prior's authority
rather than the runs'. :meth:`Discrepancy.past_reach` flags those runs (``predict`` and ``optimum`` warn;
``bayesmoe validate --ahead K`` predicts K levels ahead and so learns from longer distances).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

#: HalfNormal prior sd of s0 and s1 (log-loss units; 0.02 is about 2% of the loss).
PRIOR_SD = 0.02


@dataclass(frozen=True)
class Discrepancy:
    """A learned discrepancy term (module docstring).

    Attributes:
        s0: sd on log loss at the edge of the fitted runs (log-loss units).
        s1: growth of the sd per unit of ``ln(scale / reference)``.
        scale_column: ``"compute"`` or ``"n_active"``: what the distance is measured in.
        reference: the largest ``scale_column`` value among the fitted runs.
        n_errors: how many forward-chaining errors it was learned from.
        max_distance: the largest ``ln`` distance among those errors (None in fits validated before it
            was recorded).
    """

    s0: float
    s1: float
    scale_column: str
    reference: float
    n_errors: int
    max_distance: float | None = None

    def distance(self, frame: pd.DataFrame) -> np.ndarray:
        """``max(0, ln(scale / reference))`` per run of ``frame``, shape (n,)."""
        return past_fitted(frame[self.scale_column].to_numpy(float), self.reference)

    def sd(self, frame: pd.DataFrame) -> np.ndarray:
        """The learned part of the discrepancy sd on log loss, ``s0 + s1 * d``, per run of ``frame``, shape (n,)."""
        return self.s0 + self.s1 * self.distance(frame)

    def sd_draws(self, frame: pd.DataFrame, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Discrepancy sd per draw and run, shape (draws, n): the learned part plus, past ``max_distance``,
        a slope ``s2 ~ HalfNormal(PRIOR_SD)`` drawn once per draw (module docstring)."""
        distance = self.distance(frame)
        return self.sd_at(distance[None, :], self.prior_slopes(rng, draws)[:, None])

    def prior_slopes(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Draws of the slope ``s2 ~ HalfNormal(PRIOR_SD)`` past the reach, shape (draws,); zeros when the
        reach is unknown (``max_distance`` None: the learned term alone)."""
        if self.max_distance is None:
            return np.zeros(draws)
        return np.abs(rng.normal(0.0, PRIOR_SD, draws))

    def sd_at(self, distance: np.ndarray, slope: np.ndarray | float = 0.0) -> np.ndarray:
        """Discrepancy sd on log loss at ``ln`` distances ``distance`` past the data, with past-reach slope
        ``slope`` (:meth:`prior_slopes`); the arrays broadcast against each other."""
        distance = np.asarray(distance, dtype=float)
        reach = np.inf if self.max_distance is None else self.max_distance
        return self.s0 + self.s1 * distance + np.asarray(slope) * np.maximum(0.0, distance - reach)

    def noise(self, frame: pd.DataFrame, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """Draws of the law's form error on log loss for the runs of ``frame``, shape ``(S, n)``."""
        return self.sd_draws(frame, rng, shape[0]) * rng.standard_normal(shape)

    def past_reach(self, frame: pd.DataFrame) -> np.ndarray:
        """True per run of ``frame`` whose distance exceeds the chaining's ``max_distance``, shape (n,)."""
        if self.max_distance is None:
            return np.zeros(len(frame), dtype=bool)
        return self.distance(frame) > self.max_distance + 1e-9

    def reach_warning(self, distance: float, subject: str = "this prediction") -> str:
        """One line: ``subject``, at ``distance``, lies past the distances the term was learned from."""
        return (f"the discrepancy term was learned from forward-chaining errors up to {self.max_distance:.2f} "
                f"(ln {self.scale_column}) past the data; {subject} is at {distance:.2f}: past that reach the band "
                f"widens at the prior's rate (up to about {PRIOR_SD:g} per ln unit), not at a measured one "
                "(`bayesmoe validate --ahead K` learns from longer steps)")

    def as_meta(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict | None) -> Discrepancy | None:
        return None if not meta else cls(**meta)


def past_fitted(scale: np.ndarray, reference: float | np.ndarray) -> np.ndarray:
    """``max(0, ln(scale / reference))``: how far past the fitted runs each scale lies (0 inside); the
    arrays broadcast against each other."""
    return np.maximum(0.0, np.log(np.asarray(scale, dtype=float) / np.asarray(reference, dtype=float)))


def learn(errors: np.ndarray, law_sd: np.ndarray, distance: np.ndarray) -> tuple[float, float]:
    """Posterior mode of (s0, s1) from forward-chaining errors (module docstring).

    Args:
        errors: observed minus predicted log loss per held-out run, shape (m,).
        law_sd: the law-only predictive sd of log loss per run (noise included), shape (m,).
        distance: ``ln`` distance past the data each run was predicted at (>= 0), shape (m,).

    Returns:
        (s0, s1), both >= 0.
    """
    errors, law_sd, distance = (np.asarray(a, dtype=float) for a in (errors, law_sd, distance))
    if not (errors.shape == law_sd.shape == distance.shape) or errors.size == 0:
        raise ValueError("errors, law_sd and distance must be non-empty arrays of one shape")

    def negative_log_posterior(s: np.ndarray) -> float:
        total = np.sqrt(law_sd**2 + (s[0] + s[1] * distance) ** 2)
        return -float(stats.norm.logpdf(errors, 0.0, total).sum() + stats.halfnorm.logpdf(s, scale=PRIOR_SD).sum())

    best = min(
        (optimize.minimize(negative_log_posterior, np.array(start), method="L-BFGS-B", bounds=[(0, None), (0, None)])
         for start in ([PRIOR_SD / 4, PRIOR_SD / 4], [PRIOR_SD, 0.0], [0.0, PRIOR_SD])),
        key=lambda r: r.fun,
    )
    s0, s1 = best.x
    return float(s0), float(s1)
