"""The routing law's own question: at a given active size N, which expert count, and where routing stops paying.

Clark et al. 2022 fix the training length (about 1.3e11 tokens), so their law (Eq. 1) prices E at a
given N and has nothing to say about trading N against tokens (``--compute`` on it is an error). Per
posterior draw and active size N (``n_active``, non-embedding parameters a token sees):

- ``best_n_experts``: the candidate E (powers of two, 1 to ``max_experts``) with the least loss;
- ``effective_params``: the dense N with the same loss as (N, best E) (Clark et al. Eq. 5);
  ``effective_multiplier`` = effective_params / N;
- ``p_experts_help``: P(best E > 1), the posterior probability that some routed model beats dense at N;
- ``crossover_n_active``: the N beyond which more experts stop helping. In Eq. 1 the loss's slope in
  log10 Ê is ``b + c log10 N``, so routing pays below ``N* = 10^(-b / c)`` when ``c > 0`` and at every
  N when ``c <= 0`` (then N* = inf; ``p_crossover`` = P(c > 0) says how often a crossover exists).
Shapes: theta entries (S,), n_active (M,).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import BayesMoeError
from ..laws.routing import log10_loss
from .recommend import band

MAX_EXPERTS = 512


def experts_by_size(
    theta: dict, n_active: Sequence[float], *, prob: float = 0.9, max_experts: int = MAX_EXPERTS
) -> dict:
    """``n_active`` list and ``crossover_n_active`` of SPEC §3 (module doc) for routing-law draws ``theta``."""
    n = np.asarray(n_active, float)
    if n.ndim != 1 or not n.size or not np.all(np.isfinite(n)) or np.any(n < 1):
        raise BayesMoeError(f"--n-active must be positive parameter counts, got {list(np.ravel(n_active))}")
    candidates = 2.0 ** np.arange(int(np.log2(max_experts)) + 1)
    t = {k: np.asarray(v, float)[:, None, None] for k, v in theta.items()}
    log10_n = np.log10(n)[None, :, None]
    grid = np.asarray(log10_loss(t, log10_n, candidates[None, None, :]))  # (S, M, K)
    best = np.argmin(grid, axis=-1)  # (S, M)
    best_e = candidates[best]
    dense = grid[..., 0]  # E = 1
    best_loss = np.take_along_axis(grid, best[..., None], axis=-1)[..., 0]
    a1 = np.asarray(t["a1"] if "a1" in t else t["a"] + t["c"] * np.log10(t["E_start"]))[..., 0]
    # dense law log10 L = a1 log10 N + d1: the dense N reaching best_loss
    log10_epc = np.log10(n)[None, :] + (best_loss - dense) / a1
    epc = 10.0**log10_epc
    b, c = np.asarray(theta["b"], float), np.asarray(theta["c"], float)
    crossover = np.where(c > 0, 10.0 ** np.clip(-b / np.where(c > 0, c, 1.0), -300, 300), np.inf)
    rows = []
    for m, value in enumerate(n):
        rows.append(
            {
                "n_active": float(value),
                "best_n_experts": band(best_e[:, m], prob),
                "effective_params": band(epc[:, m], prob),
                "effective_multiplier": band(epc[:, m] / value, prob),
                "loss": band(10.0 ** best_loss[:, m], prob),
                "loss_dense": band(10.0 ** dense[:, m], prob),
                "p_experts_help": float(np.mean(best_e[:, m] > 1)),
            }
        )
    return {
        "n_active": rows,
        "crossover_n_active": band(crossover, prob),
        "p_crossover": float(np.mean(c > 0)),
        "candidates_n_experts": [int(e) for e in candidates],
    }
