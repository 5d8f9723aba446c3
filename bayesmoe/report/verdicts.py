"""Plain-language verdicts on sampler diagnostics, with what to do about each problem.

Levels: ``"ok"`` (trust it), ``"check"`` (usable, but look before deciding), ``"bad"`` (do not use
the numbers yet). Thresholds follow Vehtari et al. 2021 (R-hat < 1.01, ESS >= 100 per chain) and
Betancourt 2016 (E-BFMI >= 0.3); Pareto k > 0.7 marks runs that PSIS-LOO cannot handle.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..inference.fitted import ESS_MIN_PER_CHAIN, RHAT_MAX

RHAT_BAD = 1.05
BFMI_MIN = 0.3
PARETO_K_MAX = 0.7
LEVELS = ("ok", "check", "bad")


@dataclass(frozen=True)
class Verdict:
    """One diagnostic's level, a one-line finding and what to do."""

    topic: str
    level: str
    finding: str
    action: str = ""


def parameter_verdicts(summary: pd.DataFrame, chains: int) -> pd.DataFrame:
    """Add ``verdict`` and ``action`` columns to a :meth:`Fit.summary` table (rows: parameters)."""
    min_ess = ESS_MIN_PER_CHAIN * chains
    levels, actions = [], []
    for _, row in summary.iterrows():
        ess = min(row["ess_bulk"], row["ess_tail"])
        if not np.isfinite(row["r_hat"]) or row["r_hat"] > RHAT_BAD:
            levels.append("bad")
            actions.append("chains disagree: run longer warmup; if it persists, reparameterise or tighten the prior")
        elif row["r_hat"] > RHAT_MAX:
            levels.append("check")
            actions.append("chains nearly agree: run more warmup and draws")
        elif ess < min_ess:
            levels.append("check")
            actions.append(f"only {ess:.0f} effective draws (want {min_ess}): run more draws before trusting intervals")
        else:
            levels.append("ok")
            actions.append("")
    out = summary.copy()
    out["verdict"], out["action"] = levels, actions
    return out


def sampler_verdicts(*, divergences: int, n_draws: int, bfmi: np.ndarray, pareto_k: np.ndarray,
                     run_ids: list[str]) -> list[Verdict]:
    """Verdicts on divergences, E-BFMI per chain and Pareto k per run."""
    out = []
    if divergences == 0:
        out.append(Verdict("divergences", "ok", "no divergent transitions"))
    else:
        share = divergences / max(n_draws, 1)
        out.append(
            Verdict(
                "divergences",
                "bad" if share > 0.01 else "check",
                f"{divergences} divergent transitions ({share:.1%} of draws): NUTS could not explore part of "
                "the posterior",
                "raise warmup; reparameterise (pool fewer parameters, tighter priors); look for outlying runs below",
            )
        )
    bfmi = np.atleast_1d(np.asarray(bfmi, float))
    low = np.flatnonzero(bfmi < BFMI_MIN)
    values = ", ".join(f"{v:.2f}" for v in bfmi)
    if len(low):
        out.append(
            Verdict(
                "E-BFMI",
                "bad",
                f"E-BFMI below {BFMI_MIN} in chain(s) {', '.join(map(str, low))} ({values})",
                "the sampler moves slowly between energy levels: reparameterise or use more informative priors",
            )
        )
    else:
        out.append(Verdict("E-BFMI", "ok", f"E-BFMI per chain {values} (all >= {BFMI_MIN})"))
    k = np.asarray(pareto_k, float)
    high = np.flatnonzero(k > PARETO_K_MAX)
    if len(high):
        names = ", ".join(str(run_ids[i]) for i in high[:8]) + (" ..." if len(high) > 8 else "")
        out.append(
            Verdict(
                "Pareto k",
                "check",
                f"{len(high)} run(s) with Pareto k > {PARETO_K_MAX}: {names}",
                "these runs move the fit on their own: check them for errors, or drop outliers (--exclude-top-loss K)",
            )
        )
    else:
        out.append(
            Verdict(
                "Pareto k", "ok", f"all runs have Pareto k <= {PARETO_K_MAX} (max {np.nanmax(k):.2f}): LOO is reliable"
            )
        )
    return out


def overall(levels: list[str]) -> str:
    """The worst of several levels."""
    return max(levels, key=LEVELS.index) if levels else "ok"
