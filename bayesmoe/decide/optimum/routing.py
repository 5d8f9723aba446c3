"""Optimum and effective parameter count for the routing law (Clark et al. 2022, Eq. 1 and Sec. 4).

The law has no D term: every run trains for the same number of tokens D (the paper: ~1.3e11). At a
budget C the dense size is therefore ``N = C / (6 D)`` and the only choice is the expert count E, taken
from a candidate list (default powers of 2 from 1 to 512); Eq. 1 is monotone in log Ê at fixed N
(slope ``b + c log10 N``), so the best E is the largest candidate below N ~ 10^(-b/c) and 1 above it.

Effective parameter count (Clark et al. Eq. 5): the dense N with the same loss,
``EPC = N^(a_E / a_1) (Ê / E_start)^(b / a_1)`` with ``a_E = a + c log10 Ê``, ``a_1 = a + c log10 E_start``;
in the dense-anchored parameters ``log10 EPC = (1 + c u / a1) log10 N + b u / a1``, ``u = log10(Ê/E_start)``.
Shapes: theta entries (S,), covariates (n,) or (B,) -> (S, n).
"""
from __future__ import annotations

from os import PathLike
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ...errors import BayesMoeError
from ...inference import Fit
from ...laws.base import Theta
from ...laws.routing import anchored_terms, log10_loss
from ...runs import group_labels, has_group_columns, validate_runs
from .posterior import PointPosterior

#: Training tokens assumed by the optimum when ``tokens`` is not given (Clark et al.: 249k steps x 524,288).
DEFAULT_TOKENS = 1.305e11
DEFAULT_EXPERTS = tuple(2.0**k for k in range(10))


def log10_effective_params(theta: Theta, log10_n: np.ndarray, experts: np.ndarray) -> np.ndarray:
    """log10 of the effective parameter count; theta entries broadcast against ``log10_n``/``experts``."""
    a1, _, u_of = anchored_terms(theta)
    u = u_of(experts)
    return np.asarray((1.0 + theta["c"] * u / a1) * log10_n + theta["b"] * u / a1)


def routing_optimum(
    theta: Theta,
    compute: np.ndarray,
    *,
    objective: str = "compute",
    tokens: float = DEFAULT_TOKENS,
    n_experts: Sequence[float] = DEFAULT_EXPERTS,
    **options: Any,
) -> dict[str, np.ndarray]:
    """Best expert count at each budget (fixed training length ``tokens``), with loss and EPC, each (S, B)."""
    if objective != "compute":
        raise BayesMoeError(f"law 'routing' supports only --objective compute, got '{objective}'")
    if not np.isfinite(tokens) or tokens <= 0:
        raise BayesMoeError(f"routing optimum: tokens must be a positive count, got {tokens}")
    candidates = np.asarray(n_experts, dtype=float)
    if candidates.ndim != 1 or not len(candidates) or np.any(candidates < 1):
        raise BayesMoeError(
            f"routing optimum: n_experts candidates must be counts >= 1, got {list(np.ravel(n_experts))}"
        )
    t = {k: np.asarray(v, dtype=float)[:, None, None] for k, v in theta.items()}
    n = np.asarray(compute, dtype=float) / (6.0 * tokens)                             # (B,)
    log10_n = np.log10(n)[None, :, None]
    grid = np.asarray(log10_loss(t, log10_n, candidates[None, None, :]))                 # (S, B, K)
    best = np.argmin(grid, axis=-1)
    experts = candidates[best]
    loss = 10.0 ** np.take_along_axis(grid, best[..., None], axis=-1)[..., 0]
    epc = 10.0 ** log10_effective_params({k: v[..., 0] for k, v in t.items()}, np.log10(n)[None, :], experts)
    shape = experts.shape
    return {"n_active": np.broadcast_to(n, shape), "tokens": np.full(shape, float(tokens)), "n_experts": experts,
            "loss": loss, "effective_params": epc, "tokens_per_param": np.broadcast_to(tokens / n, shape)}


def _theta_per_run(posterior, frame: pd.DataFrame, seed: int) -> dict[str, np.ndarray]:
    """Draws for each run of ``frame``: (S, 1) when shared, (S, n) for parameters pooled by group."""
    base = posterior.draws(seed=seed)
    theta = {k: np.asarray(v, dtype=float)[:, None] for k, v in base.items()}
    pooled = tuple(getattr(posterior, "pooled", ()))
    column = (getattr(posterior, "meta", None) or {}).get("group_column")
    if not pooled or not column:
        return theta
    labels = group_labels(frame, column) if has_group_columns(frame, column) else np.full(len(frame), "")
    per_label = {label: posterior.draws(label, seed=seed) for label in np.unique(labels)}
    for name in pooled:
        theta[name] = np.stack([per_label[label][name] for label in labels], axis=1)
    return theta


def effective_params(
    posterior: Fit | PointPosterior, runs: str | PathLike | pd.DataFrame, *, prob: float = 0.9, seed: int = 0
) -> pd.DataFrame:
    """Posterior effective parameter count (EPC) of each run under a ``routing`` fit or published set.

    Args:
        posterior: a :class:`~bayesmoe.fit.Fit` of law ``routing`` or a
            :class:`~bayesmoe.optimum.PointPosterior` (e.g. ``PointPosterior.from_set("routing", "clark2022-sbase")``).
        runs: runs table (needs ``n_active``; ``n_experts``, 1 when absent); hierarchical fits use each run's group.
        prob: central interval probability.

    Returns:
        One row per run: ``run_id``, ``n_active``, ``n_experts``, EPC quantiles (``q05``, ``q50``, ``q95``
        for prob 0.9; raw parameter counts) and ``ratio`` = EPC q50 / n_active (the routing multiplier).
    """
    if posterior.law.name != "routing":
        raise BayesMoeError(f"effective parameter count needs a 'routing' fit, got law '{posterior.law.name}'")
    if not 0 < prob < 1:
        raise BayesMoeError(f"--prob must be between 0 and 1, got {prob}")
    frame = validate_runs(
        runs, required=("n_active",), law="routing", require_loss=False, what="runs for the effective parameter count"
    )
    x = posterior.law.covariates(frame)
    theta = _theta_per_run(posterior, frame, seed)
    draws = 10.0 ** log10_effective_params(theta, x["log10_N"][None, :], x["E"][None, :])
    lo = (1 - prob) / 2
    q = np.quantile(draws, [lo, 0.5, 1 - lo], axis=0)
    return pd.DataFrame(
        {
            "run_id": frame["run_id"],
            "n_active": 10.0 ** x["log10_N"],
            "n_experts": x["E"],
            f"q{round(lo * 100):02d}": q[0],
            "q50": q[1],
            f"q{round((1 - lo) * 100):02d}": q[2],
            "ratio": q[1] / 10.0 ** x["log10_N"],
        }
    )
