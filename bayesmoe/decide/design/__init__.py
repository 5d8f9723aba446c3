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
simulated outcomes (:mod:`.value`). A loss target of a fit with a learned model-discrepancy term also carries
the law's form error at its distance past the data, which a run past the data's edge shrinks by moving the
edge (:mod:`.form_error`; ``discrepancy=False`` leaves it out). Candidates whose reweighting is unreliable
(90th percentile of the Pareto k over simulated outcomes above 0.7) are marked ``reliable = False``: their
expected reduction is an optimistic guess (few draws carry the weight) and a refit is needed to know it.
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
from .form_error import FormError, form_error
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
        current: the target now: q05, q50, q95 (natural units), ``sd_log`` (sd of its log), ``band_width``;
            a loss target's form error included where it is used (``settings["discrepancy"]``).
        table: one row per candidate, best first: ``run_id``, ``compute``, ``expected_sd_log``,
            ``expected_reduction`` (current sd_log - expected sd_log), ``reduction_per_flop``,
            ``expected_band_width``, ``band_reduction``, ``pareto_k`` (90th percentile over simulated
            outcomes), ``pareto_k_high_share`` (share of outcomes with k > 0.7), ``reliable``, ``rank``;
            with the law's form error in a loss target (``settings["discrepancy"]["used"]``) also
            ``target_distance`` (median ``ln`` distance of the target past the data once that run is trained).
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
        ] + (["target_distance"] if "target_distance" in self.table else [])
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
) -> tuple[np.ndarray, float, dict | None, dict[str, np.ndarray]]:
    """Log-scale target draws (S,), the budget, the configuration row (for a loss target), and the target's
    scales per draw (``compute`` and, where known, ``n_active``; each (S,)) for the form error."""
    if at_config is not None:
        if target != "loss":
            raise BayesMoeError(f"--at-config gives the loss of one configuration; use --target loss, not '{target}'")
        config = validate_runs(at_config, required=fit.law.required_columns, require_loss=False, law=fit.law.name,
                               what="target configuration")
        if len(config) != 1:
            raise BayesMoeError(f"target configuration must be one row, got {len(config)}")
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in config.iloc[0].items() if pd.notna(v)}
        z = np.asarray(fit.log_mean(config))[:, 0]
        scales = {c: np.full(z.shape, float(config[c].iloc[0])) for c in ("compute", "n_active") if c in config}
        return z, float(config["compute"].iloc[0]), row, scales
    if at_compute is None:
        raise BayesMoeError("give --at-compute C (the budget of the target optimum) or --at-config for a loss target")
    result = optimum(fit, [float(at_compute)], objective=objective, group=group, **options)
    if target not in result.draws:
        raise BayesMoeError(f"unknown --target '{target}' for law '{fit.law.name}'; its optimal quantities are "
                            f"{', '.join(sorted(result.draws))}")
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(result.draws[target][:, 0])
    scales = {"compute": np.full(z.shape, float(at_compute))}
    if "n_active" in result.draws:
        scales["n_active"] = result.draws["n_active"][:, 0]
    return z, float(at_compute), None, scales


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
    discrepancy: bool = True,
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
        discrepancy: for a ``loss`` target of a fit with a learned model-discrepancy term (``bayesmoe
            validate``), include the law's form error at the target's distance past the data (default);
            a candidate past the data's edge moves the edge and shrinks it (:mod:`.form_error`). False:
            law-only. Other targets never use it (``settings["discrepancy"]`` says why).

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

    z, budget, config_row, scales = _target_draws(fit, target, at_compute, at_config, objective, group, options)
    keep = np.isfinite(z)
    if keep.mean() < MIN_FINITE_SHARE:
        raise BayesMoeError(
            f"target '{target}' at {budget:g} FLOPs is undefined for {int((~keep).sum())} of {len(z)} draws"
        )
    mu = np.asarray(fit.log_mean(frame))[keep]
    sigma = np.asarray(fit.draws()["sigma"])[keep]
    z = z[keep]
    scales = {c: v[keep] for c, v in scales.items()}
    if not np.std(z) > 0:
        raise BayesMoeError(
            f"target '{target}' at {budget:g} FLOPs has no posterior spread (every draw gives {np.exp(z[0]):g}); "
            "nothing to learn about it"
        )
    order = np.argsort(z, kind="stable")
    z_sorted, mu, sigma = z[order], mu[order], sigma[order]
    term = fit.discrepancy if discrepancy else None
    form = form_error(term, target, {c: v[order] for c, v in scales.items()}, seed)
    edge = _Edge(form, frame)
    nu = STUDENT_T_NU if fit.meta.get("likelihood", "student_t") == "student_t" else None

    rng = np.random.default_rng(seed)
    world = rng.integers(len(z), size=int(outcomes))
    shape = (int(outcomes), len(frame))
    eps = rng.standard_t(nu, shape) if nu is not None else rng.standard_normal(shape)
    y = mu[world] + sigma[world, None] * eps
    compute = frame["compute"].to_numpy(float)

    base = np.zeros((int(outcomes), len(z)))
    z_now = edge.target(z_sorted)
    sd0, band0, _ = (np.asarray(a) for a in value.base_stats(base, z_now))
    scores = _scores(base, y, mu, sigma, z_sorted, nu, edge)
    table = _rank_table(frame, compute, sd0.mean(), band0.mean(), scores, edge)
    selected, path = _greedy(frame, compute, y, mu, sigma, z_sorted, nu, base, scores, sd0.mean(), band0.mean(),
                             edge, select=select, spend=spend)

    q = np.exp(np.quantile(z_now, [0.05, 0.5, 0.95]))
    current = {"q05": q[0], "q50": q[1], "q95": q[2], "sd_log": float(np.std(z_now, ddof=1)),
               "band_width": q[2] - q[0]}
    settings = {"outcomes": int(outcomes), "seed": int(seed), "draws": int(len(z)), "dropped_draws": int((~keep).sum()),
                "objective": objective, "select": select, "spend": spend, "propose": propose,
                "pareto_k_threshold": K_THRESHOLD, "noise": "student_t" if nu is not None else "normal",
                "discrepancy": _discrepancy_setting(fit, term, target, form, discrepancy)}
    return DesignResult(fit.law.name, target, budget, {k: float(v) for k, v in current.items()}, table, selected, path,
                        frame, config_row, settings)


def _summarise(scores: dict, j=slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    sd, band, k = scores["sd"][j], scores["band"][j], scores["k"][j]
    return sd.mean(-1), band.mean(-1), np.percentile(k, 90, axis=-1), (k > K_THRESHOLD).mean(-1)


def _rank_table(frame, compute, sd0, band0, scores, edge) -> pd.DataFrame:
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
    if edge.form is not None:
        table["target_distance"] = edge.candidate_distances()
    table = table.sort_values("reduction_per_flop", ascending=False, kind="stable").reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def _greedy(frame, compute, y, mu, sigma, z_sorted, nu, base, first, sd0, band0, edge, *, select, spend):
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
            edge = edge.moved_to(j)
            scores = _scores(base, y, mu, sigma, z_sorted, nu, edge)
    return [str(frame["run_id"].iloc[j]) for j in picked], pd.DataFrame(rows)



class _Edge:
    """The data's edge (largest fitted scale, in the form error's scale column) as runs are picked."""

    def __init__(self, form: FormError | None, frame: pd.DataFrame, edge: float | None = None):
        self.form, self.frame = form, frame
        self.scale = None if form is None else frame[form.term.scale_column].to_numpy(float)
        self.edge = None if form is None else (form.term.reference if edge is None else edge)

    def moved_to(self, j: int) -> _Edge:
        """The edge after candidate ``j`` is trained."""
        return self if self.form is None else _Edge(self.form, self.frame, max(self.edge, float(self.scale[j])))

    def target(self, z_sorted: np.ndarray) -> np.ndarray:
        """Log target draws (S,) with the form error at the current edge (``z_sorted`` itself without one)."""
        return z_sorted if self.form is None else z_sorted + self.form.shift(self.edge)

    def after_each(self, z_sorted: np.ndarray) -> np.ndarray | None:
        """(n, S) log target draws after each candidate (its scale moves the edge); None without a form error."""
        return None if self.form is None else z_sorted[None, :] + self.form.shift(np.maximum(self.edge, self.scale))

    def candidate_distances(self) -> np.ndarray:
        """Median ``ln`` distance of the target past the data after each candidate, shape (n,)."""
        return np.median(self.form.distance(np.maximum(self.edge, self.scale)), axis=-1)


def _scores(base, y, mu, sigma, z_sorted, nu, edge: _Edge) -> dict[str, np.ndarray]:
    scores = value.score_candidates(base, y, mu, sigma, z_sorted, nu, z_by_candidate=edge.after_each(z_sorted))
    return {k: np.asarray(v) for k, v in scores.items()}


def _discrepancy_setting(fit, term, target: str, form: FormError | None, asked: bool) -> dict:
    """``settings["discrepancy"]``: whether the target includes the law's form error, and why (not)."""
    if form is not None:
        distance = form.distance(term.reference)
        return {"used": True, "target_distance": float(np.median(distance)), "term": term.as_meta(),
                "note": "the target includes the law's form error at its distance past the data; a candidate past "
                        "the data's edge moves the edge and shrinks it (target_distance per candidate)"}
    if not asked:
        why = "left out (--no-discrepancy)"
    elif fit.discrepancy is None:
        why = "the fit has no learned discrepancy term (`bayesmoe validate FIT` learns one)"
    elif target != "loss":
        why = f"target '{target}' is not a loss: the term is zero-mean noise per configuration and moves no optimum"
    else:
        why = f"the target has no '{fit.discrepancy.scale_column}' to measure its distance past the data"
    return {"used": False, "note": why}
