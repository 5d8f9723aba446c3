"""Optimal configurations from a posterior, vectorised over draws and budgets.

Each law that can speak to optima has a module here that registers one function::

    @register("chinchilla")
    def chinchilla_optimum(theta, compute, *, objective="compute", **options) -> dict[str, Array]

``theta``: natural-scale parameter draws, name -> array of shape (S,) (constants included);
``compute``: budgets in training FLOPs, shape (B,). It returns SPEC §3 quantity names
(``n_active``, ``n_total``, ``tokens``, ``loss``, ``ratio_total_active``, ``granularity``, ...) ->
arrays of shape (S, B). Quantities a law cannot speak to are absent. :func:`optimum` wraps it
for a :class:`~bayesmoe.fit.Fit` or a published coefficient set and summarises by quantiles.
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


def register(law: str) -> Callable[[Optimizer], Optimizer]:
    """Decorator: register ``function`` as the optimum of law ``law``."""

    def decorate(function: Optimizer) -> Optimizer:
        _REGISTRY[law] = function
        return function

    return decorate


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
        """SPEC §3 ``budgets`` list: per budget, {quantity: {q05, q50, q95}} for central ``prob``."""
        lo = (1 - prob) / 2
        names = (f"q{round(lo * 100):02d}", "q50", f"q{round((1 - lo) * 100):02d}")
        out = []
        for b, c in enumerate(self.compute):
            optimal = {}
            for key, values in self.draws.items():
                q = np.nanquantile(values[:, b], [lo, 0.5, 1 - lo])
                optimal[key] = dict(zip(names, map(float, q)))
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
    theta = posterior.draws(group)
    draws = optimizer_for(posterior.law)(theta, budgets, objective=objective, **options)
    draws = {k: np.asarray(v, dtype=float).reshape(len(next(iter(theta.values()))), len(budgets)) for k, v in draws.items()}
    return OptimumResult(posterior.law.name, objective, budgets, draws, options)
