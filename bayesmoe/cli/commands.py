"""The commands that work on runs tables and fits, by name, in the order ``bayesmoe --help`` lists them.

``bayesmoe demo`` is added by :mod:`.main`: it runs these commands itself.
"""
from __future__ import annotations

from types import ModuleType

from . import compare, datasets, design, fit, laws, optimum, predict, report, summary, validate

COMMANDS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (laws, datasets, fit, summary, validate, predict, optimum, compare, design, report)
}
