"""Compute-optimal (N, D, G) for the fine-grained MoE law (Krajewski et al. 2024, arXiv 2402.07871, Sec. 6).

The paper's architecture and FLOP model (Sec. 6.1-6.2, Eq. 10):

- ``d_model = 64 n_blocks`` (n_blocks continuous), dense FFN width 4 d_model;
- total non-embedding parameters ``N = d^2 (8E + 4) n_blocks`` (the law's N), active
  ``N_act = 12 d^2 n_blocks``, E the expansion rate (MoE-layer / dense-FFN parameters; option
  ``expansion``, default 64 as in the published fit), ``n_experts = G E``;
- training FLOPs ``F = (12 d^2 c_f + d E G c_r) D n_blocks`` with c_f = 6, c_r = 14 (router cost grows with G).

For each draw, budget and G the loss is strictly convex in ``x = log n_blocks`` (a sum of two
exponential-like terms; the router only adds curvature), so safeguarded Newton steps from the
router-free closed form find the optimum. G is then chosen by enumeration over powers of two
(options ``granularity_min``/``granularity_max``, default 1-256; the paper restricts G to powers
of two and its optima lie in 8-64). The search over every (draw, budget, G) only has to rank the G:
it runs in float32 (twice the SIMD width of float64 on CPU) with ``SEARCH_STEPS`` Newton steps (the
loss error is second order in the error of x, so one step ranks G to ~1e-6 nats); the chosen G's
optimum is then polished by ``POLISH_STEPS`` float64 Newton steps, so the returned quantities have
float64 accuracy. The law's dense limit (g term dropped, no router,
``N = N_act = 12 d^2 n_blocks``, i.e. what the law predicts for a dense run) is the "dense" baseline
of the recommendations.

Shapes: theta entries (S,), compute (B,) -> every returned quantity (S, B).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...errors import BayesMoeError
from ...laws.base import Array, Theta
from .search import broadcast_theta, newton_convex, powers_of_two
from .space import Space

C_F, C_R = 6.0, 14.0
K_ACT = 12.0 * 64.0**2  # N_act = K_ACT n^3
K_F = K_ACT * C_F  # F = (K_F n^3 + K_R E G n^2) D
K_R = 64.0 * C_R
LOG_K_ACT, LOG_K_F = float(np.log(K_ACT)), float(np.log(K_F))  # Python floats keep float32 math in float32
NEWTON_STEPS = (
    3  # from the router-free start: 2 steps reach 1e-7 in log n_blocks, 3 machine precision (1e18-1e26 FLOPs, G 1-256)
)
SEARCH_STEPS = 1  # float32 steps per (draw, budget, G) when choosing G
POLISH_STEPS = 3  # float64 steps at the chosen G (quadratic convergence to machine precision)
_THETA = ("a", "alpha", "b", "beta", "c", "g", "gamma")


def _constants(t, log_f, G, expansion, dense):
    """Loop invariants: ln P = a0 - 3 alpha x; ln Q = b0 + beta (3x + ln(1 + rinv)); rinv = r0 e^-x (broadcast).

    P is the parameter term (g/G^gamma + a)/N^alpha with N = k_N n^3, Q the data term b/D^beta with
    D = F / (K_F n^3 (1 + rinv)), rinv the router share of the FLOPs relative to the dense part.
    """
    if dense:
        log_k, log_kn, r0 = jnp.log(t["a"]), LOG_K_ACT, 0.0
    else:
        log_k = jnp.logaddexp(jnp.log(t["g"]) - t["gamma"] * jnp.log(G), jnp.log(t["a"]))
        log_kn, r0 = jnp.log(64.0**2 * (8 * expansion + 4)), expansion * G * K_R / K_F
    return log_k - t["alpha"] * log_kn, jnp.log(t["b"]) - t["beta"] * (log_f - LOG_K_F), r0


def _parts(t, consts, x):
    """P, Q, rinv and ln(1 + rinv) at x = log n_blocks."""
    a0, b0, r0 = consts
    rinv = r0 * jnp.exp(-x)
    l1p = jnp.log1p(rinv)
    return jnp.exp(a0 - 3 * t["alpha"] * x), jnp.exp(b0 + t["beta"] * (3 * x + l1p)), rinv, l1p


def _router_free_x(t, consts):
    """Optimal log n_blocks without the router term: alpha P = beta Q in closed form."""
    a0, b0, _ = consts
    return (a0 + jnp.log(t["alpha"]) - b0 - jnp.log(t["beta"])) / (3 * (t["alpha"] + t["beta"]))


def _optimal_x(t, consts, x0=None, steps: int = NEWTON_STEPS):
    """Optimal log n_blocks: Newton from ``x0`` (default: the router-free closed form)."""
    alpha, beta = t["alpha"], t["beta"]
    x0 = _router_free_x(t, consts) if x0 is None else x0

    def grad_hess(x):
        p, q, rinv, _ = _parts(t, consts, x)
        u = -(3 + 2 * rinv) / (1 + rinv)  # d ln D / dx
        du = -rinv / (1 + rinv) ** 2
        return -3 * alpha * p - beta * u * q, 9 * alpha**2 * p + beta**2 * u**2 * q - beta * du * q

    return newton_convex(grad_hess, x0, steps)


def loss(
    theta: Theta, log_f: Array, n_blocks: Array, G: Array, *, expansion: float = 64.0, dense: bool = False
) -> Array:
    """Loss of a model with ``n_blocks`` (d = 64 n_blocks) and granularity ``G`` trained on budget exp(``log_f``).

    All arguments broadcast elementwise (theta entries already shaped, see ``broadcast_theta``).
    """
    p, q, _, _ = _parts(theta, _constants(theta, log_f, G, expansion, dense), jnp.log(n_blocks))
    return theta["c"] + p + q


@partial(jax.jit, static_argnames=("dense", "steps"))
def _best(t, log_f, G, expansion, dense, steps: int = NEWTON_STEPS):
    """Optimal (log n_blocks, loss, log D), elementwise over broadcast (theta, log budget, G)."""
    consts = _constants(t, log_f, G, expansion, dense)
    x = _optimal_x(t, consts, steps=steps)
    p, q, _, l1p = _parts(t, consts, x)
    return x, t["c"] + p + q, log_f - LOG_K_F - 3 * x - l1p


@jax.jit
def _solve(theta, log_f, G, expansion):
    """Optimal (log n_blocks, loss, log D, G), each (S, B): G chosen in float32, its optimum polished in float64."""
    f32 = jnp.float32
    t32 = {k: v.astype(f32) for k, v in broadcast_theta(theta, 3).items()}
    x32, L32, _ = _best(
        t32, log_f[None, :, None].astype(f32), G[None, None, :].astype(f32), expansion.astype(f32), False, SEARCH_STEPS
    )
    pick = jnp.argmin(jnp.where(jnp.isfinite(L32), L32, jnp.inf), axis=-1)
    G_best = G[pick]
    t = broadcast_theta(theta, 2)
    consts = _constants(t, log_f[None, :], G_best, expansion, False)
    x0 = jnp.take_along_axis(x32, pick[..., None], axis=-1)[..., 0].astype(log_f.dtype)
    x0 = jnp.where(jnp.isfinite(x0), x0, _router_free_x(t, consts))  # float32 overflow: start afresh
    x = _optimal_x(t, consts, x0, POLISH_STEPS)
    p, q, _, l1p = _parts(t, consts, x)
    L = t["c"] + p + q
    return x, jnp.where(jnp.isfinite(L), L, jnp.inf), log_f[None, :] - LOG_K_F - 3 * x - l1p, G_best


def _granularities(options) -> np.ndarray:
    return powers_of_two(
        float(options.get("granularity_min", 1)), float(options.get("granularity_max", 256)), "granularity range"
    )


def _expansion(options) -> float:
    e = float(options.get("expansion", 64.0))
    if not e >= 1:
        raise BayesMoeError(f"expansion rate must be >= 1 (MoE-layer / dense-FFN parameters), got {e:g}")
    return e


def granularity_optimum(
    theta: Theta, compute: np.ndarray, *, objective: str = "compute", **options: Any
) -> dict[str, np.ndarray]:
    """Compute-optimal configuration per draw and budget (see module doc); quantities (S, B)."""
    if objective != "compute":
        raise BayesMoeError(f"law 'granularity' supports only --objective compute, got '{objective}'")
    expansion = _expansion(options)
    theta = {k: jnp.asarray(theta[k], float) for k in _THETA}
    x, L, log_d, G = _solve(theta, jnp.log(jnp.asarray(compute, float)), jnp.asarray(_granularities(options)),
                            jnp.asarray(expansion, float))
    n = jnp.exp(x)
    n_active = K_ACT * n**3
    tokens = jnp.exp(log_d)
    ratio = (8 * expansion + 4) / 12
    return {
        "n_total": n_active * ratio, "n_active": n_active, "tokens": tokens, "loss": L,
        "granularity": G, "n_experts": G * expansion, "ratio_total_active": jnp.full_like(n, ratio),
        "ratio_active_total": jnp.full_like(n, 1 / ratio), "d_model": 64 * n, "n_layers": n,
        "tokens_per_param": tokens / n_active, "flops_per_token": jnp.asarray(compute)[None, :] / tokens,
    }


@jax.jit
def _grid(theta, log_f, d_model, G, expansion):
    t = broadcast_theta(theta, 4)
    return loss(
        t, log_f[None, :, None, None], d_model[None, :, :, None] / 64.0, G[None, None, None, :], expansion=expansion
    )


def _grid_loss(theta, compute, d_model, choices, **options):
    """Loss (S, B, K, M) on a grid: d_model (B, K), granularities (M,)."""
    theta = {k: jnp.asarray(theta[k], float) for k in _THETA}
    return _grid(theta, jnp.log(jnp.asarray(compute, float)), jnp.asarray(d_model, float), jnp.asarray(choices, float),
                 _expansion(options))


def _best_loss(theta, log_compute, kind, **options):
    """Optimal loss (S, B) at per-draw budgets exp(log_compute) (S, B): best MoE (over G) or dense."""
    t = broadcast_theta({k: theta[k] for k in _THETA}, 3)
    if kind == "dense":
        return _best(t, log_compute[..., None], jnp.ones(1), 1.0, True)[1][..., 0]
    _, L, _ = _best(
        t, log_compute[..., None], jnp.asarray(_granularities(options))[None, None, :], _expansion(options), False
    )
    return jnp.min(jnp.where(jnp.isfinite(L), L, jnp.inf), axis=-1)


def _describe(d_model, G, compute, **options):
    """Runs-table counts (docs/runs-table.md) of configuration (d_model, G) trained on ``compute`` FLOPs.

    Arrays broadcast against each other."""
    expansion = _expansion(options)
    n = np.asarray(d_model, float) / 64
    n_active = K_ACT * n**3
    tokens = np.asarray(compute, float) / ((K_F * n + K_R * expansion * np.asarray(G, float)) * n**2)
    return {"n_active": n_active, "n_total": n_active * (8 * expansion + 4) / 12, "tokens": tokens,
            "n_experts": np.asarray(G, float) * expansion}


#: the granularity law's design space at a fixed budget (for :mod:`bayesmoe.decide.recommend`).
SPACE = Space(
    size="d_model", choice="granularity", choices=_granularities, loss=_grid_loss, best_loss=_best_loss,
    describe=_describe,
    dense="the law's dense limit with the same coefficients (g term dropped, no router, N = N_act): "
          "for a fit with dense runs this is the fitted dense law; for granularity:krajewski2024 (MoE-only fit) "
          "it differs from the paper's separate dense fit (Table 1 dense row)",
)
