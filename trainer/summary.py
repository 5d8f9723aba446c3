"""Figures of a finished runs table: the regime (embedding and head shares), the valley measure, throughput.

``summarize(rows)`` -> a dict: runs and budgets; per (budget, family) profile its sizes and where the lowest
mean loss sits (``interior`` / ``low`` / ``high``); the valley measure (profiles with >= 5 sizes whose
minimum is interior); median and range of ``embedding_share`` and ``head_flop_share``; median real FLOP/s
per run (compute / wall_s) and the runs' summed training time. Pure Python (no torch).
"""
from __future__ import annotations

import statistics

from .centre import edge_side, interior_share, profiles


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else {}


def summarize(rows: list[dict], min_sizes: int = 5) -> dict:
    """The figures listed in the module docstring for runs-table rows (strings as read from CSV are fine)."""
    done = [r for r in rows if str(r.get("loss", "")).strip()]
    profs = profiles(done)
    interior, total = interior_share(done, min_sizes)
    num = lambda col: [float(r[col]) for r in done if str(r.get(col, "")).strip()]  # noqa: E731
    speed = [float(r["compute"]) / float(r["wall_s"]) for r in done if str(r.get("wall_s", "")).strip()]
    return {
        "runs": len(done),
        "budgets": sorted({float(r["budget"]) for r in done if str(r.get("budget", "")).strip()}),
        "profiles": [{"budget": b, "family": list(f), "sizes": [n for n, _ in pts],
                      "minimum": edge_side(pts) or "interior"} for (b, f), pts in sorted(profs.items())],
        "valley": {"interior": interior, "profiles": total, "share": interior / total if total else None,
                   "min_sizes": min_sizes},
        "embedding_share": _spread(num("embedding_share")),
        "head_flop_share": _spread(num("head_flop_share")),
        "real_flops_per_s": _spread(speed),
        "train_hours": sum(num("wall_s")) / 3600,
    }
