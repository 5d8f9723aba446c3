"""What a runs table can identify, and the law a fit should sample because of it.

Two transformations of a law, both decided from the runs before sampling, recorded in the fit's
metadata (``meta["reduction"]``) and rebuilt by :func:`law_from_meta` when a fit is loaded:

1. **Constant covariate** (e.g. D in Clark et al.'s runs, where every run saw ~1.305e11 tokens): the
   terms in that covariate collapse into terms that do not need it. Each rule fixes the parameters that
   become unidentifiable and renames the ones that absorb the constant, e.g. for the joint law with
   D = D0:  ``b Ê^omega D0^(beta + zeta ln Ê) = b_D Ê^omega_D`` with ``b_D = b D0^beta``,
   ``omega_D = omega + zeta ln D0`` (beta = zeta = 0 in the reduced law). A column counts as constant
   when max/min < 1 + :data:`CONSTANT_SPREAD`. A law/column with no rule is refused with an error
   naming the parameters, unless the priors come from a published set (``prior=SET``): then the fit
   proceeds, warns, and records which parameters only the prior identifies.
2. **Shared dense runs** (``routing`` law with ``group``): the dense runs (E = 1) belong to every router,
   as in Clark et al. The fit samples :data:`bayesmoe.laws.routing.ANCHORED` (dense law a1, d1 shared;
   b, c pooled per router, and E_start, E_max too with ``pool=``) and the dense rows join no group
   (their E-terms are exactly 0, so no router parameter touches them).
"""
from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Mapping

import numpy as np
import pandas as pd

from .errors import BayesMoeError
from .laws import Law, get_law
from .laws.routing import ANCHORED

#: A covariate column is constant when its max/min ratio is below 1 + CONSTANT_SPREAD.
CONSTANT_SPREAD = 0.05


class IdentifiabilityWarning(UserWarning):
    """The runs cannot identify every parameter of the law; the fit changed the law (or relies on the prior)."""


#: (law, column) -> rule. ``fix``: parameters set to a natural value (the term in the constant column
#: disappears); ``rename``: old -> (new name, doc, (latent loc, latent sd) as a function of the constant).
def _joint_tokens(d0):
    ln = np.log(d0)
    return {
        "fix": {"beta": 0.0, "zeta": 0.0},
        "rename": {
            "b": ("b_D", f"b D0^beta: data-term coefficient at the fixed D0 = {d0:.4g}", (3.5 - 0.2 * ln, 3.0)),
            "omega": ("omega_D", f"omega + zeta ln D0: Ehat exponent of the data term at D0 = {d0:.4g}",
                      (0.0, float(np.hypot(0.5, 0.05 * ln)))),
        },
    }


def _joint_n_experts(e0):
    return {"fix": {"delta": 0.0, "gamma": 0.0, "omega": 0.0, "zeta": 0.0}, "rename": {}}


def _chinchilla_tokens(d0):
    return {"fix": {"B": 0.0, "beta": 0.0},
            "rename": {"E": ("E_D", f"E + B / D0^beta: loss floor at the fixed D0 = {d0:.4g} (nats)", None)}}


def _chinchilla_n_active(n0):
    return {"fix": {"A": 0.0, "alpha": 0.0},
            "rename": {"E": ("E_N", f"E + A / N0^alpha: loss floor at the fixed N0 = {n0:.4g} (nats)", None)}}


def _granularity_tokens(d0):
    return {"fix": {"b": 0.0, "beta": 0.0},
            "rename": {"c": ("c_D", f"c + b / D0^beta: loss floor at the fixed D0 = {d0:.4g} (nats)", None)}}


def _routing_n_experts(e0):
    return {"fix": {"b": 0.0, "c": 0.0, "E_start": 2.0, "E_max": 300.0},
            "rename": {"a": ("a_E", f"log10 N exponent at the fixed E = {e0:g}", None),
                       "d": ("d_E", f"intercept at the fixed E = {e0:g}", None)}}


def _routing_n_active(n0):
    return {"fix": {"a": 0.0, "c": 0.0},
            "rename": {"b": ("b_N", f"b + c log10 N0: log10 Ehat coefficient at the fixed N0 = {n0:.4g}", None),
                       "d": ("d_N", f"d + a log10 N0: intercept at the fixed N0 = {n0:.4g}", (1.1 - 0.08 * np.log10(n0), 0.5))}}


RULES = {
    ("joint", "tokens"): _joint_tokens,
    ("joint", "n_experts"): _joint_n_experts,
    ("chinchilla", "tokens"): _chinchilla_tokens,
    ("chinchilla", "n_active"): _chinchilla_n_active,
    ("granularity", "tokens"): _granularity_tokens,
    ("routing", "n_experts"): _routing_n_experts,
    ("routing", "n_active"): _routing_n_active,
}

#: Covariate columns each law's terms need (beyond these, ``required_columns``).
LAW_COLUMNS = {"joint": ("n_active", "tokens", "n_experts"), "routing": ("n_active", "n_experts")}


def _law_columns(law: Law) -> tuple[str, ...]:
    return LAW_COLUMNS.get(law.name, law.required_columns)


def constant_columns(law: Law, frame: pd.DataFrame) -> dict[str, float]:
    """Covariate columns of ``law`` that do not vary in ``frame``: name -> geometric mean value."""
    out = {}
    for name in _law_columns(law):
        if name not in frame.columns:
            continue
        values = frame[name].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        if values.min() > 0:
            if values.max() / values.min() < 1 + CONSTANT_SPREAD:
                out[name] = float(np.exp(np.mean(np.log(values))))
        elif values.max() == values.min():  # e.g. shared_ratio all 0: constant only if exactly equal
            out[name] = float(values[0])
    return out


def reduce_law(law: Law, column: str, value: float) -> Law:
    """``law`` with the terms in constant ``column`` (= ``value``) absorbed (see module doc)."""
    rule = RULES[(law.name, column)](value)
    params = []
    for p in law.params:
        if p.name in rule["fix"]:
            continue
        if p.name in rule["rename"]:
            new, doc, prior = rule["rename"][p.name]
            loc, sd = prior if prior is not None else (p.loc, p.sd)
            p = replace(p, name=new, doc=doc, loc=float(loc), sd=float(sd))
        params.append(p)
    back = {new: old for old, (new, _, _) in rule["rename"].items()}
    fixed = dict(rule["fix"])
    base = law

    def log_loss(theta, x):
        full = {back.get(k, k): v for k, v in theta.items()}
        return base.log_loss({**full, **fixed}, x)

    note = (f"{column} is constant ({value:.4g}) in the runs: fixed {', '.join(f'{k} = {v:g}' for k, v in fixed.items())}"
            + (f"; {', '.join(f'{old} -> {new}' for old, (new, _, _) in rule['rename'].items())}" if rule["rename"] else ""))
    return Law(
        name=law.name, title=f"{law.title} [{column} = {value:.4g}]", citation=law.citation, formula=law.formula,
        n_counts=law.n_counts, params=tuple(params), required_columns=law.required_columns,
        covariates=law.covariates, log_loss=log_loss, constants={**law.constants, **fixed},
        notes=f"{note}. {law.notes}".strip(),
    )


def prepare(law: Law, frame: pd.DataFrame, *, group: str | None = None, prior=None) -> tuple[Law, np.ndarray, dict | None]:
    """The law to sample for these runs, the rows shared by every group, and the record for the metadata.

    Args:
        law: the requested law; frame: the validated runs the fit will see; group: the pooling column;
        prior: the ``prior`` argument of :func:`bayesmoe.fit` (a set name makes unidentified terms allowed).

    Returns:
        (law, shared, reduction): ``shared`` is a boolean mask (n,) of rows that belong to no group;
        ``reduction`` is None when nothing changed, else a JSON-ready dict for :func:`law_from_meta`.

    Raises:
        BayesMoeError: a constant covariate the law has no rule for, without an informative prior.
    """
    shared = np.zeros(len(frame), dtype=bool)
    record: dict = {"constant": {}, "prior_only": [], "shared_dense": False}
    for column, value in constant_columns(law, frame).items():
        if (law.name, column) in RULES:
            law = reduce_law(law, column, value)
            record["constant"][column] = value
            warnings.warn(f"law '{law.name}': {law.notes.split('. ')[0]}; the fit samples the reduced law "
                          f"(parameters {', '.join(law.param_names)})", IdentifiabilityWarning, stacklevel=3)
        elif isinstance(prior, str):
            record["prior_only"].append(column)
            warnings.warn(f"law '{law.name}': column '{column}' is constant ({value:.4g}); the parameters of its terms "
                          f"are identified only by the prior '{prior}'", IdentifiabilityWarning, stacklevel=3)
        else:
            raise BayesMoeError(
                f"law '{law.name}': column '{column}' is constant ({value:.4g}) in the runs, so the parameters of its terms "
                f"({', '.join(law.param_names)}) cannot all be identified; vary '{column}', or pass --prior SET to rely on an informative prior")
    if law.name == "routing" and group and "n_experts" in frame.columns and not record["constant"]:
        shared = frame["n_experts"].fillna(1).to_numpy(float) == 1
        law = ANCHORED
        record["shared_dense"] = True
    if not (record["constant"] or record["prior_only"] or record["shared_dense"]):
        return law, shared, None
    return law, shared, record


def law_from_meta(meta: Mapping) -> Law:
    """The law a saved fit sampled: ``meta["law"]`` with ``meta["reduction"]`` applied again."""
    law = get_law(meta["law"])
    record = meta.get("reduction")
    if not record:
        return law
    for column, value in record.get("constant", {}).items():
        law = reduce_law(law, column, float(value))
    if record.get("shared_dense"):
        law = ANCHORED
    return law
