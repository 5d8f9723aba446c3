"""Holistic MoE law after Wan et al. 2026, "Holistic Scaling Laws for Optimal Mixture-of-Experts
Architecture Optimization" (arXiv 2603.21862), as one joint loss surface over compute C, FLOPs per
token M, the ratios M/Na and N/Na, and the hidden dimension d.

The paper is a pipeline, not one formula: (1) a (C, M, D) law maps a budget to the optimal M and
D = C/M (Eq. 2: D_opt = 22.8929 C^0.4563, M_opt = 0.04368 C^0.5437); (2) at the chosen M, loss is fitted
per budget over x = M/Na as L = a/(x - 6) + b x + c (optimum 6 + sqrt(a/b), decreasing slowly with C)
and over x = N/Na as L = a/(x - C1) + b/(C2 - x) + c (optimum stable at about 19-22); (3) by the
rank-preserving property of d (rankings of (M, Na, N) configurations do not change with d), (M, Na, N)
are chosen at a proxy d and d is chosen last: loss vs d is fitted by a quadratic per budget, the
near-optimal band is the d whose loss is within 0.1% of the minimum, and d_opt, d_lo, d_hi are power
laws in C; the band widens with C. M is App. A Eq. 12 (= ``flops_per_token``, attention included).

Here every stage is a term of one log-loss surface whose parameters are the stage quantities, so one
NUTS fit propagates the posterior through all stages (no point estimates passed between stages):

    log L = log(E + A C^-alpha)                                  budget envelope: loss at the optimum
          + w_M (ln M - ln M*(C))^2,       M*(C) = k_M C^a_M      stage 1, isoFLOP parabola in ln M (Eq. 2)
          + b_R (u - u*(C))^2 / u,  u = M/Na - 6, u*(C) = k_R C^a_R   stage 2a: the paper's a/(x-6) + b x
          + w_N (ln(N/Na) - ln R*(C))^2,   R*(C) = k_N C^a_N      stage 2b: N/Na, optimum R*
          + w_d C^-a_w (ln d - ln d*(C))^2, d*(C) = k_d C^a_d     stage 3: d, curvature falls with C if a_w > 0

Each term is the relative excess loss over the budget's optimum (>= 0, 0 at the optimum); small
relative excesses add in log space. Choices where the paper gives no closed form, stated:
- stage 2a is the paper's form exactly, rewritten by its optimum: a/u + b u - 2 sqrt(ab) = b (u - u*)^2 / u
  with u* = sqrt(a/b); u* (hence the optimal M/Na) is a power law in C, as the paper's figure shows;
- stage 2b replaces the two-pole form (its poles C1 < x < C2 must bracket the data and are not printed)
  by its second-order expansion in ln(N/Na) about the optimum, which is what fixes R* and its band;
  R* is a power law in C (the paper's printed optima rise slowly with C);
- stage 3 is quadratic in ln d rather than d (the band is then symmetric in ln d, and d_opt, d_lo, d_hi
  follow from d* and the curvature); the near-optimal band |ln d - ln d*| <= sqrt(ln(1.001) / w_d(C))
  widens with C exactly when a_w > 0;
- the rank-preserving property is the additivity of the d term: it does not interact with M, Na, N.

C is the ``compute`` column (``flops_per_token * tokens`` when absent), in FLOPs, raw (the published
Eq. 2 coefficients are in raw FLOPs). M = ``flops_per_token``, Na = ``n_active``, N = ``n_total``
(non-embedding, App. A Eq. 10), d = ``d_model``. Every run needs M > 6 Na (attention FLOPs included).

Default priors (latent scale):
    log E ~ N(0.5, 1), log A ~ N(3, 3), alpha ~ N(0.1, 0.1) in [0, 1]
    log k_M ~ N(-3, 3), a_M ~ N(0.5, 0.15) in [0, 1], log w_M ~ N(ln 0.02, 1.5)
    log k_R ~ N(0, 3), a_R ~ N(0, 0.1) in [-1, 1], log b_R ~ N(ln 0.01, 2)
    log k_N ~ N(ln 7, 2), a_N ~ N(0, 0.05) in [-0.5, 0.5], log w_N ~ N(ln 0.005, 2)
    log k_d ~ N(-3, 3), a_d ~ N(0.25, 0.1) in [0, 1], log w_d ~ N(ln 0.01, 3), a_w ~ N(0, 0.1) in [-1, 1]
Published set ``holistic:wan2026`` holds only what the paper prints: k_M, a_M (Eq. 2) and k_N, a_N, the
least-squares power law through the six printed N/Na optima (1e18 to 3e20 FLOPs; each within 2.1%).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..errors import BayesMoeError
from .base import Array, Law, Param, Theta, column, logsumexp

#: Near-optimal band: loss within 0.1% of the minimum (Wan et al. 2026), as a log-loss excess.
NEAR_OPTIMAL_TOLERANCE = float(np.log1p(1e-3))


def _compute(frame, m: np.ndarray) -> np.ndarray:
    """C per run: the ``compute`` column, else (or where empty) M x ``tokens`` (docs/runs-table.md)."""
    derived = m * column(frame, "tokens", "holistic")
    if "compute" not in frame.columns:
        return derived
    given = frame["compute"].to_numpy(dtype=float)
    return np.where(np.isnan(given), derived, given)


def _covariates(frame):
    m = column(frame, "flops_per_token", "holistic")
    n_active = column(frame, "n_active", "holistic")
    u = m / n_active - 6.0
    if np.any(u <= 0):
        rows = ", ".join(map(str, np.flatnonzero(u <= 0)[:5]))
        raise BayesMoeError(f"runs table: flops_per_token <= 6 * n_active in rows {rows}; "
                            "law 'holistic' needs M with attention FLOPs included (M > 6 Na)")
    return {
        "log_C": np.log(_compute(frame, m)),
        "log_M": np.log(m),
        "u": u,
        "log_R": np.log(column(frame, "n_total", "holistic") / n_active),
        "log_d": np.log(column(frame, "d_model", "holistic")),
    }


def envelope_log_loss(t: Theta, log_c: Array) -> Array:
    """log L*(C) = log(E + A C^-alpha): log loss at the budget's optimum."""
    return logsumexp(jnp.log(t["E"]), jnp.log(t["A"]) - t["alpha"] * log_c)


def power_law(t: Theta, name: str, log_c: Array) -> Array:
    """k_<name> C^a_<name> (an optimum as a power law in C)."""
    return jnp.exp(jnp.log(t[f"k_{name}"]) + t[f"a_{name}"] * log_c)


def d_curvature(t: Theta, log_c: Array) -> Array:
    """w_d(C) = w_d C^-a_w: curvature of log loss in ln d at budget C."""
    return jnp.exp(jnp.log(t["w_d"]) - t["a_w"] * log_c)


def _log_loss(t, x):
    log_c = x["log_C"]
    u_star = power_law(t, "R", log_c)
    return (
        envelope_log_loss(t, log_c)
        + t["w_M"] * (x["log_M"] - jnp.log(power_law(t, "M", log_c))) ** 2
        + t["b_R"] * (x["u"] - u_star) ** 2 / x["u"]
        + t["w_N"] * (x["log_R"] - jnp.log(power_law(t, "N", log_c))) ** 2
        + d_curvature(t, log_c) * (x["log_d"] - jnp.log(power_law(t, "d", log_c))) ** 2
    )


LAW = Law(
    name="holistic",
    title="Holistic MoE (C, M, M/Na, N/Na, d)",
    citation=(
        "Wan et al. 2026, Holistic Scaling Laws for Optimal Mixture-of-Experts Architecture Optimization, "
        "arXiv 2603.21862"
    ),
    formula="log L = log(E + A C^-alpha) + w_M (ln M - ln k_M C^a_M)^2 + b_R (u - k_R C^a_R)^2 / u "
    "+ w_N (ln(N/Na) - ln k_N C^a_N)^2 + w_d C^-a_w (ln d - ln k_d C^a_d)^2, u = M/Na - 6",
    n_counts="C = compute (FLOPs), M = flops_per_token (attention included), Na = n_active, N = n_total "
    "(non-embedding), d = d_model",
    params=(
        Param(
            "E",
            "log",
            0.5,
            1.0,
            role="level",
            sample_scale="natural",
            doc="irreducible loss of the budget envelope (nats)",
        ),
        Param("A", "log", 3.0, 3.0, role="level", doc="envelope coefficient: optimal loss E + A C^-alpha"),
        Param("alpha", "linear", 0.1, 0.1, low=0.0, high=1.0, doc="envelope exponent in C"),
        Param("k_M", "log", -3.0, 3.0, doc="optimal FLOPs per token M* = k_M C^a_M (Eq. 2: 0.04368)"),
        Param("a_M", "linear", 0.5, 0.15, low=0.0, high=1.0, doc="exponent of M* in C (Eq. 2: 0.5437)"),
        Param("w_M", "log", float(np.log(0.02)), 1.5, doc="isoFLOP curvature of log loss in ln M"),
        Param("k_R", "log", 0.0, 3.0, doc="optimal M/Na - 6 = k_R C^a_R"),
        Param("a_R", "linear", 0.0, 0.1, low=-1.0, high=1.0, doc="exponent of optimal M/Na - 6 in C"),
        Param("b_R", "log", float(np.log(0.01)), 2.0, doc="curvature of the M/Na law b (u - u*)^2 / u"),
        Param("k_N", "log", float(np.log(7.0)), 2.0, doc="optimal N/Na = k_N C^a_N"),
        Param("a_N", "linear", 0.0, 0.05, low=-0.5, high=0.5, doc="exponent of optimal N/Na in C"),
        Param("w_N", "log", float(np.log(0.005)), 2.0, doc="curvature of log loss in ln(N/Na)"),
        Param("k_d", "log", -3.0, 3.0, doc="optimal hidden dimension d* = k_d C^a_d"),
        Param("a_d", "linear", 0.25, 0.1, low=0.0, high=1.0, doc="exponent of d* in C"),
        Param("w_d", "log", float(np.log(0.01)), 3.0, doc="curvature of log loss in ln d at C = 1 FLOP (times C^-a_w)"),
        Param(
            "a_w",
            "linear",
            0.0,
            0.1,
            low=-1.0,
            high=1.0,
            doc="d curvature falls as C^-a_w: the near-optimal band widens iff a_w > 0",
        ),
    ),
    required_columns=("flops_per_token", "n_active", "n_total", "d_model", "tokens"),
    covariates=_covariates,
    log_loss=_log_loss,
    notes="One joint surface over the paper's stages (see the law's docstring). holistic:wan2026 holds only what is "
    "printed: Eq. 2 (k_M, a_M; D_opt = C / M_opt) and a power law through the printed N/Na optima (k_N, a_N); "
    "the M/Na, d and envelope laws have no printed coefficients and must come from fits to runs.",
)
