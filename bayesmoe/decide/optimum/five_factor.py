"""Closed-form optima of the five-factor law (Zhao et al. 2025, arXiv 2509.23678), per posterior draw.

With L = P(G, S) Q(N, Na) + a/N^alpha + b/D^beta + c/Na^alpha + eps and P = e G + f/G + m S^2 + n S:

- activated experts ``G* = sqrt(f/e)`` and shared ratio ``S* = -n/(2m)`` minimise P; since Q > 0 they
  minimise L for every N, Na, D (the paper's "independent of architecture and data size");
- at fixed N and D, dL/dNa = 0 gives the optimal activation ratio
  ``(Na/N)* = [alpha (P* k + c) / (P* h)]^(1/(1+alpha)) N^(-alpha/(1+alpha))`` with P* = P(G*, S*),
  decreasing in N. It is capped at 1 (Na <= N: a formula value above 1 means the dense end is optimal)
  and undefined (NaN) for a draw with P* <= 0 or n >= 0, where the law has no interior optimum.

N is not set by compute under this law (every N term falls with N while 6 Na D does not depend on it),
so the total size comes from the caller: ``n_total=`` (one value, or one per budget) or, failing that,
``memory=`` bytes of bf16 weights (N = memory / 2). Without either only G* and S* are returned.
Given N and a budget C: ``n_active`` = (Na/N)* N, ``tokens`` = C / (6 Na) (the budget spent on that
model; the paper's Na* is the fixed-N, fixed-D optimum, not a compute-optimal split), and ``loss`` is
the law at that configuration. Shapes: theta entries (S,), compute (B,) -> (S, B).
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from ...errors import BayesMoeError
from ...laws import get_law
from ...laws.base import Array, Theta
from ...laws.five_factor import first_factor

#: Bytes per stored parameter when N comes from ``memory=`` (bf16 weights).
BYTES_PER_PARAM = 2.0


def _n_total(options, budgets: int) -> np.ndarray | None:
    """Total parameters per budget, shape (B,), from ``n_total=`` or ``memory=`` (None if neither)."""
    if options.get("n_total") is not None:
        values, name = np.atleast_1d(np.asarray(options["n_total"], dtype=float)), "n_total"
    elif options.get("memory") is not None:
        values, name = np.atleast_1d(np.asarray(options["memory"], dtype=float)) / BYTES_PER_PARAM, "memory"
    else:
        return None
    if values.ndim != 1 or len(values) not in (1, budgets) or not np.all(np.isfinite(values) & (values > 0)):
        raise BayesMoeError(
            f"{name} must be one positive number or one per --compute budget ({budgets}), got {list(np.ravel(values))}"
        )
    return np.broadcast_to(values, (budgets,))


def optimal_ratio_active_total(theta: Theta, n_total: Array) -> Array:
    """(Na/N)* at total size(s) ``n_total`` (shape (B,)) for draws ``theta`` ((S,) each) -> (S, B), capped at 1."""
    t = {k: jnp.asarray(v)[:, None] for k, v in theta.items()}
    g_star = jnp.sqrt(t["f"] / t["e"])
    s_star = -t["n"] / (2.0 * t["m"])
    p_star = first_factor(t, g_star, s_star)
    alpha = t["alpha"]
    base = alpha * (p_star * t["k"] + t["c"]) / (p_star * t["h"])
    valid = (p_star > 0) & (t["n"] < 0)
    log_ratio = (jnp.log(jnp.where(valid, base, 1.0)) - alpha * jnp.log(jnp.asarray(n_total)[None, :])) / (1.0 + alpha)
    return jnp.where(valid, jnp.exp(jnp.minimum(log_ratio, 0.0)), jnp.nan)


def five_factor_optimum(
    theta: Theta, compute: np.ndarray, *, objective: str = "compute", **options: Any
) -> dict[str, Array]:
    if objective not in ("compute", "memory"):
        raise BayesMoeError(f"law 'five_factor' supports --objective compute or memory, got '{objective}'")
    e, f, m, n = (jnp.asarray(theta[k])[:, None] for k in ("e", "f", "m", "n"))
    shape = (e.shape[0], len(compute))
    g_star = jnp.broadcast_to(jnp.sqrt(f / e), shape)
    s_star = jnp.broadcast_to(jnp.where(n < 0, -n / (2.0 * m), 0.0), shape)
    out = {"activated_experts": g_star, "shared_ratio": s_star}
    n_total = _n_total(options, len(compute))
    if n_total is None:
        return out
    ratio = optimal_ratio_active_total(theta, n_total)
    n_active = ratio * n_total[None, :]
    tokens = jnp.asarray(compute)[None, :] / (6.0 * n_active)
    law = get_law("five_factor")
    x = {
        "log_N": jnp.log(n_total)[None, :],
        "log_Na": jnp.log(n_active),
        "log_D": jnp.log(tokens),
        "G": g_star,
        "S": s_star,
    }
    loss = jnp.exp(law.mean_log_loss({k: jnp.asarray(v)[:, None] for k, v in theta.items()}, x))
    out.update({
        "n_total": jnp.broadcast_to(n_total[None, :], shape),
        "n_active": n_active,
        "ratio_active_total": ratio,
        "ratio_total_active": 1.0 / ratio,
        "tokens": tokens,
        "tokens_per_param": tokens / n_active,
        "loss": loss,
    })
    return out
