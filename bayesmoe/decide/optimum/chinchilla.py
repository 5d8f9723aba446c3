"""Compute-optimal N and D for the Chinchilla law (Hoffmann et al. 2022, Eq. 4), closed form.

With C = 6 N D: ``N_opt = G (C/6)^a``, ``D_opt = (C/6)^b / G``, ``G = (alpha A / (beta B))^(1/(alpha+beta))``,
``a = beta/(alpha+beta)``, ``b = alpha/(alpha+beta)``. Shapes: theta entries (S,), compute (B,) -> (S, B).
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from ...errors import BayesMoeError
from ...laws.base import Array, Theta


def chinchilla_optimum(
    theta: Theta, compute: np.ndarray, *, objective: str = "compute", **options: Any
) -> dict[str, Array]:
    if objective != "compute":
        raise BayesMoeError(f"law 'chinchilla' supports only --objective compute, got '{objective}'")
    A, B, E = (jnp.asarray(theta[k])[:, None] for k in ("A", "B", "E"))
    alpha, beta = (jnp.asarray(theta[k])[:, None] for k in ("alpha", "beta"))
    half = jnp.asarray(compute)[None, :] / 6.0
    scale = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    n = scale * half ** (beta / (alpha + beta))
    d = half / n
    loss = E + A / n**alpha + B / d**beta
    return {
        "n_active": n,
        "n_total": n,
        "tokens": d,
        "loss": loss,
        "tokens_per_param": d / n,
        "ratio_total_active": jnp.ones_like(n),
    }
