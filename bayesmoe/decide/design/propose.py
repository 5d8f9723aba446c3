"""Candidate runs from the law's own isoFLOP geometry, around the current optimum band.

Budgets: ``levels`` budgets a factor 4 apart, the largest equal to the cost cap ``max_compute`` (default:
10 x the largest run the fit saw). At each budget the posterior of the optimal size (``n_active``, or
``n_total`` for laws that only speak to it) gives a band [q05, q95]; candidate sizes are spread evenly in
log size over [q05 / 2, 2 q95], and each size gets the tokens that spend the budget exactly.

Architecture: each candidate belongs to one of the architecture families of the fit's own runs (distinct
``n_experts``, ``top_k``, ``granularity``, ``shared_ratio``); a proposal never invents an architecture the
law was not fitted on. Parameter and FLOP accounting, in order of preference:

1. the trainer's (``trainer.plan`` / ``trainer.flops``, importable without torch) when the fit's runs are
   trainer runs (they have ``d_model`` and ``n_layers``): the band is the posterior's own best shape of the
   trainer's ladder at the budget (see :func:`_trainer_rows`; the continuous optimum assumes the law's
   published architecture, which such small models do not follow), and every row is a complete, trainable plan row
   (``python -m trainer sweep --plan``) spending the budget in real FLOPs (output head and attention
   included, the trainer's ``flop_convention``), as the trainer's own planner does;
2. otherwise the family's own ratios, medians over its runs: ``n_total = n_active x (N / Na)``,
   ``compute = tokens x n_active x (M / Na)`` with M/Na = ``flops_per_token / n_active`` where known, else 6
   (C = 6 Na D, docs/runs-table.md); ``n_embedding`` scales with sqrt(n_active) from the family's median.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ...errors import BayesMoeError
from ...inference import Fit
from ..optimum import optimum
from .candidates import load_candidates

ARCH_COLUMNS = ("n_experts", "top_k", "granularity", "shared_ratio")
BUDGET_STEP = 4.0
DEFAULT_LEVELS = 3
CAP_OVER_LARGEST_RUN = 10.0


def _families(runs: pd.DataFrame) -> list[dict]:
    """Architecture families of the fit's runs with their median accounting ratios."""
    present = [c for c in ARCH_COLUMNS if c in runs.columns and runs[c].notna().all()]
    keys = runs[present].drop_duplicates().to_dict(orient="records") if present else [{}]
    out = []
    for key in keys:
        mask = np.ones(len(runs), dtype=bool)
        for c, v in key.items():
            mask &= runs[c].to_numpy() == v
        fam = runs[mask]
        na = fam["n_active"].to_numpy(float) if "n_active" in fam else fam["n_total"].to_numpy(float)
        nt = fam["n_total"].to_numpy(float) if "n_total" in fam else na
        m = (
            fam["flops_per_token"].to_numpy(float) / na
            if "flops_per_token" in fam and fam["flops_per_token"].notna().all()
            else np.full(len(fam), 6.0)
        )
        emb = fam["n_embedding"].to_numpy(float) / np.sqrt(na) if "n_embedding" in fam else np.zeros(len(fam))
        out.append({"key": key, "total_ratio": float(np.median(nt / na)), "m_ratio": float(np.median(m)),
                    "emb_coef": float(np.median(emb)), "rows": fam})
    return out


def _trainer_rows(fit: Fit, fam: dict, budget: float, per: int, group: str | None) -> list[dict] | None:
    """Trainable plan rows from the trainer's shape ladder, or None when the trainer is not usable here.

    The band comes from the posterior itself, in the trainer's own accounting: every ladder shape of the
    family is given the tokens that spend ``budget`` real FLOPs, each posterior draw picks its best shape
    (lowest predicted mean loss), and the candidates are the shapes whose ``n_active`` lies within a
    factor 2 of that draw-wise best's central 90% band.
    """
    try:
        from trainer.config import ConfigError
        from trainer.flops import account
        from trainer.plan import DEFAULT_SEQ_LEN, DEFAULT_VOCAB, SHAPES, family_config, feasible, row_at_budget
    except ImportError:
        return None
    rows = fam["rows"]
    if not {"d_model", "n_layers", *ARCH_COLUMNS} <= set(rows.columns):
        return None
    first = rows.iloc[0]
    vocab = int(first["vocab_size"]) if "vocab_size" in rows and pd.notna(first["vocab_size"]) else DEFAULT_VOCAB
    seq = int(first["seq_len"]) if "seq_len" in rows and pd.notna(first["seq_len"]) else DEFAULT_SEQ_LEN
    gate = str(first["gate"]) if "gate" in rows and isinstance(first["gate"], str) and first["gate"] else "renorm"
    g = int(fam["key"]["granularity"])
    family = (max(1, int(fam["key"]["n_experts"]) // g), g, float(fam["key"]["shared_ratio"]))
    label = str(first["group"]) if "group" in rows else "design"
    ladder = []
    for d, n_layers in SHAPES:
        try:
            cfg = family_config(family, d, n_layers, vocab_size=vocab, seq_len=seq, gate=gate)
        except ConfigError:
            continue
        if feasible(account(cfg), budget, seq):
            ladder.append(row_at_budget(cfg, budget, seed=0, group=label))   # budget in real FLOPs, head included
    if not ladder:
        return []
    shapes = pd.DataFrame(ladder)
    if group is not None and "group" in fit.runs.columns:
        shapes["group"] = group
    best = np.argmin(fit.log_mean(shapes), axis=1)   # (S,): each draw's best shape
    size = shapes["n_active"].to_numpy(float)
    lo, hi = np.quantile(size[best], [0.05, 0.95])
    found = [row for row, na in zip(ladder, size) if lo / 2 <= na <= 2 * hi]
    if len(found) > per:
        found = [found[i] for i in np.unique(np.linspace(0, len(found) - 1, per).round().astype(int))]
    return found


def _law_rows(fam: dict, budget: float, sizes: np.ndarray) -> list[dict]:
    rows = []
    for na in sizes:
        row = dict(fam["key"])
        row.update({"n_active": na, "n_total": na * fam["total_ratio"], "n_embedding": fam["emb_coef"] * math.sqrt(na),
                    "tokens": budget / (fam["m_ratio"] * na), "compute": budget})
        if fam["m_ratio"] != 6.0:
            row["flops_per_token"] = fam["m_ratio"] * na
        rows.append(row)
    return rows


def propose(
    fit: Fit,
    n: int,
    *,
    max_compute: float | None = None,
    levels: int = DEFAULT_LEVELS,
    objective: str = "compute",
    group: str | None = None,
    **options: Any,
) -> pd.DataFrame:
    """About ``n`` candidate runs (a runs table without ``loss``) around the optimum band; see the module doc.

    Args:
        fit: a :class:`~bayesmoe.fit.Fit`; its runs give the architecture families and the default cap.
        n: number of candidates wanted (the trainer's shape ladder may give fewer).
        max_compute: cost cap of one run in FLOPs (the largest budget).
        levels: number of budgets, a factor 4 apart.
    """
    if n < 1:
        raise BayesMoeError(f"--propose must be a positive number of candidates, got {n}")
    cap = float(max_compute) if max_compute is not None else CAP_OVER_LARGEST_RUN * float(fit.runs["compute"].max())
    if not (np.isfinite(cap) and cap > 0):
        raise BayesMoeError(f"--max-compute must be a positive number of FLOPs, got {max_compute}")
    budgets = cap / BUDGET_STEP ** np.arange(levels)[::-1]
    result = optimum(fit, budgets, objective=objective, group=group, **options)
    size_key = "n_active" if "n_active" in result.draws else "n_total"
    families = _families(fit.runs)
    per = max(2, math.ceil(n / (levels * len(families))))
    rows: list[dict] = []
    for b, budget in enumerate(budgets):
        q05, q95 = np.nanquantile(result.draws[size_key][:, b], [0.05, 0.95])
        for fam in families:
            made = _trainer_rows(fit, fam, budget, per, group)
            if made is None:
                scale = 1.0 if size_key == "n_active" else 1.0 / fam["total_ratio"]
                made = _law_rows(fam, budget, np.geomspace(q05 * scale / 2, q95 * scale * 2, per))
            rows += made
    if not rows:
        raise BayesMoeError(
            f"no candidate fits the optimum band at budgets up to {cap:g} FLOPs; try another --max-compute"
        )
    frame = pd.DataFrame(rows)
    if len(frame) > n:
        frame = frame.iloc[np.unique(np.linspace(0, len(frame) - 1, n).round().astype(int))]
    frame = frame.reset_index(drop=True)
    if "run_id" not in frame.columns:
        frame.insert(0, "run_id", [f"proposed{i}" for i in range(len(frame))])
    frame = frame.drop_duplicates("run_id").reset_index(drop=True)
    return load_candidates(frame, fit.law)
