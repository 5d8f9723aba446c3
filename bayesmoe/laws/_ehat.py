"""The saturating transform of the expert count, Ê (Clark et al. 2022 Eq. 2; Ludziejewski et al. 2025 Eq. 4).

``1/Ê = 1/(E - 1 + (1/E_start - 1/E_max)^(-1)) + 1/E_max``. Dense (E = 1) gives Ê = E_start, and Ê
saturates at E_max for E -> inf. Works on arrays (any broadcastable shapes).
"""
from __future__ import annotations

from .base import Array


def e_hat(n_experts: Array, e_start: Array, e_max: Array) -> Array:
    """Transformed expert count Ê for raw expert count(s) ``n_experts`` >= 1."""
    offset = 1.0 / (1.0 / e_start - 1.0 / e_max)
    return 1.0 / (1.0 / (n_experts - 1.0 + offset) + 1.0 / e_max)
