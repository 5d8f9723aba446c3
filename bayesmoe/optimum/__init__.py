"""Optimal configurations from a posterior, vectorised over draws and budgets.

Each law that can speak to optima has a module here that registers one function::

    @register("chinchilla")
    def chinchilla_optimum(theta, compute, *, objective="compute", **options) -> dict[str, Array]

``theta``: natural-scale parameter draws, name -> array of shape (S,) (constants included);
``compute``: budgets in training FLOPs, shape (B,). It returns SPEC §3 quantity names
(``n_active``, ``n_total``, ``tokens``, ``loss``, ``ratio_total_active``, ``granularity``, ...) ->
arrays of shape (S, B). Quantities a law cannot speak to are absent. :func:`optimum` wraps it
for a :class:`~bayesmoe.fit.Fit` or a published coefficient set and summarises by quantiles.

Two key conventions are summarised specially by :meth:`OptimumResult.quantiles` (SPEC §3, holistic law):
``d_model_near_optimal_lo`` / ``_hi`` become ``"d_model_near_optimal": {"lo": {..}, "hi": {..}}``, and
``p_near_optimal_d:<d>`` (0/1 draws) become ``"p_near_optimal_d": {"<d>": posterior mean}``.

A law may also register a :class:`Space` (:func:`register_space`): its loss on a grid of configurations
at a budget, used by :mod:`bayesmoe.recommend` for near-optimal bands, snapping regret and MoE-vs-dense.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import BayesMoeError
from ..laws import Law, get_law

Optimizer = Callable[..., dict]
OBJECTIVES = ("compute", "memory", "inference")
_REGISTRY: dict[str, Optimizer] = {}
_SPACES: dict[str, "Space"] = {}
_NEAR_OPTIMAL_D = "d_model_near_optimal_"
_P_NEAR_OPTIMAL_D = "p_near_optimal_d:"


def register(law: str) -> Callable[[Optimizer], Optimizer]:
    """Decorator: register ``function`` as the optimum of law ``law``."""

    def decorate(function: Optimizer) -> Optimizer:
        _REGISTRY[law] = function
        return function

    return decorate


@dataclass(frozen=True)
class Space:
    """A law's design space at a fixed training budget, for :mod:`bayesmoe.recommend`.

    Attributes:
        size: the continuous architecture variable (``"d_model"``); D follows from the budget.
        choice: the discrete one (``"n_experts"``, ``"granularity"``), candidates powers of two.
        choices: ``options -> (M,)`` candidate values of ``choice``.
        loss: ``(theta, compute (B,), size (B, K), choices (M,), **options) -> (S, B, K, M)`` loss of
            training each configuration on each budget (``inf`` where infeasible).
        best_loss: ``(theta, log_compute (S, B), kind, **options) -> (S, B)``: the optimal loss over
            MoE configurations (``kind="moe"``) or dense ones (``kind="dense"``) at per-draw budgets.
        dense: one sentence saying what "dense" means for this law.
        describe: optional ``(size, choice, compute, **options) -> {quantity: array}`` (same broadcast
            shape): SPEC counts of a configuration (``n_active``, ``n_total``, ``tokens``, ...).
    """

    size: str
    choice: str
    choices: Callable[[dict], np.ndarray]
    loss: Callable[..., np.ndarray]
    best_loss: Callable[..., np.ndarray]
    dense: str
    describe: Callable[..., dict] | None = None


def register_space(law: str, space: Space) -> None:
    """Register the design space of ``law`` (see :class:`Space`)."""
    _SPACES[law] = space


def space_for(law: str | Law) -> Space | None:
    """The registered design space of ``law``, or None."""
    _load_all()
    return _SPACES.get(get_law(law).name)


@lru_cache(maxsize=None)
def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def optimizer_for(law: str | Law) -> Optimizer:
    """The registered optimum function of ``law``."""
    _load_all()
    name = get_law(law).name
    if name not in _REGISTRY:
        raise BayesMoeError(f"law '{name}' has no optimum implemented; laws with one: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


@dataclass(frozen=True)
class PointPosterior:
    """A published coefficient set seen as a posterior with one draw (so q05 = q50 = q95)."""

    law: Law
    values: Mapping[str, float]
    name: str = ""

    @classmethod
    def from_set(cls, law: str | Law, set_name: str) -> "PointPosterior":
        law = get_law(law)
        return cls(law, dict(law.coefficient_set(set_name).values), law.coefficient_set(set_name).name)

    def draws(self, group: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
        out = {k: np.array([float(v)]) for k, v in self.law.constants.items()}
        out.update({k: np.array([float(v)]) for k, v in self.values.items()})
        return out


@dataclass
class OptimumResult:
    """Draws of every optimal quantity: name -> array (S, B), for budgets ``compute`` (B,)."""

    law: str
    objective: str
    compute: np.ndarray
    draws: dict[str, np.ndarray]
    options: dict = field(default_factory=dict)

    def quantiles(self, prob: float = 0.9) -> list[dict]:
        """SPEC §3 ``budgets`` list: per budget, {quantity: {q05, q50, q95}} for central ``prob``.

        All-NaN draws (e.g. an infeasible memory budget) give null quantiles. Keys following the
        holistic conventions (module doc) are summarised as SPEC describes.
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
                    optimal.setdefault("p_near_optimal_d", {})[key[len(_P_NEAR_OPTIMAL_D):]] = float(np.nanmean(values[:, b]))
                else:
                    optimal[key] = band(values[:, b])
            out.append({"compute": float(c), "optimal": optimal})
        return out


def optimum(
    posterior,
    compute: Sequence[float] | np.ndarray,
    *,
    objective: str = "compute",
    group: str | None = None,
    **options,
) -> OptimumResult:
    """Optimal configuration at each budget, for every posterior draw.

    Args:
        posterior: a :class:`~bayesmoe.fit.Fit` or a :class:`PointPosterior` (published set).
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
            f"this {posterior.law.name} fit was reduced because the runs hold {', '.join(constant)} constant, so the optimum "
            "(which trades those quantities off) is not identified; fit runs in which they vary, or use --prior SET"
        )
    theta = posterior.draws(group)
    draws = optimizer_for(posterior.law)(theta, budgets, objective=objective, **options)
    draws = {k: np.asarray(v, dtype=float).reshape(len(next(iter(theta.values()))), len(budgets)) for k, v in draws.items()}
    return OptimumResult(posterior.law.name, objective, budgets, draws, options)


def mixture(results: Sequence[OptimumResult], weights: Sequence[float], *, draws: int | None = None, seed: int = 0) -> OptimumResult:
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


from .._callable import make_callable  # noqa: E402

make_callable(__name__, "optimum")
