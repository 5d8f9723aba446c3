"""Law registry: every module in this package that defines ``LAW`` is a law (see ``base``)."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from ..errors import BayesMoeError
from .base import CoefficientSet, Law, Param

__all__ = ["Law", "Param", "CoefficientSet", "get_law", "all_laws", "law_names"]


@lru_cache(maxsize=None)
def all_laws() -> dict[str, Law]:
    """All registered laws by id, in module-name order."""
    laws = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        law = getattr(module, "LAW", None)
        if isinstance(law, Law):
            laws[law.name] = law
    return laws


def law_names() -> list[str]:
    return list(all_laws())


def get_law(name: str | Law) -> Law:
    """The law with id ``name`` (a :class:`Law` passes through)."""
    if isinstance(name, Law):
        return name
    laws = all_laws()
    if name not in laws:
        raise BayesMoeError(f"unknown law '{name}'; known laws: {', '.join(laws)}")
    return laws[name]
