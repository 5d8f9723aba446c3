"""Layer 2, the scaling laws: each module defines one :class:`Law`; :data:`LAWS` lists them all.

Imports only :mod:`bayesmoe.errors` (and reads the published coefficient sets shipped as data). Law
ids, formulas, parameter names and priors are described in ``docs/laws.md``. Adding a law is adding
a module that defines ``LAW = Law(...)`` and naming it in :data:`LAWS`.
"""
from __future__ import annotations

from ..errors import BayesMoeError
from . import chinchilla, five_factor, granularity, holistic, joint, routing
from .base import CoefficientSet, Law, Param

__all__ = ["LAWS", "Law", "Param", "CoefficientSet", "get_law", "all_laws", "law_names"]

#: Every law, in the order ``bayesmoe laws`` lists them.
LAWS: tuple[Law, ...] = (chinchilla.LAW, five_factor.LAW, granularity.LAW, holistic.LAW, joint.LAW, routing.LAW)


def all_laws() -> dict[str, Law]:
    """All laws by id, in the order of :data:`LAWS`."""
    return {law.name: law for law in LAWS}


def law_names() -> list[str]:
    """The law ids, in the order of :data:`LAWS`."""
    return [law.name for law in LAWS]


def get_law(name: str | Law) -> Law:
    """The law with id ``name`` (a :class:`Law` passes through)."""
    if isinstance(name, Law):
        return name
    laws = all_laws()
    if name not in laws:
        raise BayesMoeError(f"unknown law '{name}'; known laws: {', '.join(laws)}")
    return laws[name]
