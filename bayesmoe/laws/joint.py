"""Joint MoE law, Ludziejewski et al. 2025, "Joint MoE Scaling Laws: Mixture of Experts Can Be
Memory Efficient" (arXiv 2502.05172), Eq. 1/6, with the transformed expert count of Eq. 4.

    L = a Ê^delta N^(alpha + gamma ln Ê) + b Ê^omega D^(beta + zeta ln Ê) + c
    log L = LSE(log a + delta ln Ê + (alpha + gamma ln Ê) ln N,
                log b + omega ln Ê + (beta + zeta ln Ê) ln D,  log c)
    1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^(-1)) + 1/E_max        (Eq. 4, as printed)

N = N_act **including embedding and unembedding** (App. A.1): ``n_active + n_embedding`` (``n_embedding``
is 0 when the runs table lacks it; the fit records that). E = ``n_experts`` (top-1, coarse experts in
the paper). The paper's sign convention: alpha, beta < 0. E_start and E_max are fixed to the paper's
fitted values (Table 3: 2.0732, 290.4521); they are law constants, not sampled.

Default priors (latent scale), weakly informative in outcome space: on a typical design (N_act
1e7-3e9, D 1e9-1e12, E 1-64) 97% of the prior-predictive loss lies in [0.5, 15] nats:
    log a ~ Normal(3.5, 0.7), log b ~ Normal(3.5, 0.7), log c ~ Normal(0.3, 0.5)
    alpha ~ Normal(-0.2, 0.04), beta ~ Normal(-0.18, 0.03), truncated to [-2, 0]
    delta ~ Normal(0, 0.25), omega ~ Normal(0.5, 0.25);  gamma ~ Normal(0, 0.012), zeta ~ Normal(-0.02, 0.012)
The interactions multiply ln Ê ln N (up to about 4 x 22): an sd of 0.05 alone spreads a term over e^4.
omega and zeta are centred near the published fit (0.553, -0.0259), on the ridge it lies on: omega + zeta
ln D, the data term's change with ln Ê at D ~ 3e10, has prior mean about 0. 150 runs hardly identify the
ridge, so a prior centred at (0, 0) pulls a fit of Ludziejewski-like data off it.

**Fixed training length** (every run at one D0, e.g. Clark et al.'s): the data term and c form a floor that
depends on Ê alone, ``F(Ê) = b_D Ê^omega_D + c`` with ``b_D = b D0^beta``, ``omega_D = omega + zeta ln D0``.
Sampled as such, it has two ridges: within a group of one expert count (dense runs) only ``b_D + c`` is
fitted, and wherever the floor hardly changes with Ê (``omega_D`` near 0) ``b_D`` trades against ``c``; on
Clark et al.'s runs NUTS did not cross them (R-hat up to 1.9, every transition at the maximum tree depth).
The reduced law (:func:`fixed_tokens_log_loss`) writes the same floor by its two ends and its curvature:

    F(Ê) = c_D (1 + (r_D - 1) B(u)),  u = ln(Ê / E_start),  u_max = ln(E_max / E_start)
    B(u) = (exp(omega_D u) - 1) / (exp(omega_D u_max) - 1)      (-> u / u_max as omega_D -> 0; 0 <= B <= 1)
    c_D = c + b_D E_start^omega_D   (the floor of a dense run, nats; a level term, pooled by --group)
    r_D = (c + b_D E_max^omega_D) / c_D   (the floor where Ê saturates, relative to a dense run's; shared)

Every c_D > 0, r_D > 0 gives a positive floor, monotone in Ê like the law's. Priors: ``log c_D ~
Normal(log 1.5, 0.5)`` (sampled on the natural scale), ``log r_D ~ Normal(0, 0.15)`` (Ludziejewski et al.'s
Table 3 at D0 = 1.3e11 gives r_D = 0.91), ``omega_D ~ Normal(0, 0.5)`` (Table 3: -0.11). A dense group sees
only c_D; where r_D is near 1 the runs leave omega_D to its prior, which then moves no prediction.
"""
import jax.numpy as jnp
import numpy as np

from ._ehat import e_hat
from .base import Array, Law, Param, column, logsumexp


def _covariates(frame):
    embedding = frame["n_embedding"].fillna(0).to_numpy(float) if "n_embedding" in frame.columns else 0.0
    n_act = column(frame, "n_active", "joint") + embedding
    experts = frame["n_experts"].fillna(1).to_numpy(float) if "n_experts" in frame.columns else np.ones(len(frame))
    return {
        "log_N": np.log(n_act),
        "log_D": np.log(column(frame, "tokens", "joint")),
        "E": experts,
    }


#: |omega_D u_max| below which B(u) uses its first-order expansion (the exact ratio is 0/0 at omega_D = 0).
_SMALL_CURVATURE = 1e-6


def _parameter_term(t, log_e, log_n):
    return jnp.log(t["a"]) + t["delta"] * log_e + (t["alpha"] + t["gamma"] * log_e) * log_n


def _log_loss(t, x):
    log_e = jnp.log(e_hat(x["E"], t["E_start"], t["E_max"]))
    return logsumexp(
        _parameter_term(t, log_e, x["log_N"]),
        jnp.log(t["b"]) + t["omega"] * log_e + (t["beta"] + t["zeta"] * log_e) * x["log_D"],
        jnp.log(t["c"]),
    )


def floor_shape(u: Array, u_max: Array, omega: Array) -> Array:
    """B(u) = (exp(omega u) - 1) / (exp(omega u_max) - 1): 0 at a dense run (u = 0), 1 where Ê saturates.

    Args:
        u: ln(Ê / E_start), shape (n,); u_max: ln(E_max / E_start); omega: curvature, e.g. (S, 1) per draw.
    """
    small = jnp.abs(omega * u_max) < _SMALL_CURVATURE
    safe = jnp.where(small, 1.0, omega)
    exact = jnp.expm1(safe * u) / jnp.expm1(safe * u_max)
    return jnp.where(small, u / u_max * (1.0 + 0.5 * omega * (u - u_max)), exact)


def fixed_tokens_log_loss(t, x):
    """Log loss of the joint law at a fixed training length, its floor written by its ends (module doc).

    Args:
        t: natural parameters a, alpha, delta, gamma, c_D (nats), r_D, omega_D and the constants E_start,
            E_max; arrays that broadcast (e.g. (S, 1) per posterior draw).
        x: covariates ``log_N`` and ``E``, shape (n,).
    """
    log_e = jnp.log(e_hat(x["E"], t["E_start"], t["E_max"]))
    log_start = jnp.log(t["E_start"])
    shape = floor_shape(log_e - log_start, jnp.log(t["E_max"]) - log_start, t["omega_D"])
    log_floor = jnp.log(t["c_D"]) + jnp.log1p((t["r_D"] - 1.0) * shape)
    return logsumexp(_parameter_term(t, log_e, x["log_N"]), log_floor)


def _tokens_constant(d0):
    at = f"at the fixed D0 = {d0:.4g}"
    return {
        "fix": {"beta": 0.0, "zeta": 0.0},
        "rename": {},
        "replace": {
            "c": Param("c_D", "log", float(np.log(1.5)), 0.5, role="level", sample_scale="natural",
                       doc=f"loss floor of a dense run {at}: c + b D0^beta E_start^omega_D (nats)"),
            "b": Param("r_D", "log", 0.0, 0.15,
                       doc=f"floor where Ehat saturates (E_max), relative to a dense run's {at}"),
            "omega": Param("omega_D", "linear", 0.0, 0.5,
                           doc=f"omega + zeta ln D0: curvature of the floor in ln Ehat {at}"),
        },
        "log_loss": fixed_tokens_log_loss,
        "formula": "L = a Ehat^delta N^(alpha + gamma ln Ehat) + c_D (1 + (r_D - 1) B(u)); u = ln(Ehat / E_start), "
                   "B(u) = (exp(omega_D u) - 1) / (exp(omega_D u_max) - 1), u_max = ln(E_max / E_start)",
    }


def _n_experts_constant(e0):
    # the fixed-D floor's r_D and omega_D too: with one expert count the floor is c_D alone
    return {"fix": {"delta": 0.0, "gamma": 0.0, "omega": 0.0, "zeta": 0.0, "r_D": 1.0, "omega_D": 0.0}, "rename": {}}


#: Rules for runs in which one column is constant (``Law.reductions``): the parameters fixed and the ones
#: renamed to absorb the constant (:mod:`bayesmoe.model.identifiability`).
REDUCTIONS = {"tokens": _tokens_constant, "n_experts": _n_experts_constant}

LAW = Law(
    name="joint",
    title="Joint MoE (Ê, N_act, D)",
    citation=(
        "Ludziejewski et al. 2025, Joint MoE Scaling Laws: Mixture of Experts Can Be Memory Efficient, "
        "arXiv 2502.05172"
    ),
    formula="L = a Ehat^delta N^(alpha + gamma ln Ehat) + b Ehat^omega D^(beta + zeta ln Ehat) + c; "
    "1/Ehat = 1/(E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max",
    n_counts="N = n_active + n_embedding (embeddings included, App. A.1), D = tokens, E = n_experts",
    params=(
        Param("a", "log", 3.5, 0.7, role="level", doc="parameter-term coefficient"),
        Param("alpha", "linear", -0.2, 0.04, low=-2.0, high=0.0, doc="parameter exponent (negative)"),
        Param("b", "log", 3.5, 0.7, role="level", doc="data-term coefficient"),
        Param("beta", "linear", -0.18, 0.03, low=-2.0, high=0.0, doc="data exponent (negative)"),
        Param("c", "log", 0.3, 0.5, role="level", sample_scale="natural", doc="irreducible loss (nats)"),
        Param("delta", "linear", 0.0, 0.25, doc="Ehat exponent of the parameter term"),
        Param("gamma", "linear", 0.0, 0.012, doc="Ehat-N interaction"),
        Param("omega", "linear", 0.5, 0.25, doc="Ehat exponent of the data term"),
        Param("zeta", "linear", -0.02, 0.012, doc="Ehat-D interaction"),
    ),
    required_columns=("n_active", "tokens"),
    covariates=_covariates,
    log_loss=_log_loss,
    constants={"E_start": 2.0732, "E_max": 290.4521},
    notes="E_start and E_max are fixed to Ludziejewski et al.'s Table 3 values. n_embedding is added to n_active.",
    reductions=REDUCTIONS,
    term_columns=("n_active", "tokens", "n_experts"),
)
