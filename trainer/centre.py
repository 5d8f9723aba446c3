"""Where the compute-optimal model size lies, from finished runs: a small least-squares fit for the planner.

A profile is the runs of one (budget, family); its sizes are the distinct n_active, each size's loss the
mean over seeds. ``profile_minimum`` fits a parabola to loss against ln n_active (at least 3 sizes) and
returns its vertex when the parabola opens upward and the vertex lies inside the sizes' range.
``fit_centres`` regresses ln n_opt on ln C over the profiles with such a vertex: per family when it has
two or more budgets, else with the pooled slope (or 0.5, Chinchilla's, with a single budget in all)
through the family's own points, else the pooled line. The result centres the next budgets' profiles
(``trainer.plan.isoflop_design(centre=...)``). ``edge_side`` says where a profile's observed minimum sits,
``interior_share`` is the valley measure: the share of profiles with >= ``min_sizes`` sizes whose lowest
mean loss is at an interior size.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .plan import Family

SLOPE_BOUNDS = (0.25, 0.85)


def family_of(row: dict) -> Family:
    """(expansion, granularity, shared_ratio) of a runs-table row."""
    g = int(float(row["granularity"]))
    return (max(1, int(float(row["n_experts"])) // g), g, round(float(row["shared_ratio"]), 6))


def profiles(rows: list[dict]) -> dict[tuple[float, Family], list[tuple[float, float]]]:
    """{(budget, family): [(n_active, mean loss over seeds), ...] sorted by n_active} for rows with a loss."""
    acc: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if str(r.get("loss", "")).strip() and str(r.get("budget", "")).strip():
            acc[(float(r["budget"]), family_of(r))][int(float(r["n_active"]))].append(float(r["loss"]))
    return {k: sorted((n, float(np.mean(v))) for n, v in sizes.items()) for k, sizes in acc.items()}


def profile_minimum(points: list[tuple[float, float]]) -> float | None:
    """n_active at the vertex of a parabola in ln n_active through ``points``, when it opens upward and lies
    inside their range; else None."""
    if len(points) < 3:
        return None
    x = np.log([p[0] for p in points])
    a, b, _ = np.polyfit(x, [p[1] for p in points], 2)
    if a <= 0:
        return None
    vertex = -b / (2 * a)
    return float(math.exp(vertex)) if x.min() <= vertex <= x.max() else None


def edge_side(points: list[tuple[float, float]]) -> str | None:
    """``low`` / ``high`` when the lowest loss is at the smallest / largest size, else None (interior)."""
    i = int(np.argmin([p[1] for p in points]))
    return "low" if i == 0 else "high" if i == len(points) - 1 else None


def interior_share(rows: list[dict], min_sizes: int = 5) -> tuple[int, int]:
    """(profiles with an interior minimum, profiles with >= ``min_sizes`` sizes)."""
    big = [pts for pts in profiles(rows).values() if len(pts) >= min_sizes]
    return sum(edge_side(pts) is None for pts in big), len(big)


def _line(points: list[tuple[float, float]], slope: float | None) -> tuple[float, float]:
    """(intercept, slope) of ln n_opt = a + b ln C: least squares, or the given slope through the mean."""
    x, y = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    if slope is None:
        slope = float(np.clip(np.polyfit(x, y, 1)[0], *SLOPE_BOUNDS))
    return float(y.mean() - slope * x.mean()), slope


def fit_centres(rows: list[dict]):
    """A ``centre(budget, family) -> n_active | None`` fitted to the finished runs (None: no usable profile)."""
    pts: dict = defaultdict(list)
    for (budget, fam), points in profiles(rows).items():
        n_opt = profile_minimum(points)
        if n_opt is not None:
            pts[fam].append((math.log(budget), math.log(n_opt)))
    pooled = [p for v in pts.values() for p in v]
    if not pooled:
        return lambda budget, family: None
    pooled_slope = _line(pooled, None)[1] if len({p[0] for p in pooled}) >= 2 else 0.5
    pooled_line = _line(pooled, pooled_slope)
    lines = {fam: _line(v, None if len({p[0] for p in v}) >= 2 else pooled_slope) for fam, v in pts.items()}

    def centre(budget: float, family: Family) -> float:
        a, b = lines.get(family, pooled_line)
        return float(math.exp(a + b * math.log(budget)))

    return centre
