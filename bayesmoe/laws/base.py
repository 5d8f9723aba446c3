"""What a scaling law is to bayesmoe: parameters with priors, a mean function in log space, covariates.

A :class:`Law` is a small immutable description. Adding a law is adding one module to
``bayesmoe/laws/`` that defines ``LAW = Law(...)`` and naming it in ``bayesmoe.laws.LAWS`` (and, optionally,
adding a JSON file of published coefficient sets in ``datasets/coefficients/<law>.json``).

Conventions
-----------
- Parameters keep the paper's symbols (docs/laws.md) and the paper's sign convention.
- Each parameter is sampled on a *latent* scale: ``log`` for positive coefficients (the latent is
  ``log_<name>``) or ``linear`` for exponents (the latent is the parameter itself). Its default prior
  is a Normal on that latent scale, truncated to ``[low, high]`` where bounds are given.
- ``log_loss(theta, x)`` maps natural parameters (arrays that broadcast, e.g. shape ``(S, 1)`` for S
  posterior draws) and covariates (arrays of shape ``(n,)``) to log loss, in log-sum-exp form.
- ``covariates(frame)`` turns a validated runs table into float64 arrays (logs of counts, masks).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable, Literal, Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import BayesMoeError

Array = jnp.ndarray
#: Parameter values by name: natural-scale arrays that broadcast against the covariates.
Theta = Mapping[str, Array]


@dataclass(frozen=True)
class Param:
    """One law parameter and its default prior.

    Attributes:
        name: the paper's symbol in ASCII (docs/laws.md), e.g. ``"alpha"``.
        scale: ``"log"`` (positive, sampled as ``log_<name>``) or ``"linear"`` (sampled as is).
        loc, sd: Normal prior on the latent scale.
        low, high: optional truncation of the latent prior.
        role: ``"level"`` terms (coefficients, irreducible loss) are pooled across groups by default;
            ``"exponent"`` terms are shared unless pooling is requested.
        sample_scale: ``"latent"`` (the sampler works on the latent scale), or ``"natural"`` for a
            log-scale level that enters the loss additively, such as the irreducible loss: when the
            data determine its log well, the sampler works on the value itself, softly kept positive
            (:mod:`bayesmoe.inference.coordinates`; the prior is unchanged). Where such a term shrinks, the data
            stop depending on it, so its log has a long tail while the value is close to Gaussian.
        doc: what the parameter means.
    """

    name: str
    scale: Literal["log", "linear"]
    loc: float
    sd: float
    low: float | None = None
    high: float | None = None
    role: Literal["level", "exponent"] = "exponent"
    sample_scale: Literal["latent", "natural"] = "latent"
    doc: str = ""

    @property
    def latent(self) -> str:
        """Name of the sampled site."""
        return f"log_{self.name}" if self.scale == "log" else self.name

    def to_natural(self, latent: Array) -> Array:
        return jnp.exp(latent) if self.scale == "log" else latent

    def to_latent(self, value: float) -> float:
        if self.scale == "log":
            if value <= 0:
                raise BayesMoeError(
                    f"parameter '{self.name}' must be > 0 (it is sampled on the log scale), got {value:g}"
                )
            return float(np.log(value))
        return float(value)

    def prior_text(self, loc: float | None = None, sd: float | None = None) -> str:
        loc = self.loc if loc is None else loc
        sd = self.sd if sd is None else sd
        bounds = ""
        if self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            bounds = f" truncated to [{lo}, {hi}]"
        return f"{self.latent} ~ Normal({loc:.4g}, {sd:.4g}){bounds}"


@dataclass(frozen=True)
class CoefficientSet:
    """A published point estimate of a law's parameters (``<law>:<source>``)."""

    name: str
    law: str
    values: Mapping[str, float]
    source: str
    notes: str = ""


@dataclass(frozen=True)
class Law:
    """A scaling law: formula, parameters, priors, covariates and mean function (see module doc)."""

    name: str
    title: str
    citation: str
    formula: str
    n_counts: str
    params: tuple[Param, ...]
    required_columns: tuple[str, ...]
    covariates: Callable[[pd.DataFrame], dict[str, np.ndarray]]
    log_loss: Callable[[Mapping[str, Array], Mapping[str, Array]], Array]
    constants: Mapping[str, float] = field(default_factory=dict)
    notes: str = ""
    #: rules for runs in which one covariate column is constant, applied by
    #: :func:`bayesmoe.model.identifiability.reduce_law`: column -> ``rule(value)`` returning
    #: ``{"fix": {param: natural value}, "rename": {param: (new name, doc, (latent loc, sd) or None)}}``, and
    #: optionally ``"replace": {param: Param}`` with ``"log_loss"`` (the reduced law's own mean function) and
    #: ``"formula"``.
    reductions: Mapping[str, Callable[[float], dict]] = field(default_factory=dict)
    #: covariate columns the law's terms read, checked for being constant (empty: ``required_columns``).
    term_columns: tuple[str, ...] = ()
    #: the form a grouped fit samples, in which dense runs (E = 1) belong to every group (routing law).
    dense_anchored: Law | None = None

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise BayesMoeError(
            f"law '{self.name}' has no parameter '{name}'; its parameters are {', '.join(self.param_names)}"
        )

    def coefficient_sets(self) -> dict[str, CoefficientSet]:
        """Published coefficient sets shipped in ``datasets/coefficients/<law>.json``."""
        return load_coefficient_sets(self.name)

    def coefficient_set(self, name: str) -> CoefficientSet:
        """Look up ``'<law>:<source>'`` (or just ``'<source>'``)."""
        sets = self.coefficient_sets()
        key = name if ":" in name else f"{self.name}:{name}"
        if key not in sets:
            known = ", ".join(sorted(sets)) or "none"
            raise BayesMoeError(f"unknown coefficient set '{name}' for law '{self.name}'; known sets: {known}")
        return sets[key]

    def mean_log_loss(self, theta: Mapping[str, Array], x: Mapping[str, Array]) -> Array:
        """Mean log loss with the law's constants filled in (``theta`` entries override constants)."""
        return self.log_loss({**self.constants, **theta}, x)

    def describe(self) -> dict:
        """JSON-ready description for ``bayesmoe laws --json``."""
        return {
            "title": self.title,
            "citation": self.citation,
            "formula": self.formula,
            "n_counts": self.n_counts,
            "parameters": list(self.param_names),
            "priors": {p.name: p.prior_text() for p in self.params},
            "constants": dict(self.constants),
            "required_columns": list(self.required_columns),
            "coefficient_sets": {
                k: {"values": dict(v.values), "source": v.source} for k, v in self.coefficient_sets().items()
            },
            "notes": self.notes,
        }


def load_coefficient_sets(law: str) -> dict[str, CoefficientSet]:
    """Read ``datasets/coefficients/<law>.json`` (shipped as ``bayesmoe.shipped``); {} if absent."""
    try:
        text = resources.files("bayesmoe.shipped").joinpath("coefficients", f"{law}.json").read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return {}
    raw = json.loads(text)
    return {
        f"{law}:{source}": CoefficientSet(
            f"{law}:{source}", law, entry["values"], entry["source"], entry.get("notes", "")
        )
        for source, entry in raw.items()
    }


def column(frame: pd.DataFrame, name: str, law: str, *, rows: np.ndarray | None = None) -> np.ndarray:
    """A required numeric column as float64; a clear error when it is missing or empty."""
    if name not in frame.columns:
        raise BayesMoeError(f"runs table: missing column '{name}' (needed by law '{law}')")
    values = frame[name].to_numpy(dtype=float)
    check = np.isnan(values) if rows is None else (np.isnan(values) & rows)
    if check.any():
        idx = np.flatnonzero(check)[:5]
        raise BayesMoeError(
            f"runs table: column '{name}' (needed by law '{law}') is empty in rows {', '.join(map(str, idx))}"
        )
    return values


def logsumexp(*terms: Array) -> Array:
    """Elementwise log(sum(exp(terms))) of broadcastable arrays, stable for -inf entries."""
    stacked = jnp.stack(jnp.broadcast_arrays(*terms))
    top = jnp.max(stacked, axis=0)
    safe = jnp.where(jnp.isfinite(top), top, 0.0)
    return safe + jnp.log(jnp.sum(jnp.exp(stacked - safe), axis=0))
