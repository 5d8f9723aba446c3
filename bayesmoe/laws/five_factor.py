"""Five-factor MoE law, Zhao et al. 2025, "Towards a Comprehensive Scaling Law of Mixture-of-Experts"
(arXiv 2509.23678): the joint law in data D, total parameters N, activated parameters Na, activated
experts G and shared-expert ratio S, fitted there to 446 runs.

    L = (e G + f/G + m S^2 + n S) (1/N^alpha + k/Na^alpha + h Na/N) + a/N^alpha + b/D^beta + c/Na^alpha + eps

Positive exponents in denominators (alpha, beta > 0); n < 0 in the published fit, so the S-part
m S^2 + n S is a parabola with its minimum at S* = -n/(2m), and e G + f/G is hook-shaped with its
minimum at G* = sqrt(f/e). The formula and coefficients are the paper's joint law as transcribed in our
checked notes (the arXiv body was not reachable from here); they reproduce every optimum the paper
states (G* 6.78, S* 0.315, Na/N 40.1% at N = 30B and 22.0% at N = 671B).

Covariates from the runs table (docs/runs-table.md):
    N  = ``n_total``, Na = ``n_active`` (non-embedding; the paper does not say how it counts embeddings,
         so our runs' non-embedding counts are used as they are and ``n_embedding`` is ignored)
    D  = ``tokens``
    G  = activated experts, shared ones included = ``top_k / (1 - shared_ratio)`` (equal-size experts;
         the trainer's ``shared_ratio`` is n_shared / (n_shared + top_k))
    S  = ``shared_ratio``
A dense run (top_k 1, shared_ratio 0, Na = N) is G = 1, S = 0.

Log space. The first factor P = e G + f/G + m S^2 + n S is a signed O(1) polynomial (it can be
negative for some draws when n^2/(4m) > 2 sqrt(e f)), so it is not put through a logarithm. With
    log Q = LSE(-alpha ln N, ln k - alpha ln Na, ln h + ln Na - ln N)          (Q > 0)
    log B = LSE(ln a - alpha ln N, ln b - beta ln D, ln c - alpha ln Na, ln eps) (B > 0)
the law is L = B (1 + r) with r = P Q / B, so ``log L = log B + log1p(r)``: exact for either sign of
P and free of overflow. Where a draw would make L <= 0 (r <= -1) r is floored at ``R_FLOOR``, which
gives a log loss some 14 nats below B: the likelihood rules such draws out.

Default priors (latent scale; centred on the orders of magnitude of the published fit, wide):
    log e ~ N(ln 0.15, 1.5), log f ~ N(ln 7, 1.5), log m ~ N(ln 5, 1.5), n ~ N(-3, 3)
    log k ~ N(ln 0.01, 3), log h ~ N(ln 0.05, 2)
    log a ~ N(3.5, 2), log b ~ N(7, 4), log c ~ N(3.5, 2), log eps ~ N(0.5, 1)
    alpha ~ N(0.25, 0.15) truncated to [0, 1];  beta ~ N(0.4, 0.2) truncated to [0, 2]
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import BayesMoeError
from .base import Array, Law, Param, Theta, column, logsumexp

#: Floor of r = P Q / B (L = B (1 + r) must stay positive); see the module docstring.
R_FLOOR = -1.0 + 1e-6


def activated_experts(frame: pd.DataFrame) -> np.ndarray:
    """G: activated experts per token, shared ones included: top_k / (1 - shared_ratio); shape (n,)."""
    top_k = column(frame, "top_k", "five_factor")
    share = column(frame, "shared_ratio", "five_factor")
    return top_k / (1.0 - share)


def _covariates(frame):
    n_total = column(frame, "n_total", "five_factor")
    n_active = column(frame, "n_active", "five_factor")
    if np.any(n_active > n_total * (1 + 1e-9)):
        rows = ", ".join(map(str, np.flatnonzero(n_active > n_total * (1 + 1e-9))[:5]))
        raise BayesMoeError(f"runs table: n_active exceeds n_total in rows {rows} (law 'five_factor' needs Na <= N)")
    return {
        "log_N": np.log(n_total),
        "log_Na": np.log(n_active),
        "log_D": np.log(column(frame, "tokens", "five_factor")),
        "G": activated_experts(frame),
        "S": column(frame, "shared_ratio", "five_factor"),
    }


def first_factor(t: Theta, G: Array, S: Array) -> Array:
    """P = e G + f/G + m S^2 + n S (dimensionless, any sign); broadcasts."""
    return t["e"] * G + t["f"] / G + t["m"] * S**2 + t["n"] * S


def _log_loss(t, x):
    log_alpha_n, log_alpha_na = -t["alpha"] * x["log_N"], -t["alpha"] * x["log_Na"]
    log_q = logsumexp(log_alpha_n, jnp.log(t["k"]) + log_alpha_na, jnp.log(t["h"]) + x["log_Na"] - x["log_N"])
    log_b = logsumexp(
        jnp.log(t["a"]) + log_alpha_n,
        jnp.log(t["b"]) - t["beta"] * x["log_D"],
        jnp.log(t["c"]) + log_alpha_na,
        jnp.log(t["eps"]),
    )
    r = first_factor(t, x["G"], x["S"]) * jnp.exp(log_q - log_b)
    return log_b + jnp.log1p(jnp.maximum(r, R_FLOOR))


LAW = Law(
    name="five_factor",
    title="Five-factor MoE (D, N, Na, activated experts G, shared ratio S)",
    citation="Zhao et al. 2025, Towards a Comprehensive Scaling Law of Mixture-of-Experts, arXiv 2509.23678",
    formula="L = (e G + f/G + m S^2 + n S) (1/N^alpha + k/Na^alpha + h Na/N) + a/N^alpha + b/D^beta + c/Na^alpha + eps",
    n_counts="N = n_total, Na = n_active (non-embedding; embeddings not counted), D = tokens, "
    "G = top_k / (1 - shared_ratio) (activated experts incl. shared), S = shared_ratio",
    params=(
        Param("e", "log", float(np.log(0.15)), 1.5, role="level", doc="coefficient of G in the first factor"),
        Param("f", "log", float(np.log(7.0)), 1.5, role="level", doc="coefficient of 1/G in the first factor"),
        Param("m", "log", float(np.log(5.0)), 1.5, role="level", doc="coefficient of S^2 in the first factor"),
        Param(
            "n",
            "linear",
            -3.0,
            3.0,
            role="level",
            doc="coefficient of S in the first factor (negative: optimum S* = -n/(2m) > 0)",
        ),
        Param("k", "log", float(np.log(0.01)), 3.0, role="level", doc="weight of 1/Na^alpha in the second factor"),
        Param("h", "log", float(np.log(0.05)), 2.0, role="level", doc="weight of Na/N in the second factor"),
        Param("a", "log", 3.5, 2.0, role="level", doc="total-parameter term coefficient"),
        Param("alpha", "linear", 0.25, 0.15, low=0.0, high=1.0, doc="parameter exponent (N and Na)"),
        Param("b", "log", 7.0, 4.0, role="level", doc="data-term coefficient"),
        Param("beta", "linear", 0.4, 0.2, low=0.0, high=2.0, doc="data exponent"),
        Param("c", "log", 3.5, 2.0, role="level", doc="activated-parameter term coefficient"),
        Param("eps", "log", 0.5, 1.0, role="level", sample_scale="natural", doc="irreducible loss (nats)"),
    ),
    required_columns=("n_total", "n_active", "tokens", "top_k", "shared_ratio"),
    covariates=_covariates,
    log_loss=_log_loss,
    notes="G counts shared experts: G = top_k / (1 - shared_ratio). Embeddings are not counted (the paper does "
    "not say). Formula and coefficients from a checked transcription of the paper that reproduces its stated optima.",
)
