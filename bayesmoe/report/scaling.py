"""The scaling picture of a posterior, law-agnostic: isoFLOP curves, the loss-vs-compute frontier and
the near-optimal band of model sizes.

A law's loss depends on more than (N, D) (experts, granularity, embeddings), so curves are drawn
per *architecture family* read off the observed runs (:func:`architectures`): a combination of the
architecture columns, with the ``n_total / n_active``, FLOPs per token per active parameter (6
unless ``flops_per_token`` says otherwise) and embedding / ``d_model`` scaling (as
``n_active^(1/3)``, constant aspect ratio) of those runs. At budget C and
active size Na, such a run trains on ``D = C / (flops_ratio * Na)`` tokens.

Shapes: S posterior draws, B budgets, K model sizes on the grid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..laws import Law, get_law

#: Columns that define an architecture family (others scale with size or are bookkeeping).
ARCHITECTURE_COLUMNS = ("n_experts", "top_k", "granularity", "shared_ratio")


@dataclass(frozen=True)
class Architecture:
    """A family of runs that differ only in size: how N, D, embeddings and d follow from (C, Na).

    Attributes:
        fixed: architecture columns held fixed (e.g. ``{"n_experts": 64, "granularity": 4}``).
        total_ratio: ``n_total / n_active``.
        flops_ratio: training FLOPs per token per active parameter (C = flops_ratio * Na * D).
        embedding_coef, d_model_coef: ``n_embedding`` and ``d_model`` as ``coef * n_active^(1/3)``
            (None when the runs do not have the column).
        n_runs: observed runs of this family.
    """

    fixed: Mapping[str, float] = field(default_factory=dict)
    total_ratio: float = 1.0
    flops_ratio: float = 6.0
    embedding_coef: float | None = None
    d_model_coef: float | None = None
    n_runs: int = 0

    def label(self) -> str:
        """Short text such as ``'n_experts 64, granularity 4 (N/Na = 43)'`` ('dense' when nothing is fixed)."""
        parts = [f"{k} {v:g}" for k, v in self.fixed.items()]
        text = ", ".join(parts) if parts else "dense"
        if self.total_ratio != 1.0:
            text += f" (N/Na = {self.total_ratio:.3g})"
        return text

    def runs(self, compute: np.ndarray, n_active: np.ndarray) -> pd.DataFrame:
        """A runs table (no loss) for every pair (compute[i], n_active[i]); both shape (n,)."""
        compute, n_active = np.asarray(compute, float), np.asarray(n_active, float)
        frame = pd.DataFrame({
            "n_active": n_active,
            "n_total": n_active * self.total_ratio,
            "tokens": compute / (self.flops_ratio * n_active),
            "compute": compute,
        })
        for name, value in self.fixed.items():
            frame[name] = value
        if self.embedding_coef is not None:
            frame["n_embedding"] = self.embedding_coef * n_active ** (1 / 3)
        if self.d_model_coef is not None:
            frame["d_model"] = np.round(self.d_model_coef * n_active ** (1 / 3))
        return frame


def architectures(runs: pd.DataFrame, max_families: int = 4) -> list[Architecture]:
    """The architecture families among ``runs`` (a validated runs table), most runs first (at most
    ``max_families``), each with its size scalings."""
    columns = [c for c in ARCHITECTURE_COLUMNS if c in runs.columns and runs[c].notna().all()]
    if not columns:
        return [_family(runs, {})]
    counts = runs.groupby(columns).size().sort_values(ascending=False, kind="stable")
    out = []
    for key in counts.index[:max_families]:
        fixed = {c: float(v) for c, v in zip(columns, key if len(columns) > 1 else (key,))}
        mask = np.logical_and.reduce([runs[c].to_numpy(float) == v for c, v in fixed.items()])
        out.append(_family(runs[mask], fixed))
    return out


def members(runs: pd.DataFrame, arch: Architecture) -> pd.DataFrame:
    """The runs of ``runs`` that belong to family ``arch``."""
    mask = np.ones(len(runs), dtype=bool)
    for name, value in arch.fixed.items():
        mask &= runs[name].to_numpy(float) == value
    return runs[mask]


def _family(family: pd.DataFrame, fixed: dict[str, float]) -> Architecture:
    n_active = family["n_active"].to_numpy(float)
    cube_root = n_active ** (1 / 3)

    def coef(name: str) -> float | None:
        if name not in family.columns or family[name].isna().any():
            return None
        return float(np.median(family[name].to_numpy(float) / cube_root))

    return Architecture(
        fixed=fixed,
        total_ratio=float(np.median(family["n_total"].to_numpy(float) / n_active)),
        flops_ratio=float(np.median(family["compute"].to_numpy(float) / (n_active * family["tokens"].to_numpy(float)))),
        embedding_coef=coef("n_embedding"),
        d_model_coef=coef("d_model"),
        n_runs=len(family),
    )


def best_architecture(
    law: Law, theta: Mapping[str, np.ndarray], families: list[Architecture], compute: float
) -> Architecture:
    """The family with the lowest posterior-median compute-optimal loss at budget ``compute``."""
    scores = [np.median(frontier(law, theta, arch, np.array([compute])).loss) for arch in families]
    return families[int(np.argmin(scores))]


#: Rows of covariates per compiled evaluation (grids are padded to a multiple of it, so one
#: compilation per law and draw count serves every grid of a report).
_BLOCK = 4096


@lru_cache(maxsize=None)
def _compiled(law_name: str):
    law = get_law(law_name)
    return jax.jit(lambda theta, x: law.mean_log_loss(theta, x))


def loss_grid(
    law: Law, theta: Mapping[str, np.ndarray], arch: Architecture, compute: np.ndarray, n_active: np.ndarray
) -> np.ndarray:
    """Mean loss (nats) of every draw at every (budget, size): shape (S, B, K).

    Args:
        theta: natural-scale draws, each shape (S,) (``Fit.draws()`` or ``PointPosterior.draws()``).
        compute: budgets (B,) in FLOPs; n_active: active sizes (K,).
    """
    compute, n_active = np.asarray(compute, float), np.asarray(n_active, float)
    cc, nn = np.meshgrid(compute, n_active, indexing="ij")
    x = law.covariates(arch.runs(cc.ravel(), nn.ravel()))
    n = cc.size
    padded = -(-n // _BLOCK) * _BLOCK
    t = {k: jnp.asarray(np.asarray(v, float))[:, None] for k, v in theta.items() if k != "sigma"}
    out = []
    for start in range(0, padded, _BLOCK):
        block = {k: jnp.asarray(np.resize(np.asarray(v, float)[start:start + _BLOCK], _BLOCK)) for k, v in x.items()}
        out.append(np.asarray(_compiled(law.name)(t, block)))
    log_loss = np.concatenate(out, axis=1)[:, :n]
    return np.exp(log_loss).reshape(-1, len(compute), len(n_active))


@dataclass(frozen=True)
class Frontier:
    """Per draw and budget: the lowest loss over the size grid, the size reaching it and the sizes
    whose loss is within ``tolerance`` (relative) of it. Arrays have shape (S, B)."""

    compute: np.ndarray
    loss: np.ndarray
    n_active: np.ndarray
    near_lo: np.ndarray
    near_hi: np.ndarray
    tolerance: float


def frontier(law: Law, theta: Mapping[str, np.ndarray], arch: Architecture, compute: np.ndarray, *,
             n_grid: np.ndarray | None = None, tolerance: float = 0.005) -> Frontier:
    """Loss-vs-compute frontier and near-optimal band of active sizes, per draw.

    Args:
        compute: budgets (B,) in FLOPs.
        n_grid: active sizes to search (K,); default 160 log-spaced sizes covering tokens per active
            parameter D/Na from 1e-2 to 1e4 at every budget (sizes outside that range are not searched).
        tolerance: relative excess loss that still counts as near-optimal (0.005 = 0.5%).
    """
    compute = np.asarray(compute, float)
    if n_grid is None:
        # D/Na = C / (r Na^2) from 1e4 down to 1e-2 at the extreme budgets
        lo = np.sqrt(compute.min() / (arch.flops_ratio * 1e4))
        hi = np.sqrt(compute.max() / (arch.flops_ratio * 1e-2))
        n_grid = np.geomspace(lo, hi, 160)
    grid = loss_grid(law, theta, arch, compute, n_grid)  # (S, B, K)
    tokens_per_param = compute[:, None] / (arch.flops_ratio * n_grid[None, :] ** 2)  # (B, K)
    valid = (tokens_per_param >= 1e-2) & (tokens_per_param <= 1e4)
    grid = np.where(valid[None], grid, np.inf)
    best = grid.min(axis=2)
    arg = grid.argmin(axis=2)
    near = grid <= best[..., None] * (1 + tolerance)
    sizes = np.broadcast_to(n_grid, grid.shape)
    near_lo = np.where(near, sizes, np.inf).min(axis=2)
    near_hi = np.where(near, sizes, -np.inf).max(axis=2)
    return Frontier(compute, best, n_grid[arg], near_lo, near_hi, tolerance)


def budget_levels(runs: pd.DataFrame, max_levels: int = 5) -> np.ndarray:
    """Budgets for isoFLOP curves: the observed compute levels when the runs form an isoFLOP design
    (few distinct budgets, to 2%), else ``max_levels`` log-spaced budgets over the observed range."""
    compute = np.sort(runs["compute"].to_numpy(float))
    levels: list[list[float]] = []
    for c in compute:
        if levels and c <= levels[-1][0] * 1.02:
            levels[-1].append(c)
        else:
            levels.append([c])
    repeated = [np.median(v) for v in levels if len(v) >= 3]
    if 2 <= len(repeated) <= 8:
        if len(repeated) > max_levels:
            idx = np.unique(np.round(np.linspace(0, len(repeated) - 1, max_levels)).astype(int))
            repeated = [repeated[i] for i in idx]
        return np.asarray(repeated)
    return np.geomspace(compute[0], compute[-1], max_levels)
