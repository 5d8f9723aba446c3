"""Layer 2, the scaling laws: each module defines one :class:`Law`; :data:`LAWS` lists them all.

Imports only :mod:`bayesmoe.errors` (and reads the published coefficient sets shipped as data). Law
ids, formulas, parameter names and priors are described in ``docs/laws.md``. Adding a law to the package is
adding a module that defines ``LAW = Law(...)`` and naming it in :data:`LAWS`; a user's own law is made
known for the session by :func:`register_law` (``bayesmoe.fit`` registers a :class:`Law` object it is
given; a saved fit of a user law loads once the law is registered again).
"""
from __future__ import annotations

from ..errors import BayesMoeError
from . import chinchilla, five_factor, granularity, holistic, joint, routing, routing_floor
from .base import CoefficientSet, Law, Param

__all__ = ["LAWS", "Law", "Param", "CoefficientSet", "get_law", "all_laws", "law_names", "register_law"]

#: Every law, in the order ``bayesmoe laws`` lists them.
LAWS: tuple[Law, ...] = (chinchilla.LAW, five_factor.LAW, granularity.LAW, holistic.LAW, joint.LAW, routing.LAW,
                         routing_floor.LAW)


#: Laws registered in this session by :func:`register_law`, by id.
_REGISTERED: dict[str, Law] = {}


def register_law(law: Law) -> Law:
    """Make a user-defined ``law`` known by its id for this session (``fit``, ``load_fit``, ``laws``).

    Registering a law under the id of one registered earlier replaces it (a re-run notebook cell);
    returns ``law``.

    Raises:
        BayesMoeError: ``law`` is not a :class:`Law`, or its id is one of the package's laws.
    """
    if not isinstance(law, Law):
        raise BayesMoeError(f"register_law needs a bayesmoe.laws.Law, got {type(law).__name__}")
    if any(known.name == law.name and known is not law for known in LAWS):
        raise BayesMoeError(f"law id '{law.name}' is taken by a bayesmoe law; give your law its own name")
    if not any(known is law for known in LAWS):
        _REGISTERED[law.name] = law
    return law


def all_laws() -> dict[str, Law]:
    """All laws by id: the package's, in the order of :data:`LAWS`, then those registered by :func:`register_law`."""
    return {**{law.name: law for law in LAWS}, **_REGISTERED}


def law_names() -> list[str]:
    """The law ids, in the order of :func:`all_laws`."""
    return list(all_laws())


def get_law(name: str | Law) -> Law:
    """The law with id ``name`` (a :class:`Law` passes through)."""
    if isinstance(name, Law):
        return name
    laws = all_laws()
    if name not in laws:
        raise BayesMoeError(f"unknown law '{name}'; known laws: {', '.join(laws)} (a law of your own: "
                            "bayesmoe.register_law(LAW) first)")
    return laws[name]
