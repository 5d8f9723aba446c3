"""What a runs table can identify, and the law a fit should sample because of it.

Two transformations of a law, both decided from the runs before sampling, recorded in the fit's
metadata (``meta["reduction"]``) and rebuilt by :func:`law_from_meta` when a fit is loaded:

1. **Constant covariate** (e.g. D in Clark et al.'s runs, where every run saw ~1.305e11 tokens): the
   terms in that covariate collapse into terms that do not need it. Each law declares its rules
   (``Law.reductions``, column -> rule); a rule fixes the parameters that
   become unidentifiable and renames the ones that absorb the constant, e.g. for the Chinchilla law with
   D = D0: ``E + B / D0^beta = E_D`` (B = beta = 0 in the reduced law). Where renaming would leave a ridge,
   a rule *replaces* parameters and gives the reduced law its own mean (``"replace"``, ``"log_loss"``): the
   joint law at D = D0 writes its floor ``b D0^beta Ê^omega_D + c`` by its two ends
   (:func:`bayesmoe.laws.joint.fixed_tokens_log_loss`). A column counts as constant when max/min
   < 1 + :data:`CONSTANT_SPREAD`. A law/column with no rule is refused with an error
   naming the parameters, unless the priors come from a published set (``prior=SET``): then the fit
   proceeds, warns, and records which parameters only the prior identifies.
2. **Shared dense runs** (``routing`` law with ``group``): the dense runs (E = 1) belong to every router,
   as in Clark et al. The fit samples the law's ``dense_anchored`` form (:data:`bayesmoe.laws.routing.ANCHORED`:
   dense law a1, d1 shared; b, c pooled per router, and E_start, E_max too with ``pool=``) and the dense rows
   join no group (their E-terms are exactly 0, so no router parameter touches them).
"""
from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import BayesMoeError
from ..laws import Law, get_law

#: A covariate column is constant when its max/min ratio is below 1 + CONSTANT_SPREAD.
CONSTANT_SPREAD = 0.05


class IdentifiabilityWarning(UserWarning):
    """The runs cannot identify every parameter of the law; the fit changed the law (or relies on the prior)."""


def _law_columns(law: Law) -> tuple[str, ...]:
    return law.term_columns or law.required_columns


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
    rule = law.reductions[column](value)
    params = []
    for p in law.params:
        if p.name in rule["fix"]:
            continue
        if p.name in rule.get("replace", {}):
            p = rule["replace"][p.name]
        elif p.name in rule["rename"]:
            new, doc, prior = rule["rename"][p.name]
            loc, sd = prior if prior is not None else (p.loc, p.sd)
            p = replace(p, name=new, doc=doc, loc=float(loc), sd=float(sd))
        params.append(p)
    back = {new: old for old, (new, _, _) in rule["rename"].items()}
    # only what this law samples: a rule may name terms that an earlier reduction already fixed or replaced
    fixed = {name: value for name, value in rule["fix"].items() if name in law.param_names}
    base, own_mean = law, rule.get("log_loss")

    def log_loss(theta, x):
        if own_mean is not None:
            return own_mean({**theta, **fixed}, x)
        full = {back.get(k, k): v for k, v in theta.items()}
        return base.log_loss({**full, **fixed}, x)

    note = (
        f"{column} is constant ({value:.4g}) in the runs: fixed {', '.join(f'{k} = {v:g}' for k, v in fixed.items())}"
        + (f"; {', '.join(f'{old} -> {new}' for old, (new, _, _) in rule['rename'].items())}" if rule["rename"] else "")
        + (f"; {', '.join(f'{old} -> {p.name}' for old, p in rule['replace'].items())}" if rule.get("replace") else "")
    )
    return Law(
        name=law.name, title=f"{law.title} [{column} = {value:.4g}]", citation=law.citation,
        formula=rule.get("formula", law.formula),
        n_counts=law.n_counts, params=tuple(params), required_columns=law.required_columns,
        covariates=law.covariates, log_loss=log_loss, constants={**law.constants, **fixed},
        reductions=law.reductions, term_columns=law.term_columns,
        notes=f"{note}. {law.notes}".strip(),
    )


def prepare(
    law: Law, frame: pd.DataFrame, *, group: str | None = None, prior: str | Mapping | None = None
) -> tuple[Law, np.ndarray, dict | None]:
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
        if column in law.reductions:
            law = reduce_law(law, column, value)
            record["constant"][column] = value
            warnings.warn(f"law '{law.name}': {law.notes.split('. ')[0]}; the fit samples the reduced law "
                          f"(parameters {', '.join(law.param_names)})", IdentifiabilityWarning, stacklevel=4)
        elif isinstance(prior, str):
            record["prior_only"].append(column)
            warnings.warn(f"law '{law.name}': column '{column}' is constant ({value:.4g}); the parameters of its terms "
                          f"are identified only by the prior '{prior}'", IdentifiabilityWarning, stacklevel=4)
        else:
            raise BayesMoeError(
                f"law '{law.name}': column '{column}' is constant ({value:.4g}) in the runs, so the parameters "
                "of its terms "
                f"({', '.join(law.param_names)}) cannot all be identified; vary '{column}', or pass --prior "
                "SET to rely on an informative prior"
            )
    if law.dense_anchored is not None and group and "n_experts" in frame.columns and not record["constant"]:
        shared = frame["n_experts"].fillna(1).to_numpy(float) == 1
        law = law.dense_anchored
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
    if record.get("shared_dense") and law.dense_anchored is not None:
        law = law.dense_anchored
    return law
