"""Model discrepancy: the error of the law's *form*, growing with the distance past the fitted runs.

A fit's posterior predictive treats the law as exact: its only noise is the per-run scatter ``sigma``.
Runs past the fitted range also carry the law's own error, which grows with how far they lie beyond the
data. The discrepancy term adds, on log loss, a zero-mean error in two parts:

    e_i = (s0 + s1 d_i) z_i  +  t d_i z,      d = max(0, ln(scale / reference)),  z_i, z ~ Normal(0, 1)

an independent part per run, and a *shift* ``t d z`` with one ``z`` common to every run predicted from the
same fit: a law extrapolated one step errs in much the same direction for all the runs there (Clark et
al.'s 28 runs at 1.3B are over-predicted all but three). A run's marginal sd is ``sqrt((s0 + s1 d)^2 +
(t d)^2)``; the shift drops out of differences between runs at one distance.

``scale`` is a run's ``compute`` (FLOPs) for laws with a data term, or ``n_active`` where the training
length is fixed (the routing law, or a fit whose token count was constant); ``reference`` is the
largest scale of the fitted runs. ``s0`` (log-loss units) and ``s1``, ``t`` (log-loss units per unit of
``ln`` distance) are learned from forward-chaining errors (:mod:`bayesmoe.decide.validate`). Within one
chaining step k (one refit predicting one level), held-out run i with observed log loss y_i, law-only
predictive draws of mean m_i and sd v_i, and distance d_i:

    y_k - m_k ~ Normal(0, diag(v_i^2 + (s0 + s1 d_i)^2) + (t d_k)(t d_k)^T),      s0, s1, t ~ HalfNormal(PRIOR_SD)

and the steps are independent. A few dozen errors from a handful of steps fix (s0, s1, t) only loosely, so
the term keeps their *posterior*, not a point: it is computed on a grid (:func:`hyper_grid`: each parameter
at 0 and at ``GRID_POINTS - 1`` log-spaced values up to ``GRID_MAX``, weighted by the prior's mass), and
``KEPT_DRAWS`` draws of it are stored. The predictive draws one (s0, s1, t) per posterior draw
(:meth:`Discrepancy.noise`). ``s0``, ``s1`` and ``t`` themselves are the posterior means, for display.
``benchmarks/discrepancy_structure.py`` measured the choice: on every calibration case but one the
chaining errors favour the shared shift (log Bayes factor up to 10), and on Clark's 1.3B split the
held-out runs' joint log score rises by 8-12 nats over the independent plug-in term.

The term is only learned as far as the chaining reached: ``max_distance`` (d_max) is the largest distance
among the errors it was learned from. No error says how the law's form error grows past it, so there the
independent part gets a fresh slope that only the prior knows:

    s0 + s1 d + s2 max(0, d - d_max),      s2 ~ HalfNormal(PRIOR_SD), one draw per posterior draw

and the predictive integrates over s2 too. Inside the reach this is the learned term; past it the band
widens by about ``PRIOR_SD`` per unit of ``ln`` distance, on the prior's authority rather than the runs'.
:meth:`Discrepancy.past_reach` flags those runs (``predict`` and ``optimum`` warn; ``bayesmoe validate
--ahead K`` predicts K levels ahead and so learns from longer distances).

The law's form error also *tilts* across the runs of one prediction: at one budget the errors of small and
large models differ in sign (the chaining steps of our sweep and Epoch's runs, and the GPU runs 3x-10x past
our sweep, show slopes of 0.003-0.02 in log loss per unit of ``ln n_active``). A tilt barely changes a
run's loss band, but it moves *which* configuration is best, and that is what the optimum's size bands
describe. So the term also carries

    tilt_i = u d_i z' (x_i - x_bar),      x = ln n_active, x_bar its mean over the runs, z' ~ Normal(0, 1),
    u ~ HalfNormal(PRIOR_SD)

learned from the same chaining steps, where the errors of step k are Normal with covariance
``diag(...) + U U^T``, ``U = [t d_k, u d_k (x_k - x_bar_k)]`` (rank two; :func:`normal_low_rank_logpdf`).
u's posterior is computed conditionally on each stored draw of (s0, s1, t) (:func:`learn_tilt`): those keep
the posterior they have without the tilt, so ``predict``'s bands are unchanged; the tilt (``u``, ``tilts``)
enters only the bands of each posterior draw's own best configuration (``optimum``: ``optimal_config_bands``;
:meth:`Discrepancy.tilt`). Learning all four jointly would re-attribute some of the per-run variance to the
tilt; that is not done here. Where the chaining steps' runs barely differ in size (levels of ``n_active``, as
for the routing law) the errors say little about u, and its posterior stays near the prior.

The prior's scale, 0.02, is wider than most datasets' chaining errors need (their log evidence favours 0.003-0.01
by 1-4 nats; ``benchmarks/discrepancy_prior.py``), so where the errors say little the band stays conservative.
``prior_scale="learned"`` (``bayesmoe validate --prior-scale learned``) puts a hierarchical prior on that scale
instead: ``s0, s1, t ~ HalfNormal(tau)``, tau log-uniform on ``LEARNED_SCALES``, integrated out on the same grid.
The past-reach slope s2 and the tilt u then take tau's posterior mean (``prior_sd``). Measured on five held-out
splits, it centres the pooled coverage better (76 of 85 held-out runs covered against 82 with the fixed prior) and
costs Clark's 1.3B split its width (22 of 28 against 27); the fixed prior stays the default (RESULTS.md, "Should
the term's prior scale be learned?").

A term saved before the shift and the posterior were kept (no ``t``, no ``draws``) loads as the point
(s0, s1) with ``t = 0``: the independent term it was. A term saved before the tilt was learned has ``u = 0``
and no ``tilts``: the optimum's bands are the law's alone, as they were.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

#: HalfNormal prior sd of s0, s1, t and the past-reach slope s2 (log-loss units; 0.02 is about 2% of the loss).
PRIOR_SD = 0.02
#: Grid of each hyper-parameter: 0 and GRID_POINTS - 1 log-spaced values from GRID_MIN to GRID_MAX.
GRID_POINTS, GRID_MIN, GRID_MAX = 28, 2e-4, 0.2
#: Posterior draws of (s0, s1, t) kept in a fit (resampled from the grid with a fixed seed).
KEPT_DRAWS = 256
#: With a learned prior scale (``validate --prior-scale learned``): tau, the HalfNormal scale of s0, s1 and t, is
#: log-uniform on these values (log-loss units), and integrated out with them.
LEARNED_SCALES = np.geomspace(0.0025, 0.04, 13)
#: Grid points per block when evaluating the chaining likelihood (bounds the memory to about 8 x m x this bytes).
_BLOCK = 2048


@dataclass(frozen=True)
class Discrepancy:
    """A learned discrepancy term (module docstring).

    Attributes:
        s0: sd of the independent part at the edge of the fitted runs (log-loss units; posterior mean).
        s1: growth of the independent sd per unit of ``ln(scale / reference)`` (posterior mean).
        scale_column: ``"compute"`` or ``"n_active"``: what the distance is measured in.
        reference: the largest ``scale_column`` value among the fitted runs.
        n_errors: how many forward-chaining errors it was learned from.
        max_distance: the largest ``ln`` distance among those errors (None in fits validated before it
            was recorded).
        t: sd of the shift shared by the runs of one prediction, per unit of ``ln`` distance (posterior mean;
            0 in terms saved before it was learned).
        draws: posterior draws of ``[s0, s1, t]``, ``KEPT_DRAWS`` of them (None: the point values alone, as in
            terms saved before the posterior was kept).
        u: sd of the tilt along ``ln n_active`` per unit of ``ln`` distance (posterior mean; 0 when not learned).
        tilts: posterior draws of u, one per draw of ``draws`` (None: no tilt learned).
        prior_sd: the HalfNormal scale of the prior on s0, s1, t, and of s2 past the reach and u: ``PRIOR_SD``,
            or with a learned scale its posterior mean (terms saved before it load with ``PRIOR_SD``).
        scale_learned: whether ``prior_sd`` was learned from the errors (``prior_scale="learned"``).
    """

    s0: float
    s1: float
    scale_column: str
    reference: float
    n_errors: int
    max_distance: float | None = None
    t: float = 0.0
    draws: list[list[float]] | None = None
    u: float = 0.0
    tilts: list[float] | None = None
    prior_sd: float = PRIOR_SD
    scale_learned: bool = False

    def distance(self, frame: pd.DataFrame) -> np.ndarray:
        """``max(0, ln(scale / reference))`` per run of ``frame``, shape (n,)."""
        return past_fitted(frame[self.scale_column].to_numpy(float), self.reference)

    def hyper_draws(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Draws of ``(s0, s1, t)`` from the stored posterior (or the point values), shape (draws, 3)."""
        if self.draws is None:
            return np.tile([self.s0, self.s1, self.t], (draws, 1))
        kept = np.asarray(self.draws, dtype=float)
        return kept[rng.integers(len(kept), size=draws)]

    def sd_draws(self, frame: pd.DataFrame, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Marginal discrepancy sd per draw and run, shape (draws, n): a posterior draw of (s0, s1, t) and,
        past ``max_distance``, a slope ``s2 ~ HalfNormal(prior_sd)`` per draw (module docstring)."""
        distance = self.distance(frame)[None, :]
        return self.sd_at(distance, self.prior_slopes(rng, draws)[:, None], self.hyper_draws(rng, draws)[:, None, :])

    def prior_slopes(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Draws of the slope ``s2 ~ HalfNormal(prior_sd)`` past the reach, shape (draws,); zeros when the
        reach is unknown (``max_distance`` None: the learned term alone)."""
        if self.max_distance is None:
            return np.zeros(draws)
        return np.abs(rng.normal(0.0, self.prior_sd, draws))

    def _parts(self, distance: np.ndarray, slope, hyper) -> tuple[np.ndarray, np.ndarray]:
        """(independent sd, shift sd) at ``distance``; ``hyper`` (..., 3) draws of (s0, s1, t) or None (the means)."""
        distance = np.asarray(distance, dtype=float)
        s0, s1, t = (self.s0, self.s1, self.t) if hyper is None else np.moveaxis(np.asarray(hyper, float), -1, 0)
        reach = np.inf if self.max_distance is None else self.max_distance
        independent = s0 + s1 * distance + np.asarray(slope) * np.maximum(0.0, distance - reach)
        return independent, t * distance

    def sd_at(self, distance: np.ndarray, slope: np.ndarray | float = 0.0,
              hyper: np.ndarray | None = None) -> np.ndarray:
        """Marginal discrepancy sd on log loss at ``ln`` distances ``distance`` past the data, with past-reach
        slope ``slope`` (:meth:`prior_slopes`) and hyper-parameters ``hyper`` (``(..., 3)`` draws of
        (s0, s1, t), :meth:`hyper_draws`; None: the posterior means); the arrays broadcast together."""
        independent, shift = self._parts(distance, slope, hyper)
        return np.hypot(independent, shift)

    def noise(self, frame: pd.DataFrame, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """Draws of the law's form error on log loss for the runs of ``frame``, shape ``(S, n)``: per draw, one
        (s0, s1, t) and past-reach slope, an independent Normal per run and one shift common to all the runs."""
        draws = shape[0]
        hyper = self.hyper_draws(rng, draws)[:, None, :]
        independent, shift = self._parts(self.distance(frame)[None, :], self.prior_slopes(rng, draws)[:, None], hyper)
        return independent * rng.standard_normal(shape) + shift * rng.standard_normal((draws, 1))

    def tilt(self, frame: pd.DataFrame, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Draws of the tilt of the law's form error across the runs of ``frame`` (one prediction, e.g. the
        candidate configurations of one budget), shape (draws, n): ``u d_i z' (ln n_active_i - mean)`` with one
        posterior draw of u and one z' per draw; zeros when no tilt was learned."""
        if self.tilts is None or "n_active" not in frame.columns:
            return np.zeros((draws, len(frame)))
        u = np.asarray(self.tilts, dtype=float)[rng.integers(len(self.tilts), size=draws)]
        x = np.log(frame["n_active"].to_numpy(float))
        return (u * rng.standard_normal(draws))[:, None] * (self.distance(frame) * (x - x.mean()))[None, :]

    def past_reach(self, frame: pd.DataFrame) -> np.ndarray:
        """True per run of ``frame`` whose distance exceeds the chaining's ``max_distance``, shape (n,)."""
        if self.max_distance is None:
            return np.zeros(len(frame), dtype=bool)
        return self.distance(frame) > self.max_distance + 1e-9

    def formula(self, digits: int = 4) -> str:
        """The term in words: the independent sd and the shared shift, each per ``ln`` distance (posterior means)."""
        ln = f"ln({self.scale_column} / {self.reference:.3g})"
        text = f"sd {self.s0:.{digits}f} + {self.s1:.{digits}f} {ln} per run"
        if self.t:
            text += f", plus a shift {self.t:.{digits}f} {ln} shared by the runs of one prediction"
        if self.tilts is not None:
            text += (f", and a tilt {self.u:.{digits}f} {ln} per unit of ln n_active across them (in the bands "
                     "of the best configuration only)")
        text += " (posterior means)" if self.draws is not None else ""
        return text + (f"; prior scale learned from the errors: {self.prior_sd:.{digits}f}" if self.scale_learned
                       else "")

    def reach_warning(self, distance: float, subject: str = "this prediction") -> str:
        """One line: ``subject``, at ``distance``, lies past the distances the term was learned from."""
        return (f"the discrepancy term was learned from forward-chaining errors up to {self.max_distance:.2f} "
                f"(ln {self.scale_column}) past the data; {subject} is at {distance:.2f}: past that reach the band "
                f"widens at the prior's rate (up to about {self.prior_sd:.2g} per ln unit), not at a measured one "
                "(`bayesmoe validate --ahead K` learns from longer steps)")

    def as_meta(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict | None) -> Discrepancy | None:
        return None if not meta else cls(**meta)

    @classmethod
    def learned(cls, errors: np.ndarray, law_sd: np.ndarray, distance: np.ndarray, step: np.ndarray, *,
                scale_column: str, reference: float, log_n: np.ndarray | None = None,
                prior_scale: str = "fixed") -> Discrepancy:
        """The term learned from forward-chaining errors (:func:`learn`), placed at ``reference``; with
        ``log_n`` (``ln n_active`` of each error's run, shape (m,)) its tilt too (:func:`learn_tilt`).
        ``prior_scale``: ``"fixed"`` (HalfNormal(PRIOR_SD)) or ``"learned"`` (tau integrated out; module
        docstring)."""
        if prior_scale not in ("fixed", "learned"):
            raise ValueError(f"prior_scale must be 'fixed' or 'learned', got {prior_scale!r}")
        learned = prior_scale == "learned"
        posterior = learn(errors, law_sd, distance, step, prior_sd=LEARNED_SCALES if learned else PRIOR_SD)
        tilt = {}
        if log_n is not None:
            tilts, _ = learn_tilt(errors, law_sd, distance, step, log_n, posterior.kept, prior_sd=posterior.prior_sd)
            tilt = {"u": float(tilts.mean()), "tilts": tilts.round(7).tolist()}
        return cls(s0=posterior.mean[0], s1=posterior.mean[1], t=posterior.mean[2], scale_column=scale_column,
                   reference=float(reference), n_errors=len(np.asarray(errors)),
                   max_distance=float(np.max(distance)), draws=posterior.kept.round(7).tolist(), **tilt,
                   prior_sd=posterior.prior_sd, scale_learned=learned)


def past_fitted(scale: np.ndarray, reference: float | np.ndarray) -> np.ndarray:
    """``max(0, ln(scale / reference))``: how far past the fitted runs each scale lies (0 inside); the
    arrays broadcast against each other."""
    return np.maximum(0.0, np.log(np.asarray(scale, dtype=float) / np.asarray(reference, dtype=float)))


def hyper_grid(prior_sd: float = PRIOR_SD) -> tuple[np.ndarray, np.ndarray]:
    """One hyper-parameter's grid and the log prior mass of each point's cell under HalfNormal(``prior_sd``),
    both shape (GRID_POINTS,): 0 and log-spaced values from GRID_MIN to GRID_MAX, cells cut at the midpoints."""
    values = np.concatenate([[0.0], np.geomspace(GRID_MIN, GRID_MAX, GRID_POINTS - 1)])
    edges = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [np.inf]])
    cdf = stats.halfnorm.cdf(edges, scale=prior_sd)
    return values, np.log(np.maximum(np.diff(cdf), 1e-300))


@dataclass(frozen=True)
class HyperPosterior:
    """The grid posterior of (s0, s1, t) (:func:`learn`).

    Attributes:
        points: grid points, shape (G, 3).
        log_weights: normalised log posterior mass per point, shape (G,).
        log_evidence: log marginal likelihood of the errors under the term.
        mean: posterior means of (s0, s1, t), shape (3,).
        kept: ``KEPT_DRAWS`` posterior draws resampled with a fixed seed, shape (KEPT_DRAWS, 3).
        prior_sd: the prior's HalfNormal scale: the fixed one, or the posterior mean of a learned one.
    """

    points: np.ndarray
    log_weights: np.ndarray
    log_evidence: float
    mean: np.ndarray
    kept: np.ndarray
    prior_sd: float = PRIOR_SD


def normal_rank_one_logpdf(residual: np.ndarray, diag: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """log Normal(residual; 0, diag(diag) + shift shift^T) row by row (Sherman-Morrison).

    Args:
        residual: shape (n,) or (R, n).
        diag, shift: shape (R, n): the diagonal variances and the shared column.

    Returns:
        shape (R,).
    """
    inv = 1.0 / diag
    denom = 1.0 + np.sum(shift * shift * inv, axis=1)
    quad = np.sum(residual * residual * inv, axis=1) - np.sum(residual * shift * inv, axis=1) ** 2 / denom
    return -0.5 * (quad + np.sum(np.log(diag), axis=1) + np.log(denom) + diag.shape[1] * np.log(2 * np.pi))


def normal_low_rank_logpdf(residual: np.ndarray, diag: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """log Normal(residual; 0, diag(diag) + cols cols^T) row by row (Woodbury identity).

    Args:
        residual: shape (n,).
        diag: shape (R, n): the diagonal variances.
        cols: shape (R, n, r): the low-rank columns.

    Returns:
        shape (R,).
    """
    inv = 1.0 / diag
    scaled = cols * inv[..., None]                                          # D^-1 U
    capacitance = np.eye(cols.shape[-1]) + np.einsum("rni,rnj->rij", cols, scaled)
    b = np.einsum("rni,n->ri", scaled, residual)                            # U^T D^-1 e
    quad = np.sum(residual * residual * inv, axis=1) - np.einsum(
        "ri,ri->r", b, np.linalg.solve(capacitance, b[..., None])[..., 0])
    logdet = np.sum(np.log(diag), axis=1) + np.linalg.slogdet(capacitance)[1]
    return -0.5 * (quad + logdet + diag.shape[1] * np.log(2 * np.pi))


def learn_tilt(errors: np.ndarray, law_sd: np.ndarray, distance: np.ndarray, step: np.ndarray, log_n: np.ndarray,
               hyper: np.ndarray, *, prior_sd: float = PRIOR_SD) -> tuple[np.ndarray, float]:
    """Posterior draws of the tilt u, one per draw of ``hyper`` (module docstring).

    Args:
        errors, law_sd, distance, step: as for :func:`learn`, shape (m,).
        log_n: ``ln n_active`` of each error's run, shape (m,); centred within each chaining step.
        hyper: draws of (s0, s1, t), shape (J, 3) (:attr:`HyperPosterior.kept`).
        prior_sd: u ~ HalfNormal(prior_sd).

    Returns:
        (u draws shape (J,), sampled per draw of ``hyper`` from u's grid posterior given that draw, with a fixed
        seed; the log Bayes factor of the tilt against none, with (s0, s1, t) averaged over ``hyper``).
    """
    errors, law_sd, distance, log_n = (np.asarray(a, dtype=float) for a in (errors, law_sd, distance, log_n))
    hyper = np.asarray(hyper, dtype=float)
    values, log_mass = hyper_grid(prior_sd)
    labels = pd.factorize(np.asarray(step))[0]
    s0, s1, t = (np.repeat(hyper[:, i], len(values))[:, None] for i in range(3))   # (J * U, 1)
    u = np.tile(values, len(hyper))[:, None]
    loglik = np.zeros(len(hyper) * len(values))
    for k in range(labels.max() + 1):
        mine = labels == k
        d, e, v2 = distance[mine][None, :], errors[mine], law_sd[mine][None, :] ** 2
        centred = (log_n[mine] - log_n[mine].mean())[None, :]
        diag = v2 + (s0 + s1 * d) ** 2
        cols = np.stack([np.broadcast_to(t * d, diag.shape), u * d * centred], axis=-1)
        loglik += normal_low_rank_logpdf(e, diag, cols)
    loglik = loglik.reshape(len(hyper), len(values))
    joint = log_mass[None, :] + loglik
    post = np.exp(joint - special.logsumexp(joint, axis=1, keepdims=True))
    rng = np.random.default_rng(1)
    draws = values[[rng.choice(len(values), p=row / row.sum()) for row in post]]
    log_bf = float(special.logsumexp(joint) - special.logsumexp(loglik[:, 0]))
    return draws, log_bf


def chaining_loglik(errors: np.ndarray, law_sd: np.ndarray, distance: np.ndarray, step: np.ndarray,
                    points: np.ndarray) -> np.ndarray:
    """Log-likelihood of forward-chaining errors (module docstring) at each (s0, s1, t) of ``points`` (G, 3):
    errors, law_sd, distance and ``step`` (the chaining step of each error, any labels) of shape (m,) -> (G,)."""
    errors, law_sd, distance = (np.asarray(a, dtype=float) for a in (errors, law_sd, distance))
    labels = pd.factorize(np.asarray(step))[0]
    total = np.zeros(len(points))
    for k in range(labels.max() + 1):
        mine = labels == k
        d, e, v2 = distance[mine][None, :], errors[mine], law_sd[mine][None, :] ** 2
        for lo in range(0, len(points), _BLOCK):
            p = points[lo:lo + _BLOCK]
            diag = v2 + (p[:, :1] + p[:, 1:2] * d) ** 2
            total[lo:lo + _BLOCK] += normal_rank_one_logpdf(e, diag, p[:, 2:3] * d)
    return total


def learn(errors: np.ndarray, law_sd: np.ndarray, distance: np.ndarray, step: np.ndarray, *,
          shared: bool = True, prior_sd: float | np.ndarray = PRIOR_SD) -> HyperPosterior:
    """Grid posterior of (s0, s1, t) from forward-chaining errors (module docstring).

    Args:
        errors: observed minus predicted log loss per held-out run, shape (m,).
        law_sd: the law-only predictive sd of log loss per run (noise included), shape (m,).
        distance: ``ln`` distance past the data each run was predicted at (>= 0), shape (m,).
        step: the chaining step each run was predicted in (one refit, one level ahead), shape (m,).
        shared: False fixes t = 0 (the independent term alone; for comparison).
        prior_sd: the HalfNormal scale of s0, s1, t; several values (e.g. ``LEARNED_SCALES``): the scale tau is
            log-uniform on them and integrated out (a hierarchical prior), and the posterior's ``prior_sd`` is
            tau's posterior mean.

    Returns:
        The :class:`HyperPosterior`.
    """
    errors, law_sd, distance = (np.asarray(a, dtype=float) for a in (errors, law_sd, distance))
    if not (errors.shape == law_sd.shape == distance.shape == np.shape(step)) or errors.size == 0:
        raise ValueError("errors, law_sd, distance and step must be non-empty arrays of one shape")
    scales = np.atleast_1d(np.asarray(prior_sd, dtype=float))
    points = grid_points(shared)
    loglik = chaining_loglik(errors, law_sd, distance, step, points)
    by_scale = np.stack([grid_log_prior(tau, shared) for tau in scales]) - np.log(len(scales))   # (K, G)
    joint = special.logsumexp(by_scale, axis=0) + loglik
    log_evidence = float(special.logsumexp(joint))
    log_weights = joint - log_evidence
    weights = np.exp(log_weights)
    kept = points[np.random.default_rng(0).choice(len(points), KEPT_DRAWS, p=weights / weights.sum())]
    scale_weights = special.softmax(special.logsumexp(by_scale + loglik, axis=1))
    return HyperPosterior(points, log_weights, log_evidence, weights @ points, kept, float(scale_weights @ scales))


def grid_points(shared: bool = True) -> np.ndarray:
    """The (s0, s1, t) grid of :func:`learn`, shape (G, 3): each at the :func:`hyper_grid` values (t = 0 alone
    unless ``shared``)."""
    values = hyper_grid()[0]
    t_values = values if shared else np.zeros(1)
    return np.stack(np.meshgrid(values, values, t_values, indexing="ij"), axis=-1).reshape(-1, 3)


def grid_log_prior(prior_sd: float, shared: bool = True) -> np.ndarray:
    """Log prior mass of each :func:`grid_points` point under HalfNormal(``prior_sd``) on s0, s1 and t, shape (G,)."""
    _, mass = hyper_grid(prior_sd)
    t_mass = mass if shared else np.zeros(1)
    return (mass[:, None, None] + mass[None, :, None] + t_mass[None, None, :]).ravel()
