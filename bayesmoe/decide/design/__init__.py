"""Which run next: Bayesian experimental design for scaling sweeps.

>>> import bayesmoe
>>> from bayesmoe.decide.design import design   # also bayesmoe.design(...)
>>> fit = bayesmoe.load_fit("fit.nc")
>>> result = design(fit, "candidates.csv", target="n_active", at_compute=1e21, spend=3e19)
>>> result.table          # candidates ranked by expected reduction of the target's log-scale sd per FLOP
>>> result.selected       # run_ids picked greedily (--select K or --spend FLOPS)
>>> result.selected_runs().to_csv("design.csv", index=False)   # `python -m trainer sweep --plan design.csv`

For each candidate run, outcomes are simulated from the posterior predictive, the posterior is updated
without refitting (Pareto-smoothed importance reweighting of the existing draws, :mod:`.psis`), and the
expected posterior sd of log(target) and the expected 90% band width of the target are averaged over the
simulated outcomes (:mod:`.value`). Candidates whose reweighting is unreliable (90th percentile of the
Pareto k over simulated outcomes above 0.7) are marked ``reliable = False``: their expected reduction
is an optimistic guess (few draws carry the weight) and a refit is needed to know it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd

from ...config import float64
from ...errors import BayesMoeError
from ...inference import Fit
from ...model import STUDENT_T_NU
from ...runs import validate_runs
from ..optimum import optimum
from . import value
from .candidates import load_candidates
from .propose import propose as propose_candidates
from .psis import K_THRESHOLD

__all__ = ["design", "DesignResult", "load_candidates"]

#: Simulated outcomes (worlds) per candidate.
DEFAULT_OUTCOMES = 64
#: A target needs at least this share of draws with a finite, positive value.
MIN_FINITE_SHARE = 0.5


@dataclass
class DesignResult:
    """A ranked list of candidate runs and a greedily selected batch.

    Attributes:
        law, target, at_compute: what was asked (``at_compute`` is the configuration's compute for
            a ``loss`` target at a configuration, given in ``at_config``).
        current: the target now: q05, q50, q95 (natural units), ``sd_log`` (sd of its log), ``band_width``.
        table: one row per candidate, best first: ``run_id``, ``compute``, ``expected_sd_log``,
            ``expected_reduction`` (current sd_log - expected sd_log), ``reduction_per_flop``,
            ``expected_band_width``, ``band_reduction``, ``pareto_k`` (90th percentile over simulated
            outcomes), ``pareto_k_high_share`` (share of outcomes with k > 0.7), ``reliable``, ``rank``.
        selected: run_ids picked greedily, in order.
        path: the greedy path: per step (0 = nothing added) ``run_id``, ``compute``, ``cumulative_compute``,
            ``expected_sd_log``, ``expected_band_width``, ``pareto_k`` (90th percentile).
        candidates: the validated candidate rows (runs-table columns, no ``loss``).
    """

    law: str
    target: str
    at_compute: float
    current: dict
    table: pd.DataFrame
    selected: list[str]
    path: pd.DataFrame
    candidates: pd.DataFrame
    at_config: dict | None = None
    settings: dict = field(default_factory=dict)

    def selected_runs(self) -> pd.DataFrame:
        """The selected candidates as a runs table without ``loss`` (a trainer ``--plan`` file), in pick order."""
        index = {rid: i for i, rid in enumerate(self.candidates["run_id"])}
        return self.candidates.iloc[[index[r] for r in self.selected]].reset_index(drop=True)

    def to_dict(self) -> dict:
        """``design --json`` object (docs/cli.md) (plus ``path``, ``settings`` and the extra candidate fields)."""
        columns = [
            "run_id",
            "compute",
            "expected_sd_log",
            "expected_reduction",
            "reduction_per_flop",
            "pareto_k",
            "rank",
            "expected_band_width",
            "band_reduction",
            "pareto_k_high_share",
            "reliable",
        ]
        out = {
            "law": self.law,
            "target": self.target,
            "at_compute": self.at_compute,
            "current": self.current,
            "candidates": self.table[columns].to_dict(orient="records"),
            "selected": list(self.selected),
            "path": self.path.to_dict(orient="records"),
            "settings": self.settings,
        }
        if self.at_config is not None:
            out["at_config"] = self.at_config
        return out


def _target_draws(
    fit, target, at_compute, at_config, objective, group, options
) -> tuple[np.ndarray, float, dict | None]:
    """Log-scale target draws (S,), the budget, and the configuration row (for a loss target)."""
    if at_config is not None:
        if target != "loss":
            raise BayesMoeError(f"--at-config gives the loss of one configuration; use --target loss, not '{target}'")
        config = validate_runs(at_config, required=fit.law.required_columns, require_loss=False, law=fit.law.name,
                               what="target configuration")
        if len(config) != 1:
            raise BayesMoeError(f"target configuration must be one row, got {len(config)}")
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in config.iloc[0].items() if pd.notna(v)}
        return np.asarray(fit.log_mean(config))[:, 0], float(config["compute"].iloc[0]), row
    if at_compute is None:
        raise BayesMoeError("give --at-compute C (the budget of the target optimum) or --at-config for a loss target")
    result = optimum(fit, [float(at_compute)], objective=objective, group=group, **options)
    if target not in result.draws:
        raise BayesMoeError(f"unknown --target '{target}' for law '{fit.law.name}'; its optimal quantities are "
                            f"{', '.join(sorted(result.draws))}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(result.draws[target][:, 0]), float(at_compute), None


@float64
def design(
    fit: Fit,
    candidates: str | PathLike | pd.DataFrame | None = None,
    *,
    target: str = "n_active",
    at_compute: float | None = None,
    at_config: str | PathLike | pd.DataFrame | None = None,
    select: int | None = None,
    spend: float | None = None,
    propose: int | None = None,
    max_compute: float | None = None,
    objective: str = "compute",
    group: str | None = None,
    outcomes: int = DEFAULT_OUTCOMES,
    seed: int = 0,
    **options: Any,
) -> DesignResult:
    """Rank candidate runs by how much they are expected to narrow the target's posterior, per FLOP.

    Args:
        fit: a :class:`~bayesmoe.fit.Fit` (or anything with ``law``, ``meta``, ``draws()``, ``log_mean()``).
        candidates: runs table without ``loss`` (path or DataFrame, see :mod:`.candidates`); or None with
            ``propose``.
        target: an optimal quantity of docs/cli.md (``n_active``, ``tokens``, ``loss``, ``granularity``, ...) at
            budget ``at_compute`` (FLOPs), or ``"loss"`` with ``at_config`` (a one-row runs table).
        select: pick K runs greedily by expected sd reduction; spend: pick greedily by reduction per FLOP
            while the total compute stays within ``spend`` FLOPs. Neither: the single best run per FLOP.
        propose: build N candidates from the law's isoFLOP geometry (:func:`.propose.propose`), with
            budgets up to ``max_compute`` FLOPs.
        objective, group, options: passed to :func:`bayesmoe.decide.optimum.optimum`.
        outcomes: simulated outcomes per candidate (M); seed: seeds the simulation.

    Returns:
        A :class:`DesignResult`.
    """
    if select is not None and spend is not None:
        raise BayesMoeError("give --select K or --spend FLOPS, not both")
    if select is not None and int(select) < 1:
        raise BayesMoeError(f"--select must be a positive integer, got {select}")
    if spend is not None and not (np.isfinite(spend) and spend > 0):
        raise BayesMoeError(f"--spend must be a positive number of FLOPs, got {spend}")
    if int(outcomes) < 8:
        raise BayesMoeError(f"outcomes must be at least 8, got {outcomes}")
    if (candidates is None) == (propose is None):
        raise BayesMoeError("give candidates (--candidates FILE) or --propose N, not both or neither")
    if propose is not None:
        frame = propose_candidates(
            fit, int(propose), max_compute=max_compute, objective=objective, group=group, **options
        )
    else:
        frame = load_candidates(candidates, fit.law)

    z, budget, config_row = _target_draws(fit, target, at_compute, at_config, objective, group, options)
    keep = np.isfinite(z)
    if keep.mean() < MIN_FINITE_SHARE:
        raise BayesMoeError(
            f"target '{target}' at {budget:g} FLOPs is undefined for {int((~keep).sum())} of {len(z)} draws"
        )
    mu = np.asarray(fit.log_mean(frame))[keep]
    sigma = np.asarray(fit.draws()["sigma"])[keep]
    z = z[keep]
    if not np.std(z) > 0:
        raise BayesMoeError(
            f"target '{target}' at {budget:g} FLOPs has no posterior spread (every draw gives {np.exp(z[0]):g}); "
            "nothing to learn about it"
        )
    order = np.argsort(z, kind="stable")
    z_sorted, mu, sigma = z[order], mu[order], sigma[order]
    nu = STUDENT_T_NU if fit.meta.get("likelihood", "student_t") == "student_t" else None

    rng = np.random.default_rng(seed)
    world = rng.integers(len(z), size=int(outcomes))
    shape = (int(outcomes), len(frame))
    eps = rng.standard_t(nu, shape) if nu is not None else rng.standard_normal(shape)
    y = mu[world] + sigma[world, None] * eps
    compute = frame["compute"].to_numpy(float)

    base = np.zeros((int(outcomes), len(z)))
    sd0, band0, _ = (np.asarray(a) for a in value.base_stats(base, z_sorted))
    scores = {k: np.asarray(v) for k, v in value.score_candidates(base, y, mu, sigma, z_sorted, nu).items()}
    table = _rank_table(frame, compute, sd0.mean(), band0.mean(), scores)
    selected, path = _greedy(frame, compute, y, mu, sigma, z_sorted, nu, base, scores, sd0.mean(), band0.mean(),
                             select=select, spend=spend)

    q = np.exp(np.quantile(z, [0.05, 0.5, 0.95]))
    current = {"q05": q[0], "q50": q[1], "q95": q[2], "sd_log": float(np.std(z, ddof=1)), "band_width": q[2] - q[0]}
    settings = {"outcomes": int(outcomes), "seed": int(seed), "draws": int(len(z)), "dropped_draws": int((~keep).sum()),
                "objective": objective, "select": select, "spend": spend, "propose": propose,
                "pareto_k_threshold": K_THRESHOLD, "noise": "student_t" if nu is not None else "normal"}
    return DesignResult(fit.law.name, target, budget, {k: float(v) for k, v in current.items()}, table, selected, path,
                        frame, config_row, settings)


def _summarise(scores: dict, j=slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    sd, band, k = scores["sd"][j], scores["band"][j], scores["k"][j]
    return sd.mean(-1), band.mean(-1), np.percentile(k, 90, axis=-1), (k > K_THRESHOLD).mean(-1)


def _rank_table(frame, compute, sd0, band0, scores) -> pd.DataFrame:
    sd, band, k90, high = _summarise(scores)
    table = pd.DataFrame({
        "run_id": frame["run_id"].to_numpy(),
        "compute": compute,
        "expected_sd_log": sd,
        "expected_reduction": sd0 - sd,
        "reduction_per_flop": (sd0 - sd) / compute,
        "expected_band_width": band,
        "band_reduction": band0 - band,
        "pareto_k": k90,
        "pareto_k_high_share": high,
        "reliable": k90 <= K_THRESHOLD,
    })
    table = table.sort_values("reduction_per_flop", ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def _greedy(frame, compute, y, mu, sigma, z_sorted, nu, base, first, sd0, band0, *, select, spend):
    """Greedy batch: by expected sd reduction (``select``) or by reduction per FLOP within ``spend``."""
    limit = 1 if select is None and spend is None else (int(select) if select is not None else len(frame))
    picked: list[int] = []
    rows = [{"step": 0, "run_id": None, "compute": 0.0, "cumulative_compute": 0.0, "expected_sd_log": sd0,
             "expected_band_width": band0, "pareto_k": None}]
    current_sd, spent, scores = sd0, 0.0, first
    while len(picked) < limit:
        available = np.ones(len(frame), dtype=bool)
        available[picked] = False
        if spend is not None:
            available &= compute <= spend - spent
        if not available.any():
            break
        sd, band, k90, _ = _summarise(scores)
        gain = current_sd - sd
        criterion = gain / compute if (spend is not None or select is None) else gain
        j = int(np.flatnonzero(available)[np.argmax(criterion[available])])
        if spend is not None and gain[j] <= 0:
            break
        picked.append(j)
        spent += compute[j]
        current_sd = sd[j]
        rows.append(
            {
                "step": len(picked),
                "run_id": str(frame["run_id"].iloc[j]),
                "compute": float(compute[j]),
                "cumulative_compute": spent,
                "expected_sd_log": float(sd[j]),
                "expected_band_width": float(band[j]),
                "pareto_k": float(k90[j]),
            }
        )
        if len(picked) < limit:
            base = base + np.asarray(value.outcome_log_lik(y[:, j], mu[:, j], sigma, nu))
            scores = {k: np.asarray(v) for k, v in value.score_candidates(base, y, mu, sigma, z_sorted, nu).items()}
    return [str(frame["run_id"].iloc[j]) for j in picked], pd.DataFrame(rows)

