"""Dense Chinchilla law, Hoffmann et al. 2022 (arXiv 2203.15556), approach 3.

    L(N, D) = E + A / N^alpha + B / D^beta
    log L   = LSE(log A - alpha log N, log B - beta log D, log E)

N = ``n_active`` (docs/laws.md; Hoffmann count embeddings too, App. F, so add ``n_embedding`` to your runs'
``n_active`` before comparing with their numbers), D = ``tokens``. Positive exponents in the denominator.
Compute C = 6 N D; the compute-optimal allocation is closed form (Hoffmann et al. Eq. 4).

Default priors (latent scale), weakly informative in outcome space: on a typical design (N 1e7-1e10,
D 1e9-1e12) 97% of the prior-predictive loss lies in [0.5, 15] nats (``tests/test_priors.py``):
    log E ~ Normal(log 2, 0.5)        irreducible loss, nats: 95% in [0.75, 5.3]
    log A ~ Normal(5.8, 1), log B ~ Normal(6.5, 1)
    alpha ~ Normal(0.35, 0.05), beta ~ Normal(0.3, 0.04), truncated to [0, 2]
Exponent and coefficient enter as ``log A - alpha log N`` with log N ~ 16-23, so an exponent sd of
0.25 alone spreads a term over a factor e^5; the published sets lie within 2 sd of these priors.
Published sets (``datasets/coefficients/chinchilla.json``): ``hoffmann2022`` (App. D.2, Eq. 10, rounded
as printed) and ``besiroglu2024`` (Besiroglu et al. 2024, arXiv 2404.10102, their Table 1 / released fit).
"""
import jax.numpy as jnp
import numpy as np

from .base import Law, Param, column, logsumexp


def _covariates(frame):
    return {
        "log_N": np.log(column(frame, "n_active", "chinchilla")),
        "log_D": np.log(column(frame, "tokens", "chinchilla")),
    }


def _log_loss(t, x):
    return logsumexp(
        jnp.log(t["A"]) - t["alpha"] * x["log_N"],
        jnp.log(t["B"]) - t["beta"] * x["log_D"],
        jnp.log(t["E"]),
    )


def _tokens_constant(d0):
    return {"fix": {"B": 0.0, "beta": 0.0},
            "rename": {"E": ("E_D", f"E + B / D0^beta: loss floor at the fixed D0 = {d0:.4g} (nats)", None)}}


def _n_active_constant(n0):
    return {"fix": {"A": 0.0, "alpha": 0.0},
            "rename": {"E": ("E_N", f"E + A / N0^alpha: loss floor at the fixed N0 = {n0:.4g} (nats)", None)}}


#: Rules for runs in which one column is constant (``Law.reductions``): the parameters fixed and the ones
#: renamed to absorb the constant (:mod:`bayesmoe.model.identifiability`).
REDUCTIONS = {"tokens": _tokens_constant, "n_active": _n_active_constant}

LAW = Law(
    name="chinchilla",
    title="Chinchilla (dense)",
    citation="Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, arXiv 2203.15556",
    formula="L = E + A / N^alpha + B / D^beta",
    n_counts="N = n_active (non-embedding; Hoffmann et al. count embeddings too), D = tokens",
    params=(
        Param("E", "log", float(np.log(2.0)), 0.5, role="level", sample_scale="natural", doc="irreducible loss (nats)"),
        Param("A", "log", 5.8, 1.0, role="level", doc="parameter-term coefficient"),
        Param("B", "log", 6.5, 1.0, role="level", doc="data-term coefficient"),
        Param("alpha", "linear", 0.35, 0.05, low=0.0, high=2.0, doc="parameter exponent"),
        Param("beta", "linear", 0.3, 0.04, low=0.0, high=2.0, doc="data exponent"),
    ),
    required_columns=("n_active", "tokens"),
    covariates=_covariates,
    log_loss=_log_loss,
    reductions=REDUCTIONS,
)
