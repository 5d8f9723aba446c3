"""Optimal configurations from a posterior, vectorised over draws and budgets.

Each law that can speak to optima has a module here with one solver, listed in :data:`SOLVERS`::

    def chinchilla_optimum(theta, compute, *, objective="compute", **options) -> dict[str, Array]

``theta``: natural-scale parameter draws, name -> array of shape (S,) (constants included);
``compute``: budgets in training FLOPs, shape (B,). It returns the quantity names of docs/cli.md
(``n_active``, ``n_total``, ``tokens``, ``loss``, ``ratio_total_active``, ``granularity``, ...) ->
arrays of shape (S, B). Quantities a law cannot speak to are absent. :func:`optimum` wraps it
for a :class:`~bayesmoe.inference.Fit` or a published coefficient set and summarises by quantiles.

Two key conventions are summarised specially by :meth:`OptimumResult.quantiles` (docs/cli.md, holistic law):
``d_model_near_optimal_lo`` / ``_hi`` become ``"d_model_near_optimal": {"lo": {..}, "hi": {..}}``, and
``p_near_optimal_d:<d>`` (0/1 draws) become ``"p_near_optimal_d": {"<d>": posterior mean}``.

A law may also have a :class:`~.space.Space`, listed in :data:`SPACES`: its loss on a grid of configurations
at a budget, used by :mod:`bayesmoe.decide.recommend` for near-optimal bands, snapping regret and MoE-vs-dense.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ...config import float64
from ...errors import BayesMoeError
from ...inference import Fit
from ...laws import Law, get_law
from . import chinchilla, five_factor, granularity, holistic, joint, routing
from .posterior import PointPosterior
from .space import Space

Optimizer = Callable[..., dict]
OBJECTIVES = ("compute", "memory", "inference")
_NEAR_OPTIMAL_D = "d_model_near_optimal_"
_P_NEAR_OPTIMAL_D = "p_near_optimal_d:"


#: The optimum solver of each law that has one, by law id:
#: ``(theta, compute, *, objective, **options) -> {name: array (S, B)}``.
SOLVERS: dict[str, Optimizer] = {
    "chinchilla": chinchilla.chinchilla_optimum,
    "five_factor": five_factor.five_factor_optimum,
    "granularity": granularity.granularity_optimum,
    "holistic": holistic.holistic_optimum,
    "joint": joint.joint_optimum,
    "routing": routing.routing_optimum,
}
#: The design space of each law that has one, by law id (see :class:`~.space.Space`).
SPACES: dict[str, Space] = {"granularity": granularity.SPACE, "joint": joint.SPACE}


def space_for(law: str | Law) -> Space | None:
    """The design space of ``law``, or None."""
    return SPACES.get(get_law(law).name)


def optimizer_for(law: str | Law) -> Optimizer:
    """The optimum solver of ``law``."""
    name = get_law(law).name
    if name not in SOLVERS:
        raise BayesMoeError(f"law '{name}' has no optimum implemented; laws with one: {', '.join(sorted(SOLVERS))}")
    return SOLVERS[name]


@dataclass
class OptimumResult:
    """Draws of every optimal quantity: name -> array (S, B), for budgets ``compute`` (B,)."""

    law: str
    objective: str
    compute: np.ndarray
    draws: dict[str, np.ndarray]
    options: dict = field(default_factory=dict)

    def quantiles(self, prob: float = 0.9) -> list[dict]:
        """The ``budgets`` list of ``optimum --json`` (docs/cli.md): per budget, {quantity: {q05, q50, q95}}
        for the central interval of probability ``prob``.

        All-NaN draws (e.g. an infeasible memory budget) give null quantiles. Keys following the
        holistic conventions (module doc) are summarised as docs/cli.md describes.
        """
        lo = (1 - prob) / 2
        names = (f"q{round(lo * 100):02d}", "q50", f"q{round((1 - lo) * 100):02d}")

        def band(values):
            if np.all(np.isnan(values)):
                return dict.fromkeys(names, float("nan"))
            return dict(zip(names, map(float, np.nanquantile(values, [lo, 0.5, 1 - lo]))))

        out = []
        for b, c in enumerate(self.compute):
            optimal: dict = {}
            for key, values in self.draws.items():
                if key.startswith(_NEAR_OPTIMAL_D):
                    optimal.setdefault("d_model_near_optimal", {})[key[len(_NEAR_OPTIMAL_D):]] = band(values[:, b])
                elif key.startswith(_P_NEAR_OPTIMAL_D):
                    optimal.setdefault("p_near_optimal_d", {})[key[len(_P_NEAR_OPTIMAL_D) :]] = float(
                        np.nanmean(values[:, b])
                    )
                else:
                    optimal[key] = band(values[:, b])
            out.append({"compute": float(c), "optimal": optimal})
        return out


@float64
def optimum(
    posterior: Fit | PointPosterior,
    compute: Sequence[float] | np.ndarray,
    *,
    objective: str = "compute",
    group: str | None = None,
    **options: Any,
) -> OptimumResult:
    """Optimal configuration at each budget, for every posterior draw.

    Args:
        posterior: a :class:`~bayesmoe.inference.Fit` or a :class:`PointPosterior` (published set).
        compute: training-FLOP budgets, shape (B,).
        objective: ``"compute"``, ``"memory"`` or ``"inference"`` (laws that support them).
        group: for hierarchical fits, the group whose parameters to use (None: population; unseen: new group).
        options: law-specific (e.g. ``memory`` bytes, ``d_model`` values).
    """
    if objective not in OBJECTIVES:
        raise BayesMoeError(f"unknown --objective '{objective}'; expected one of {', '.join(OBJECTIVES)}")
    budgets = np.atleast_1d(np.asarray(compute, dtype=float))
    if budgets.ndim != 1 or not np.all(np.isfinite(budgets)) or np.any(budgets <= 0):
        raise BayesMoeError(f"--compute budgets must be positive numbers of FLOPs, got {list(np.ravel(compute))}")
    constant = (getattr(posterior, "meta", {}).get("reduction") or {}).get("constant")
    if constant:
        raise BayesMoeError(
            f"this {posterior.law.name} fit was reduced because the runs hold {', '.join(constant)} constant, "
            "so the optimum "
            "(which trades those quantities off) is not identified; fit runs in which they vary, or use --prior SET"
        )
    theta = posterior.draws(group)
    draws = optimizer_for(posterior.law)(theta, budgets, objective=objective, **options)
    draws = {
        k: np.asarray(v, dtype=float).reshape(len(next(iter(theta.values()))), len(budgets)) for k, v in draws.items()
    }
    return OptimumResult(posterior.law.name, objective, budgets, draws, options)


def mixture(
    results: Sequence[OptimumResult], weights: Sequence[float], *, draws: int | None = None, seed: int = 0
) -> OptimumResult:
    """Model-averaged optimum: resample each result's draws in proportion to its (stacking) weight.

    Args:
        results: optima of several fits at the same budgets and objective.
        weights: one non-negative weight per result (normalised here).
        draws: size of the mixture (default: the largest result's draw count).

    Only quantities every result reports are kept; ``law`` joins the laws with ``+``.
    """
    w = np.asarray(weights, dtype=float)
    if len(results) != len(w) or not len(results) or np.any(w < 0) or w.sum() <= 0:
        raise BayesMoeError(f"mixture needs one non-negative weight per fit with a positive sum, got {list(w)}")
    for r in results[1:]:
        if not np.allclose(r.compute, results[0].compute) or r.objective != results[0].objective:
            raise BayesMoeError("mixture: every fit's optimum must use the same budgets and objective")
    w = w / w.sum()
    total = draws or max(next(iter(r.draws.values())).shape[0] for r in results)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(total, w)
    keys = [k for k in results[0].draws if all(k in r.draws for r in results)]
    pieces: dict[str, list] = {k: [] for k in keys}
    for r, n in zip(results, counts):
        if n == 0:
            continue
        rows = rng.integers(0, next(iter(r.draws.values())).shape[0], n)
        for k in keys:
            pieces[k].append(r.draws[k][rows])
    mixed = {k: np.concatenate(v, axis=0) for k, v in pieces.items()}
    law = "+".join(dict.fromkeys(r.law for r in results))
    return OptimumResult(law, results[0].objective, results[0].compute, mixed, dict(results[0].options))

