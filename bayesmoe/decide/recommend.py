"""Recommendations with uncertainty: what to train at a budget, how sure we are, what a convenient choice costs.

For a law with a registered design space (:class:`bayesmoe.optimum.Space`: ``granularity``, ``joint``)
and each budget, from posterior draws theta_s:

- **regret** of a configuration x (hidden size d and the discrete choice: experts or granularity):
  ``R_s(x) = L_s(x) - L*_s`` with ``L*_s`` the optimal loss of draw s. A configuration is *near-optimal*
  in draw s when ``R_s(x) <= epsilon * L*_s`` (``epsilon`` relative, default 0.005 = 0.5%).
- **bayes**: the configuration with the least expected loss (the Bayes decision; grid search, then
  golden-section refinement of d for every discrete choice), with its expected regret and P(near-optimal).
- **near_optimal**: per discrete choice, the range of d whose *expected* regret is within epsilon of
  the expected optimal loss (``E[R(x)] <= epsilon E[L*]``).
- **snapped**: the Bayes configuration with d rounded (down or up, whichever is better in expectation)
  to a multiple of 128 and to a power of two (the discrete choices are already powers of two): the
  expected regret and P(near-optimal) of that convenient choice.
- **candidates**: the same numbers for user-given configurations.
- **moe_vs_dense**: P(best MoE loss < best dense loss) at the budget, each draw's own optima compared as if
  its parameters were known (None for a published set: one draw, no posterior; the probability that the
  *recommended* MoE run beats the recommended dense run is :mod:`bayesmoe.decide.configs`'), the loss gap, and the
  compute-equivalent multiplier ``C_dense / C`` where the best dense model reaches the best MoE loss
  (solved per draw by bisection in log compute; > 1 means MoE saves compute). Draws where dense
  cannot match within ``MAX_MULTIPLIER`` are counted in ``p_dense_cannot_match`` and left out of the band.

The grid has ``grid`` log-spaced values of d per budget spanning the posterior's optimal d (x1/8 to x8);
at most ``max_draws`` draws are used (a seeded subsample) to bound memory.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import numpy as np

from ..config import float64
from ..errors import BayesMoeError
from ..inference import Fit
from .optimum import OptimumResult, PointPosterior, Space, optimum, space_for

MAX_MULTIPLIER = 1e6
BISECTION_STEPS = 50
HARDWARE_RULES = ("d_multiple_of_128", "d_power_of_2")


def band(values: np.ndarray, prob: float, method: str = "linear") -> dict:
    """Central ``prob`` quantiles {q05, q50, q95} (names follow ``prob``) of the finite ``values``; NaN if none.

    ``method``: numpy's quantile method (``"inverted_cdf"`` keeps discrete quantities on values they take).
    """
    lo = (1 - prob) / 2
    names = (f"q{round(lo * 100):02d}", "q50", f"q{round((1 - lo) * 100):02d}")
    finite = values[np.isfinite(values)]
    if not finite.size:
        return dict.fromkeys(names, float("nan"))
    return dict(zip(names, map(float, np.quantile(finite, [lo, 0.5, 1 - lo], method=method))))


def _snap(d: float, rule: str) -> tuple[float, float]:
    """The two hardware-friendly neighbours (below, above) of hidden size ``d`` under ``rule``."""
    if rule == "d_multiple_of_128":
        return max(128.0, 128.0 * np.floor(d / 128)), max(128.0, 128.0 * np.ceil(d / 128))
    return 2.0 ** np.floor(np.log2(d)), 2.0 ** np.ceil(np.log2(d))


class _Evaluator:
    """Loss and regret of configurations at one budget, for every draw."""

    def __init__(self, space: Space, theta: dict, compute: float, best: np.ndarray, epsilon: float, options: dict):
        self.space, self.theta, self.compute, self.epsilon, self.options = space, theta, compute, epsilon, options
        self.best = best  # (S,) optimal loss per draw

    def loss(self, d: np.ndarray, choices: np.ndarray) -> np.ndarray:
        """(S, K, M) loss for d (K,) and choices (M,)."""
        out = self.space.loss(
            self.theta,
            np.array([self.compute]),
            np.asarray(d, float)[None, :],
            np.asarray(choices, float),
            **self.options,
        )
        return np.asarray(out)[:, 0]

    def expected_loss(self, d: float, choice: float) -> float:
        return float(np.mean(self.loss(np.array([d]), np.array([choice]))[:, 0, 0]))

    def refine(self, lo: float, hi: float, choice: float, steps: int = 30) -> float:
        """Golden-section search of the expected loss over d in [lo, hi] (the grid cell around the best point)."""
        a, b = np.log(lo), np.log(hi)
        x1, x2 = b - 0.618034 * (b - a), a + 0.618034 * (b - a)
        f1, f2 = self.expected_loss(np.exp(x1), choice), self.expected_loss(np.exp(x2), choice)
        for _ in range(steps):
            if f1 <= f2:
                b, x2, f2 = x2, x1, f1
                x1 = b - 0.618034 * (b - a)
                f1 = self.expected_loss(np.exp(x1), choice)
            else:
                a, x1, f1 = x1, x2, f2
                x2 = a + 0.618034 * (b - a)
                f2 = self.expected_loss(np.exp(x2), choice)
        return float(np.exp(0.5 * (a + b)))

    def score(self, d: float, choice: float) -> dict:
        loss = self.loss(np.array([d]), np.array([choice]))[:, 0, 0]
        regret = loss - self.best
        out = {self.space.size: float(d), self.space.choice: float(choice),
               "expected_loss": float(np.mean(loss)), "expected_regret": float(np.mean(regret)),
               "p_near_optimal": float(np.mean(regret <= self.epsilon * self.best))}
        if self.space.describe is not None:
            counts = self.space.describe(np.float64(d), np.float64(choice), self.compute, **self.options)
            out.update({k: float(v) for k, v in counts.items()})
        return out


@float64
def recommend(
    posterior: Fit | PointPosterior,
    compute: Sequence[float] | np.ndarray,
    *,
    objective: str = "compute",
    group: str | None = None,
    epsilon: float = 0.005,
    candidates: Sequence[Mapping[str, float]] = (),
    prob: float = 0.9,
    grid: int = 96,
    max_draws: int = 1000,
    seed: int = 0,
    result: OptimumResult | None = None,
    **options: Any,
) -> list[dict] | None:
    """Recommendations per budget (module doc); None when the law has no registered design space.

    Args:
        posterior: a :class:`~bayesmoe.fit.Fit` or :class:`~bayesmoe.optimum.PointPosterior`.
        compute: budgets in FLOPs (B,).
        objective, group, options: as for :func:`bayesmoe.decide.optimum.optimum` (e.g. ``memory=`` bytes).
        epsilon: relative loss tolerance of "near-optimal" (0.005 = within 0.5% of the optimal loss).
        candidates: configurations to score, e.g. ``[{"d_model": 2048, "n_experts": 8}]``.
        prob: central probability of the reported bands.
        result: the optimum already computed for these budgets (saves recomputing it).

    Returns:
        One dict per budget: ``compute``, ``epsilon``, ``bayes``, ``near_optimal``, ``snapped``,
        ``candidates``, ``moe_vs_dense`` (see module doc).
    """
    space = space_for(posterior.law)
    if space is None:
        return None
    if not 0 < epsilon < 1:
        raise BayesMoeError(f"epsilon must be a relative loss tolerance in (0, 1), got {epsilon}")
    budgets = np.atleast_1d(np.asarray(compute, dtype=float))
    result = result or optimum(posterior, budgets, objective=objective, group=group, **options)
    theta = posterior.draws(group)
    n_draws = len(next(iter(theta.values())))
    rows = np.arange(n_draws)
    if n_draws > max_draws:
        rows = np.sort(np.random.default_rng(seed).choice(n_draws, max_draws, replace=False))
    theta = {k: np.asarray(v)[rows] for k, v in theta.items()}
    options = {**options, "objective": objective}
    choices = np.asarray(space.choices(options), float)
    for c in candidates:
        missing = {space.size, space.choice} - set(c)
        if missing:
            raise BayesMoeError(f"candidate {dict(c)} lacks {', '.join(sorted(missing))} (law '{posterior.law.name}' "
                                f"configurations are {space.size} and {space.choice})")
    versus = _moe_vs_dense(space, theta, budgets, prob, options)
    out = []
    for b, c in enumerate(budgets):
        d_opt = result.draws[space.size][rows, b]
        best = result.draws["loss"][rows, b]
        if not np.any(np.isfinite(d_opt)):
            out.append({"compute": float(c), "epsilon": epsilon, "feasible": False})
            continue
        lo, hi = np.nanquantile(d_opt, [0.01, 0.99])
        d_grid = np.geomspace(lo / 8, hi * 8, grid)
        ev = _Evaluator(space, theta, float(c), best, epsilon, options)
        loss = ev.loss(d_grid, choices)  # (S, K, M)
        ev.best = np.minimum(best, np.min(loss, axis=(1, 2)))
        regret = loss - ev.best[:, None, None]
        mean_regret = regret.mean(axis=0)  # (K, M)
        refined = []  # per choice: refine d around its best grid point (exact at a memory cap)
        for j in np.flatnonzero(np.isfinite(mean_regret.min(axis=0))):
            kj = int(np.argmin(mean_regret[:, j]))
            d_j = ev.refine(d_grid[max(kj - 1, 0)], d_grid[min(kj + 1, grid - 1)], choices[j])
            refined.append((ev.expected_loss(d_j, choices[j]), d_j, j))
        _, d_bayes, m = min(refined)
        bayes = ev.score(d_bayes, choices[m])
        tolerance = epsilon * ev.best.mean()
        near = []
        for j, choice in enumerate(choices):
            inside = np.flatnonzero(mean_regret[:, j] <= tolerance)
            if inside.size:
                near.append(
                    {
                        space.choice: float(choice),
                        space.size: {"lo": float(d_grid[inside.min()]), "hi": float(d_grid[inside.max()])},
                        "expected_regret_min": float(mean_regret[inside, j].min()),
                    }
                )
        snapped = {}
        for rule in HARDWARE_RULES:
            options_scored = [ev.score(d, choices[m]) for d in dict.fromkeys(_snap(d_bayes, rule))]
            snapped[rule] = min(options_scored, key=lambda s: s["expected_regret"])
        out.append({
            "compute": float(c), "epsilon": epsilon, "bayes": bayes, "near_optimal": near, "snapped": snapped,
            "candidates": [ev.score(float(x[space.size]), float(x[space.choice])) for x in candidates],
            "moe_vs_dense": versus[b],
        })
    return out


def _moe_vs_dense(space: Space, theta: dict, budgets: np.ndarray, prob: float, options: dict) -> list[dict]:
    """Per budget: P(best MoE < best dense), loss gap band, compute-equivalent multiplier band."""
    S = len(next(iter(theta.values())))
    log_c = np.broadcast_to(np.log(budgets)[None, :], (S, len(budgets)))
    moe = np.asarray(space.best_loss(theta, jnp.asarray(log_c), "moe", **options))
    dense = np.asarray(space.best_loss(theta, jnp.asarray(log_c), "dense", **options))
    lower, upper = log_c - np.log(MAX_MULTIPLIER), log_c + np.log(MAX_MULTIPLIER)
    lo, hi = lower.copy(), upper.copy()
    for _ in range(BISECTION_STEPS):  # dense optimal loss decreases with compute
        mid = 0.5 * (lo + hi)
        above = np.asarray(space.best_loss(theta, jnp.asarray(mid), "dense", **options)) > moe
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    log_equiv = 0.5 * (lo + hi)
    multiplier = np.exp(log_equiv - log_c)
    unmatched = (log_equiv >= upper - 1e-6) | ~np.isfinite(moe)
    multiplier = np.where(unmatched, np.nan, multiplier)
    out = []
    for b in range(len(budgets)):
        out.append({
            "dense": space.dense,
            "p_moe_better": float(np.mean(moe[:, b] < dense[:, b])) if S > 1 else None,
            "loss_dense_minus_moe": band(dense[:, b] - moe[:, b], prob),
            "compute_multiplier": band(multiplier[:, b], prob),
            "p_dense_cannot_match": float(np.mean(unmatched[:, b])),
        })
    return out

