"""A law's design space at a fixed training budget: what :mod:`bayesmoe.decide.recommend` searches."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


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
            shape): runs-table counts (docs/runs-table.md) of a configuration (``n_active``, ``n_total``,
            ``tokens``, ...).
    """

    size: str
    choice: str
    choices: Callable[[dict], np.ndarray]
    loss: Callable[..., np.ndarray]
    best_loss: Callable[..., np.ndarray]
    dense: str
    describe: Callable[..., dict] | None = None
