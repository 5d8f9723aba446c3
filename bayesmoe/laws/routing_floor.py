"""Routed-LM law with an irreducible loss: Clark et al. 2022's Eq. 1 (arXiv 2202.01169) as the reducible part.

    L = E_irr + 10^(a log10 N + b log10 Ê + c log10 N log10 Ê + d)
    1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^(-1)) + 1/E_max          (Clark et al. Eq. 2; dense E = 1 gives Ê = E_start)

Clark et al. fit Eq. 1 (law id ``routing``) to log10 L itself: a pure power law in N, whose log-log slope
cannot flatten as the loss approaches the entropy of the text. Here the power law describes only the
*reducible* loss ``L - E_irr``, in nats, as in Hoffmann et al.'s and Ludziejewski et al.'s laws; the
``routing`` law is the limit E_irr -> 0 (its meaning is unchanged; this is a separate law).

**Logs in the exponent are base 10**, as in Clark et al. N = parameters a token sees, non-embedding =
``n_active``; E = ``n_experts`` (1 for dense runs). The training length is fixed (about 1.3e11 tokens in
the paper), so there is no D term. Sign convention as the paper: a, b < 0, c > 0 (routing helps less as N
grows). E_irr is in nats per token.

Mean in natural log loss: ``log L = LSE(log E_irr, ln(10) (a1 lN + b u + c lN u + d1))`` with
``lN = log10 N``, ``u = log10(Ê / E_start)`` (0 for dense runs), ``a1 = a + c log10 E_start`` and
``d1 = d + b log10 E_start`` (Eq. 1 rewritten exactly, as in :mod:`bayesmoe.laws.routing`). Hierarchical fits
(``--group``) sample that dense-anchored form (:data:`ANCHORED`): the dense law (a1, d1) and E_irr are shared
by every router, b and c are pooled per router (``--pool E_start E_max`` pools the saturation too), and the
dense runs belong to every router. E_irr is not pooled by default (a run with E = 1 has no router, so a
per-router floor would make the dense runs' loss depend on an arbitrary router).

Default priors (latent scale), weakly informative in outcome space: on a typical routed design (N 1.5e7-1.3e9,
E 1-512) at least 95% of the prior-predictive loss lies in [0.5, 15] nats. With a floor the reducible part is
a fraction of the loss, so its exponent is steeper than the floor-free law's (a least-squares fit of
Clark et al.'s runs below 1.3B gives a1 about -0.2, d1 about 1.7, E_irr about 1.7 nats):
    a ~ Normal(-0.15, 0.06) truncated to [-1, 0.5];  b ~ Normal(-0.15, 0.1);  c ~ Normal(0, 0.015)
    d ~ Normal(1.3, 0.35);  log E_irr ~ Normal(log 1.2, 0.5)
    log E_start ~ Normal(log 2, 0.75) truncated to [0, log 50]
    log E_max ~ Normal(log 300, 1) truncated to [log 50, log 1e5]
No published coefficient set: Clark et al. fit no irreducible term.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .base import Law, Param, logsumexp
from .routing import CITATION, LN10, N_COUNTS, SATURATION, _covariates, log10_loss, reductions


def _log_loss(t, x):
    return logsumexp(jnp.log(t["E_irr"]), LN10 * log10_loss(t, x["log10_N"], x["E"]))


_E_IRR = Param("E_irr", "log", float(np.log(1.2)), 0.5, sample_scale="natural",
               doc="irreducible loss (nats); shared by every router")
_ROUTER = (
    Param("b", "linear", -0.15, 0.1, role="level", doc="log10 Ehat coefficient of the reducible loss (negative)"),
    Param("c", "linear", 0.0, 0.015, role="level", doc="log10 N x log10 Ehat interaction"),
)

NOTES = (
    "Logs base 10 in the exponent; E_irr in nats. Hierarchical fits (--group) use the dense-anchored form: "
    "a1 = a + c log10 E_start, d1 = d + b log10 E_start and E_irr are shared, b and c are pooled per router "
    "(add --pool E_start E_max to pool the saturation too), and runs with n_experts = 1 belong to every router."
)

#: The law in its dense-anchored parameters (a1, d1, E_irr shared; b, c pooled per router by default): what a
#: hierarchical fit samples (``LAW.dense_anchored``). Same mean function.
ANCHORED = Law(
    name="routing_irreducible",
    title="Routed LMs with irreducible loss, dense-anchored: a1 = a + c log10 E_start, d1 = d + b log10 E_start",
    citation=CITATION,
    formula="L = E_irr + 10^(a1 log10 N + b u + c log10 N u + d1), u = log10(Ehat / E_start) (0 for dense runs)",
    n_counts=N_COUNTS,
    params=(
        Param("a1", "linear", -0.15, 0.06, low=-1.0, high=0.5, doc="dense log10 N exponent (a + c log10 E_start)"),
        *_ROUTER,
        Param("d1", "linear", 1.3, 0.35, doc="dense intercept (d + b log10 E_start)"),
        _E_IRR,
        *SATURATION,
    ),
    required_columns=("n_active",),
    covariates=_covariates,
    log_loss=_log_loss,
    notes=NOTES,
)


#: Rules for runs in which one column is constant (``Law.reductions``): the routing law's, with this law's
#: intercept prior for the reducible loss.
REDUCTIONS = reductions((1.3, -0.15))


LAW = Law(
    name="routing_irreducible",
    title="Routed LMs (N, Ehat) with irreducible loss, fixed training length",
    citation=CITATION + "; irreducible term added here (not in the paper)",
    formula="L = E_irr + 10^(a log10 N + b log10 Ehat + c log10 N log10 Ehat + d); "
    "1/Ehat = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max",
    n_counts=N_COUNTS,
    params=(
        Param("a", "linear", -0.15, 0.06, low=-1.0, high=0.5, doc="log10 N exponent of the reducible loss at Ehat = 1"),
        *_ROUTER,
        Param("d", "linear", 1.3, 0.35, doc="intercept of the reducible loss (log10 nats)"),
        _E_IRR,
        *SATURATION,
    ),
    required_columns=("n_active",),
    covariates=_covariates,
    log_loss=_log_loss,
    notes=NOTES,
    reductions=REDUCTIONS,
    term_columns=("n_active", "n_experts"),
    dense_anchored=ANCHORED,
)
