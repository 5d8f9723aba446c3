"""A published coefficient set seen as a posterior with one draw, so optima and predictions treat both alike."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ...laws import Law, get_law


@dataclass(frozen=True)
class PointPosterior:
    """A published coefficient set seen as a posterior with one draw (so q05 = q50 = q95)."""

    law: Law
    values: Mapping[str, float]
    name: str = ""

    @classmethod
    def from_set(cls, law: str | Law, set_name: str) -> "PointPosterior":
        law = get_law(law)
        return cls(law, dict(law.coefficient_set(set_name).values), law.coefficient_set(set_name).name)

    def draws(self, group: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
        out = {k: np.array([float(v)]) for k, v in self.law.constants.items()}
        out.update({k: np.array([float(v)]) for k, v in self.values.items()})
        return out
