"""Routed-LM law, Clark et al. 2022, "Unified Scaling Laws for Routed Language Models" (arXiv 2202.01169), Eq. 1.

    log10 L = a log10 N + b log10 Ê + c log10 N log10 Ê + d
    1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^(-1)) + 1/E_max          (Eq. 2; dense E = 1 gives Ê = E_start)

**Logs are base 10** (natural logs make the published coefficients meaningless). N = parameters a token
sees, non-embedding = ``n_active``; E = ``n_experts`` (1 for dense runs). Training length is fixed in the
paper (about 1.3e11 tokens), so the law has no D term. The paper's sign convention: a, b < 0, c > 0
(the benefit of routing shrinks as N grows). E_start and E_max are fitted (they have priors here).

Mean in natural log loss: ``log L = ln(10) (a1 lN + b u + c lN u + d1)`` with ``lN = log10 N``,
``u = log10(Ê / E_start)`` (0 for dense runs), ``a1 = a + c log10 E_start`` (the dense exponent) and
``d1 = d + b log10 E_start``. This is Eq. 1 rewritten exactly; it lets a hierarchical fit share the
dense law (a1, d1) between routers (see :data:`ANCHORED` and :mod:`bayesmoe.model.identifiability`).
Theta may carry either (a, d) or (a1, d1).

Default priors (latent scale; around the paper's magnitudes, Table 3), weakly informative in outcome
space: on a typical design (N 1.5e7-1.3e9, E 1-512) 96% of the prior-predictive loss lies in [0.5, 15] nats
(``d`` is log10 L at N = 1, far from any run, so ``a`` and ``d`` together set the loss level):
    a ~ Normal(-0.08, 0.03) truncated to [-1, 0.5];  b ~ Normal(-0.1, 0.07);  c ~ Normal(0, 0.01)
    d ~ Normal(1.15, 0.15);  log E_start ~ Normal(log 2, 0.75) truncated to [0, log 50]
    log E_max ~ Normal(log 300, 1) truncated to [log 50, log 1e5]
Published sets (``datasets/coefficients/routing.json``): ``clark2022-sbase``, ``clark2022-rlr``,
``clark2022-hash`` (Table 3, one fit per router, each sharing the dense runs).
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np

from ._ehat import e_hat
from .base import Array, Law, Param, Theta, column

LN10 = float(np.log(10.0))


def _covariates(frame):
    experts = frame["n_experts"].fillna(1).to_numpy(float) if "n_experts" in frame.columns else np.ones(len(frame))
    return {"log10_N": np.log10(column(frame, "n_active", "routing")), "E": experts}


def anchored_terms(t: Theta) -> tuple[Array, Array, Callable[[Array], Array]]:
    """(a1, d1, u_of) from theta holding either the paper's (a, d) or the dense-anchored (a1, d1).

    ``u_of(E)`` is ``log10(Ê / E_start)``, exactly 0 at E = 1.
    """
    log_start = jnp.log10(t["E_start"])
    a1 = t["a1"] if "a1" in t else t["a"] + t["c"] * log_start
    d1 = t["d1"] if "d1" in t else t["d"] + t["b"] * log_start

    def u_of(experts):
        ratio = jnp.log10(e_hat(jnp.maximum(experts, 1.0), t["E_start"], t["E_max"])) - log_start
        return jnp.where(experts > 1, ratio, 0.0)

    return a1, d1, u_of


def log10_loss(t: Theta, log10_n: Array, experts: Array) -> Array:
    """log10 L of Eq. 1 (broadcasting theta entries against covariates)."""
    a1, d1, u_of = anchored_terms(t)
    u = u_of(experts)
    return a1 * log10_n + t["b"] * u + t["c"] * log10_n * u + d1


def _log_loss(t, x):
    return LN10 * log10_loss(t, x["log10_N"], x["E"])


#: The saturation of Eq. 2 (E_start, E_max), shared with the laws built on it (``routing_floor``).
SATURATION = (
    Param("E_start", "log", float(np.log(2.0)), 0.75, low=0.0, high=float(np.log(50.0)),
          doc="expert count where saturation starts (Ehat at E = 1)"),
    Param("E_max", "log", float(np.log(300.0)), 1.0, low=float(np.log(50.0)), high=float(np.log(1e5)),
          doc="expert count where the benefit saturates"),
)
_ROUTER = (
    Param("b", "linear", -0.1, 0.07, role="level", doc="log10 Ehat coefficient (negative: experts help)"),
    Param("c", "linear", 0.0, 0.01, role="level", doc="log10 N x log10 Ehat interaction"),
    *SATURATION,
)

CITATION = "Clark et al. 2022, Unified Scaling Laws for Routed Language Models, ICML 2022, arXiv 2202.01169"
N_COUNTS = "N = n_active (non-embedding parameters a token sees), E = n_experts (dense: 1); no D term (fixed tokens)"
NOTES = (
    "Logs base 10. Hierarchical fits (--group) use the dense-anchored form: a1 = a + c log10 E_start and "
    "d1 = d + b log10 E_start are shared (the dense law), b and c are pooled per router (add --pool E_start E_max "
    "to pool the saturation too), and runs with n_experts = 1 belong to every router."
)

#: Eq. 1 in its dense-anchored parameters (a1, d1 shared; b, c pooled per router by default): the law a
#: hierarchical fit samples (``LAW.dense_anchored``). Same mean function.
ANCHORED = Law(
    name="routing",
    title="Routed LMs (N, Ehat), dense-anchored: a1 = a + c log10 E_start, d1 = d + b log10 E_start",
    citation=CITATION,
    formula="log10 L = a1 log10 N + b u + c log10 N u + d1, u = log10(Ehat / E_start) (0 for dense runs)",
    n_counts=N_COUNTS,
    params=(
        Param("a1", "linear", -0.08, 0.03, low=-1.0, high=0.5, doc="dense log10 N exponent (a + c log10 E_start)"),
        *_ROUTER[:2],
        Param("d1", "linear", 1.15, 0.15, doc="dense intercept (d + b log10 E_start)"),
        *_ROUTER[2:],
    ),
    required_columns=("n_active",),
    covariates=_covariates,
    log_loss=_log_loss,
    notes=NOTES,
)


def reductions(intercept: tuple[float, float]) -> dict:
    """Rules for runs in which one column is constant (``Law.reductions``): the parameters fixed and the ones
    renamed to absorb the constant (:mod:`bayesmoe.model.identifiability`). ``intercept`` = (d at N = 1, a):
    the prior of the intercept at a fixed N0 is Normal(d + a log10 N0, 0.5), in log10 nats."""
    level, slope = intercept

    def n_experts_constant(e0):
        return {"fix": {"b": 0.0, "c": 0.0, "E_start": 2.0, "E_max": 300.0},
                "rename": {"a": ("a_E", f"log10 N exponent at the fixed E = {e0:g}", None),
                           "d": ("d_E", f"intercept at the fixed E = {e0:g}", None)}}

    def n_active_constant(n0):
        return {"fix": {"a": 0.0, "c": 0.0},
                "rename": {"b": ("b_N", f"b + c log10 N0: log10 Ehat coefficient at the fixed N0 = {n0:.4g}", None),
                           "d": ("d_N", f"d + a log10 N0: intercept at the fixed N0 = {n0:.4g}",
                                 (level + slope * np.log10(n0), 0.5))}}

    return {"n_experts": n_experts_constant, "n_active": n_active_constant}


REDUCTIONS = reductions((1.1, -0.08))

LAW = Law(
    name="routing",
    title="Routed LMs (N, Ehat), fixed training length",
    citation=CITATION,
    formula="log10 L = a log10 N + b log10 Ehat + c log10 N log10 Ehat + d; "
    "1/Ehat = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max",
    n_counts=N_COUNTS,
    params=(
        Param("a", "linear", -0.08, 0.03, low=-1.0, high=0.5, doc="log10 N exponent at Ehat = 1"),
        *_ROUTER[:2],
        Param("d", "linear", 1.15, 0.15, doc="intercept (log10 nats)"),
        *_ROUTER[2:],
    ),
    required_columns=("n_active",),
    covariates=_covariates,
    log_loss=_log_loss,
    notes=NOTES,
    reductions=REDUCTIONS,
    term_columns=("n_active", "n_experts"),
    dense_anchored=ANCHORED,
)


def paper_parameters(theta: Theta) -> dict[str, Array]:
    """Theta with the paper's a and d filled in from a1, d1 where needed (arrays broadcast)."""
    out = dict(theta)
    if "a" not in out and "a1" in out:
        log_start = np.log10(out["E_start"])
        out["a"] = out["a1"] - out["c"] * log_start
        out["d"] = out["d1"] - out["b"] * log_start
    return out
