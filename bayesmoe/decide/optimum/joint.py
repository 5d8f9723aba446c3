"""Optimal (N_act, D, E) for the joint MoE law (Ludziejewski et al. 2025, arXiv 2502.05172, Sec. 5).

The law's N is N_act *including* embedding and unembedding. The paper's architecture (App. A.1):
``N_act = 2 d V + 13 n_blocks d^2``, ``N_total = 2 d V + (4 + 9E) n_blocks d^2``, ``n_blocks = d / 64``,
V = 50,257; top-1 routing over E experts. Objectives (option names in brackets):

- ``compute``: training FLOPs ``6 N_act D = C``. For each E the loss in ``y = ln N_act`` is a sum of
  two exponentials, so the optimum has the closed form ``y* = ln(beta' B / (alpha' A)) / (alpha' + beta')``
  *with the paper's negative exponents* (alpha' = alpha + gamma ln Ê, beta' = beta + zeta ln Ê, both < 0;
  draws where either is >= 0 have no interior optimum and that E is skipped). Eq. 7 as printed
  (positive-exponent form) gives absurd optima with these signs; tests check ours against a
  numerical minimiser.
- ``memory`` (``memory`` bytes, ``kv_tokens`` T, default 0): also ``2 (N_total + 2 T n_blocks d) <= memory``
  (bf16 weights and KV cache, 2 bytes a value). The loss is convex in y, so the optimum is the compute
  optimum clipped to the largest model that fits. An E whose one-block model does not fit is infeasible.
- ``inference`` (``inference_tokens`` D_inf): ``6 N_act D + 2 N_act D_inf = C`` (C = training plus
  lifetime inference FLOPs); golden-section search in y up to where D reaches 0 (and the memory cap, if
  ``memory`` is given).

E is chosen by enumeration over powers of two (``experts_max``, default 64; ``experts_min`` 1; E = 1 is
dense). Reported counts follow docs/runs-table.md: ``n_active``/``n_total`` are non-embedding (13 and 4 + 9E times
n_blocks d^2), ``n_embedding = 2 d V``; ``ratio_total_active`` = n_total / n_active.
Shapes: theta entries (S,), compute (B,) -> every returned quantity (S, B).
"""
from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...errors import BayesMoeError
from ...laws._ehat import e_hat
from ...laws.base import Array, Theta
from .search import bisect_increasing, broadcast_theta, golden_min, powers_of_two
from .space import Space

VOCAB = 50257.0
BYTES_PER_VALUE = 2.0
D_MIN = 64.0  # one block
D_MAX = 2.0**22
GOLDEN_STEPS = 80


def n_act_embedded(d: Array) -> Array:
    """The law's N_act (embeddings included) of the architecture with hidden size ``d``."""
    return 2 * d * VOCAB + 13 * d**3 / 64


def memory_values(d: Array, E: Array, kv_tokens: float) -> Array:
    """Values held in memory: N_total (embeddings included) plus a KV cache of ``kv_tokens`` tokens."""
    return 2 * d * VOCAB + (4 + 9 * E) * d**3 / 64 + 2 * kv_tokens * d**2 / 64


@jax.jit
def d_from_n_act(n_act: Array) -> Array:
    """Invert :func:`n_act_embedded` (monotone cubic) by Newton from an upper bound; any shape."""
    d = jnp.minimum((64 * n_act / 13) ** (1 / 3), n_act / (2 * VOCAB))

    def step(_, d):
        return d - (n_act_embedded(d) - n_act) / (2 * VOCAB + 39 * d**2 / 64)

    return jax.lax.fori_loop(0, 40, step, d)


def _law_terms(t, E):
    """(ln A, alpha', ln B, beta') of each draw and E: L = c + exp(lnA + alpha' y) + exp(lnB + beta' ln D)."""
    le = jnp.log(e_hat(E, t["E_start"], t["E_max"]))
    return (jnp.log(t["a"]) + t["delta"] * le, t["alpha"] + t["gamma"] * le,
            jnp.log(t["b"]) + t["omega"] * le, t["beta"] + t["zeta"] * le)


def _loss_y(t, terms, y, log_d):
    la, al, lb, be = terms
    return t["c"] + jnp.exp(la + al * y) + jnp.exp(lb + be * log_d)


def _log_tokens(y, log_c, inference_tokens):
    """ln D for N_act = e^y on budget e^log_c: C/(6N) (compute) or C/(6N) - D_inf/3 (inference)."""
    if inference_tokens is None:
        return log_c - np.log(6.0) - y
    tokens = jnp.exp(log_c - np.log(6.0) - y) - inference_tokens / 3
    return jnp.where(tokens > 0, jnp.log(jnp.where(tokens > 0, tokens, 1.0)), -jnp.inf)


def _y_memory_cap(E, memory, kv_tokens):
    """ln N_act of the largest d that fits in ``memory`` bytes, per E; -inf where not even D_MIN fits."""
    if memory is None:
        return jnp.full_like(E, jnp.inf)
    values = memory / BYTES_PER_VALUE
    log_d = bisect_increasing(lambda z: jnp.log(memory_values(jnp.exp(z), E, kv_tokens)), np.log(values),
                              np.log(D_MIN) + 0 * E, np.log(D_MAX))
    fits = memory_values(D_MIN, E, kv_tokens) <= values
    return jnp.where(fits, jnp.log(n_act_embedded(jnp.exp(log_d))), -jnp.inf)


@partial(jax.jit, static_argnames=("memory", "kv_tokens", "inference_tokens"))
def _best_y(t, log_c, E, memory, kv_tokens, inference_tokens):
    """Optimal y = ln N_act and its loss, elementwise over broadcast (draws, budgets, E)."""
    terms = _law_terms(t, E)
    la, al, lb, be = terms
    y_cap = _y_memory_cap(E, memory, kv_tokens)
    if inference_tokens is None:
        valid = (al < 0) & (be < 0)
        y = (jnp.log(jnp.abs(be)) + lb + be * (log_c - np.log(6.0)) - jnp.log(jnp.abs(al)) - la) / (al + be)
        y = jnp.where(valid, jnp.minimum(y, y_cap), jnp.nan)
    else:
        y_hi = jnp.minimum(log_c - np.log(2 * inference_tokens) - 1e-9, y_cap)
        y_lo = jnp.full_like(y_hi, np.log(n_act_embedded(D_MIN)))
        y = golden_min(
            lambda z: _loss_y(t, terms, z, _log_tokens(z, log_c, inference_tokens)), y_lo, y_hi, GOLDEN_STEPS
        )
        y = jnp.where(y_hi > y_lo, y, jnp.nan)
    y = jnp.where(y_cap > -jnp.inf, y, jnp.nan)
    L = _loss_y(t, terms, y, _log_tokens(y, log_c, inference_tokens))
    return y, jnp.where(jnp.isfinite(L), L, jnp.inf)


def _options(objective, options):
    memory, kv = options.get("memory"), float(options.get("kv_tokens", 0.0))
    inference = options.get("inference_tokens")
    if objective == "memory" and memory is None:
        raise BayesMoeError("--objective memory needs --memory BYTES (the memory budget for weights and KV cache)")
    if objective == "inference" and inference is None:
        raise BayesMoeError("--objective inference needs --inference-tokens D (tokens served over the model's life)")
    if memory is not None and not float(memory) > 0:
        raise BayesMoeError(f"--memory must be a positive number of bytes, got {memory}")
    if inference is not None and not float(inference) > 0:
        raise BayesMoeError(f"--inference-tokens must be a positive number of tokens, got {inference}")
    if kv < 0:
        raise BayesMoeError(f"kv_tokens must be >= 0, got {kv:g}")
    return (None if memory is None else float(memory), kv,
            None if (objective != "inference" or inference is None) else float(inference))


def _experts(options) -> np.ndarray:
    return powers_of_two(
        float(options.get("experts_min", 1)), float(options.get("experts_max", 64)), "expert-count range"
    )


_THETA = ("a", "alpha", "b", "beta", "c", "delta", "gamma", "omega", "zeta", "E_start", "E_max")


def joint_optimum(
    theta: Theta, compute: np.ndarray, *, objective: str = "compute", **options: Any
) -> dict[str, np.ndarray]:
    """Optimal configuration per draw and budget for ``objective`` (see module doc); quantities (S, B)."""
    memory, kv, inference = _options(objective, options)
    t = broadcast_theta({k: theta[k] for k in _THETA}, 3)
    E = jnp.asarray(_experts(options))[None, None, :]
    log_c = jnp.log(jnp.asarray(compute, float))[None, :, None]
    y, L = _best_y(t, log_c, E, memory, kv, inference)
    pick = jnp.argmin(L, axis=-1)[..., None]
    y, L = (jnp.take_along_axis(v, pick, axis=-1)[..., 0] for v in (y, L))
    ok = jnp.isfinite(L)
    y = jnp.where(ok, y, jnp.nan)
    E = jnp.where(ok, E[0, 0][pick[..., 0]], jnp.nan)
    d = d_from_n_act(jnp.exp(y))
    log_c2 = log_c[..., 0]
    tokens = jnp.exp(_log_tokens(y, log_c2, inference))
    n_active = 13 * d**3 / 64
    n_total = (4 + 9 * E) * d**3 / 64
    return {
        "n_active": n_active, "n_total": n_total, "n_embedding": 2 * d * VOCAB, "tokens": tokens,
        "loss": jnp.where(ok, L, jnp.nan), "n_experts": E, "ratio_total_active": n_total / n_active,
        "ratio_active_total": n_active / n_total, "d_model": d, "n_layers": d / 64,
        "tokens_per_param": tokens / n_active, "memory_bytes": BYTES_PER_VALUE * memory_values(d, E, kv),
    }


@partial(jax.jit, static_argnames=("memory", "kv_tokens", "inference_tokens"))
def _grid(theta, log_c, d_model, E, memory, kv_tokens, inference_tokens):
    t = broadcast_theta(theta, 4)
    E = E[None, None, None, :]
    d = d_model[None, :, :, None]
    y = jnp.log(n_act_embedded(d))
    L = _loss_y(t, _law_terms(t, E), y, _log_tokens(y, log_c[None, :, None, None], inference_tokens))
    if memory is not None:
        L = jnp.where(BYTES_PER_VALUE * memory_values(d, E, kv_tokens) <= memory, L, jnp.inf)
    return jnp.where(jnp.isfinite(L), L, jnp.inf)


def _grid_loss(theta, compute, d_model, choices, *, objective="compute", **options):
    """Loss (S, B, K, M) on a grid of d_model (B, K) and expert counts (M,); inf where infeasible."""
    memory, kv, inference = _options(objective, options)
    theta = {k: jnp.asarray(theta[k], float) for k in _THETA}
    return _grid(theta, jnp.log(jnp.asarray(compute, float)), jnp.asarray(d_model, float), jnp.asarray(choices, float),
                 memory, kv, inference)


def _best_loss(theta, log_compute, kind, *, objective="compute", **options):
    """Optimal loss (S, B) at per-draw budgets: best over E > 1 (``"moe"``) or E = 1 (``"dense"``)."""
    memory, kv, inference = _options(objective, options)
    t = broadcast_theta({k: theta[k] for k in _THETA}, 3)
    experts = _experts(options)
    E = jnp.asarray([1.0] if kind == "dense" else experts[experts > 1])[None, None, :]
    _, L = _best_y(t, log_compute[..., None], E, memory, kv, inference)
    return jnp.min(L, axis=-1)


def _describe(d_model, E, compute, *, objective="compute", **options):
    """Runs-table counts (docs/runs-table.md) of configuration (d_model, E) on budget ``compute``.

    Arrays broadcast against each other."""
    _, kv, inference = _options(objective, options)
    d, E = np.asarray(d_model, float), np.asarray(E, float)
    y = np.log(n_act_embedded(d))
    tokens = np.exp(np.asarray(_log_tokens(y, np.log(np.asarray(compute, float)), inference)))
    return {"n_active": 13 * d**3 / 64, "n_total": (4 + 9 * E) * d**3 / 64, "n_embedding": 2 * d * VOCAB,
            "tokens": tokens, "memory_bytes": BYTES_PER_VALUE * memory_values(d, E, kv)}


#: the joint law's design space at a fixed budget (for :mod:`bayesmoe.decide.recommend`).
SPACE = Space(
    size="d_model", choice="n_experts", choices=_experts, loss=_grid_loss, best_loss=_best_loss, describe=_describe,
    dense="E = 1 in the same law (Ê = E_start), the paper's dense model",
)
