"""Optimal MoE architecture per budget from the holistic law (Wan et al. 2026, arXiv 2603.21862), per draw.

The law's terms are each zero at their own optimum, so the optimum at budget C is read off the
stage power laws (see :mod:`bayesmoe.laws.holistic`):

    flops_per_token   M*   = k_M C^a_M                 tokens D* = C / M*           (Eq. 2)
    ratio_flops_active     = 6 + k_R C^a_R             n_active  = M* / (M/Na)*
    ratio_total_active     = k_N C^a_N                 n_total   = (N/Na)* n_active
    d_model           d*   = k_d C^a_d
    near-optimal d band    = d* exp(-/+ h),  h = sqrt(tolerance / (w_d C^-a_w))   (loss within 0.1%)
    loss                   = E + A C^-alpha

plus ``tokens_per_param`` (D*/Na*) and, for each ``d_model=[...]`` value, ``p_near_optimal_d:<d>``:
1 where that d lies in the draw's band, else 0 (the posterior mean is the probability). Quantities
whose parameters are absent (a published set prints only Eq. 2 and the N/Na optima) are left out.
Options: ``d_model`` (values of d to score), ``tolerance`` (relative loss excess of the band, default
0.001). Shapes: theta entries (S,), compute (B,) -> (S, B).
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from ...errors import BayesMoeError
from ...laws.base import Theta
from ...laws.holistic import d_curvature, envelope_log_loss, power_law


def _has(theta, *names) -> bool:
    return all(name in theta for name in names)


def d_label(d: float) -> str:
    """Key suffix for a d value: ``2048`` for whole numbers, else the float as written."""
    return str(int(d)) if float(d).is_integer() else repr(float(d))


def _d_values(options) -> np.ndarray:
    given = options.get("d_model")
    values = np.atleast_1d(np.asarray([] if given is None else given, dtype=float))
    if values.ndim != 1 or not np.all(np.isfinite(values) & (values > 0)):
        raise BayesMoeError(f"--d-model values must be positive hidden dimensions, got {list(np.ravel(values))}")
    return values


def holistic_optimum(
    theta: Theta, compute: np.ndarray, *, objective: str = "compute", tolerance: float = 1e-3, **options: Any
) -> dict[str, np.ndarray]:
    if objective != "compute":
        raise BayesMoeError(f"law 'holistic' supports only --objective compute, got '{objective}'")
    if not 0 < tolerance < 1:
        raise BayesMoeError(f"tolerance of the near-optimal band must be in (0, 1), got {tolerance}")
    d_values = _d_values(options)
    t = {k: jnp.asarray(v)[:, None] for k, v in theta.items()}
    log_c = jnp.log(jnp.asarray(compute, dtype=float))[None, :]
    out = {}
    if _has(t, "k_M", "a_M"):
        m = power_law(t, "M", log_c)
        out.update(flops_per_token=m, tokens=jnp.asarray(compute)[None, :] / m)
        if _has(t, "k_R", "a_R"):
            ratio = 6.0 + power_law(t, "R", log_c)
            out.update(ratio_flops_active=ratio, n_active=m / ratio, tokens_per_param=out["tokens"] * ratio / m)
    if _has(t, "k_N", "a_N"):
        out["ratio_total_active"] = power_law(t, "N", log_c)
        if "n_active" in out:
            out["n_total"] = out["ratio_total_active"] * out["n_active"]
    if _has(t, "k_d", "a_d"):
        d_star = power_law(t, "d", log_c)
        out["d_model"] = d_star
        if _has(t, "w_d", "a_w"):
            half = jnp.sqrt(np.log1p(tolerance) / d_curvature(t, log_c))
            out.update(d_model_near_optimal_lo=d_star * jnp.exp(-half), d_model_near_optimal_hi=d_star * jnp.exp(half))
            for d in d_values:
                inside = jnp.abs(np.log(d) - jnp.log(d_star)) <= half
                out[f"p_near_optimal_d:{d_label(d)}"] = inside.astype(float)
    if _has(t, "E", "A", "alpha"):
        out["loss"] = jnp.exp(envelope_log_loss(t, log_c))
    if not out:
        raise BayesMoeError(
            "this holistic posterior has none of the parameters an optimum needs (k_M/a_M, k_N/a_N, k_d/a_d)"
        )
    shape = (next(iter(t.values())).shape[0], len(compute))
    return {k: jnp.broadcast_to(v, shape) for k, v in out.items()}
