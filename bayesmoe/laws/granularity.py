"""Fine-grained MoE law, Krajewski et al. 2024, "Scaling Laws for Fine-Grained Mixture of Experts"
(arXiv 2402.07871), Eq. 9 (dense: Eq. 1, the same law without the g term).

    L(N, D, G) = c + (g / G^gamma + a) / N^alpha + b / D^beta
    log L      = LSE(log c,  LSE(log g - gamma log G, log a) - alpha log N,  log b - beta log D)

N = ``n_total``: total non-embedding parameters, all experts included, router excluded (the paper's
"64 x 1B" labels are E x N_act, not N). G = ``granularity`` (dense FFN hidden / expert hidden).
Dense rows (``n_experts`` == 1 or absent) drop the g term, as in the paper's dense law. Positive
exponents in the denominator. The published set is for expansion rate E = 64 (Table 1).

Default priors (latent scale), weakly informative in outcome space: on a typical design (N_total
4e7-1.3e10, D 1e9-1e12, G 1-16) 97% of the prior-predictive loss lies in [0.5, 15] nats:
    log c ~ Normal(0, 0.5)                  irreducible loss, nats
    log a ~ Normal(2.5, 0.8), log b ~ Normal(3, 0.8), log g ~ Normal(0, 0.8)
    alpha ~ Normal(0.12, 0.04), beta ~ Normal(0.14, 0.035), truncated to [0, 2]
    gamma ~ Normal(0.5, 0.3) truncated to [0, 3]
"""
import jax.numpy as jnp
import numpy as np

from ..errors import BayesMoeError
from .base import Law, Param, column, logsumexp


def _covariates(frame):
    n_total = column(frame, "n_total", "granularity")
    moe = np.zeros(len(frame), dtype=bool)
    if "n_experts" in frame.columns:
        moe = frame["n_experts"].fillna(1).to_numpy(float) > 1
    g = frame["granularity"].to_numpy(float) if "granularity" in frame.columns else np.full(len(frame), np.nan)
    missing = moe & np.isnan(g)
    if missing.any():
        rows = ", ".join(map(str, np.flatnonzero(missing)[:5]))
        raise BayesMoeError(
            f"runs table: column 'granularity' (needed by law 'granularity') is empty for MoE rows {rows}"
        )
    return {
        "log_N": np.log(n_total),
        "log_D": np.log(column(frame, "tokens", "granularity")),
        "log_G": np.log(np.where(moe, g, 1.0)),
        "moe": moe.astype(float),
    }


def _log_loss(t, x):
    log_g_term = jnp.where(x["moe"] > 0, jnp.log(t["g"]) - t["gamma"] * x["log_G"], -jnp.inf)
    return logsumexp(
        jnp.log(t["c"]),
        logsumexp(log_g_term, jnp.log(t["a"])) - t["alpha"] * x["log_N"],
        jnp.log(t["b"]) - t["beta"] * x["log_D"],
    )


def _tokens_constant(d0):
    return {"fix": {"b": 0.0, "beta": 0.0},
            "rename": {"c": ("c_D", f"c + b / D0^beta: loss floor at the fixed D0 = {d0:.4g} (nats)", None)}}


#: Rules for runs in which one column is constant (``Law.reductions``): the parameters fixed and the ones
#: renamed to absorb the constant (:mod:`bayesmoe.model.identifiability`).
REDUCTIONS = {"tokens": _tokens_constant}

LAW = Law(
    name="granularity",
    title="Fine-grained MoE (granularity)",
    citation="Krajewski et al. 2024, Scaling Laws for Fine-Grained Mixture of Experts, arXiv 2402.07871",
    formula="L = c + (g / G^gamma + a) / N^alpha + b / D^beta",
    n_counts="N = n_total (all experts, non-embedding, router excluded), D = tokens, G = granularity",
    params=(
        Param("a", "log", 2.5, 0.8, role="level", doc="parameter-term coefficient"),
        Param("alpha", "linear", 0.12, 0.04, low=0.0, high=2.0, doc="parameter exponent"),
        Param("b", "log", 3.0, 0.8, role="level", doc="data-term coefficient"),
        Param("beta", "linear", 0.14, 0.035, low=0.0, high=2.0, doc="data exponent"),
        Param("g", "log", 0.0, 0.8, role="level", doc="granularity-term coefficient"),
        Param("gamma", "linear", 0.5, 0.3, low=0.0, high=3.0, doc="granularity exponent"),
        Param("c", "log", 0.0, 0.5, role="level", sample_scale="natural", doc="irreducible loss (nats)"),
    ),
    required_columns=("n_total", "tokens"),
    covariates=_covariates,
    log_loss=_log_loss,
    notes="Dense rows (n_experts 1 or absent) use the dense law (no g term). Published set is for expansion rate 64.",
    reductions=REDUCTIONS,
)
