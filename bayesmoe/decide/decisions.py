"""Decisions a practitioner can act on: trainable configurations, stated conventions, labelled extrapolation.

:func:`decide` adds to each budget of ``bayesmoe optimum`` (SPEC §3 ``recommendations``):

- ``config`` / ``dense_config`` / ``moe_config`` / ``moe_vs_dense``: see :mod:`bayesmoe.decide.configs`;
- ``extrapolation``: budget / largest fitted compute (None for a published set: its fitted range is the paper's);
  ``heldout_check``: for a fit with held-out runs, the observed error of the held-out run nearest in that
  distance, and the median and largest error of all held-out runs at about that distance; ``warnings``: one
  sentence per budget past :data:`EXTRAPOLATION_WARN` times the fitted compute;

and returns the ``conventions`` it used once (family, N counts, FLOP model, expansion rate, vocabulary,
which parameters the bands describe, whether the loss bands include the model-discrepancy term, and where
the fitted runs disagree with an assumption).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import BayesMoeError
from .configs import LAWS_WITH_CONFIGS, Evaluator, law_choices, recommend_configs
from .family import Family, family_from_runs, paper_family, runs_expansions

#: Budgets past this multiple of the largest fitted compute carry an extrapolation warning. Measured out of
#: sample (benchmarks/RESULTS.md, "Out-of-sample check on our own sweep"): fitted on our CPU sweep, the joint
#: law's band of the optimal dense size held the observed best size 3x past the runs and missed it 10x past
#: (886k against 328k-602k), while the loss bands covered every run; with the discrepancy term's tilt the
#: band (328k-1.26M) held it.
EXTRAPOLATION_WARN = 10.0
#: a continuous optimum whose n_active is more than this factor from the recommended run's describes another
#: architecture (the law's published one) than the runs' family; it is not shown next to the recommendation.
MISMATCH_FACTOR = 10.0


def continuous_mismatch(continuous_n_active: float, recommended_n_active: float) -> float | None:
    """continuous / recommended ``n_active`` when it lies outside [1 / MISMATCH_FACTOR, MISMATCH_FACTOR], else
    None: the law's continuous optimum (its published architecture) then does not describe the runs' family."""
    ratio = float(continuous_n_active) / float(recommended_n_active)
    return None if 1 / MISMATCH_FACTOR <= ratio <= MISMATCH_FACTOR else ratio
#: Posterior draws used for the configurations (a seeded subsample beyond this bounds time and memory).
MAX_DRAWS = 1000
FAMILIES = ("runs", "paper")
#: Published expansion rates (routed-expert / dense-FFN parameters) of laws that assume one.
PAPER_EXPANSION = {"granularity": (64.0, "Krajewski et al. 2024 main fits (Table 1, E = 64)")}


def fitted_runs(posterior) -> pd.DataFrame | None:
    """The runs a fit saw (None for a published coefficient set)."""
    return getattr(posterior, "runs", None)


def choose_family(posterior, name: str | None) -> Family:
    """``--family``: ``runs`` (default when the fitted runs have ``d_model`` and ``n_layers``) or ``paper``."""
    runs = fitted_runs(posterior)
    has_shape = (
        runs is not None
        and {"d_model", "n_layers"} <= set(runs.columns)
        and runs[["d_model", "n_layers"]].notna().all().all()
    )
    if name is None:
        name = "runs" if has_shape else "paper"
    if name not in FAMILIES:
        raise BayesMoeError(f"--family must be one of {', '.join(FAMILIES)}, got '{name}'")
    if name == "runs":
        if runs is None:
            raise BayesMoeError(
                "--family runs needs a FIT (a published coefficient set has no runs); use --family paper"
            )
        return family_from_runs(runs)
    return paper_family(posterior.law.name)


def resolve_expansion(posterior, flag: float | None) -> tuple[float | None, str]:
    """The expansion rate (``n_experts / granularity``) for the granularity law, and where it came from.

    The flag wins (a note records the runs' own rates when they differ); else the fitted MoE runs'
    single rate; mixed rates are an error asking for ``--expansion``; a published set uses the paper's.
    Other laws: (None, "").
    """
    if posterior.law.name != "granularity":
        return flag, "--expansion" if flag is not None else ""
    runs = fitted_runs(posterior)
    rates = runs_expansions(runs) if runs is not None else np.array([])
    if flag is not None:
        if not flag >= 1:
            raise BayesMoeError(f"--expansion must be >= 1 (routed-expert / dense-FFN parameters), got {flag:g}")
        seen = f"; the fitted MoE runs use {', '.join(f'{r:g}' for r in rates)}" if rates.size else ""
        return float(flag), f"--expansion {flag:g}{seen}"
    if runs is None:
        value, source = PAPER_EXPANSION["granularity"]
        return value, source
    if rates.size == 1:
        return float(rates[0]), "the fitted MoE runs' n_experts / granularity"
    if rates.size > 1:
        raise BayesMoeError(
            f"the fitted MoE runs mix expansion rates (n_experts / granularity: "
            f"{', '.join(f'{r:g}' for r in rates)}); pass --expansion E to say which to optimise for"
        )
    value, source = PAPER_EXPANSION["granularity"]
    return value, f"{source}: the fitted runs do not say (no MoE runs with n_experts and granularity); --expansion E"


def common_expansion(runs: pd.DataFrame | None) -> float | None:
    """The most common expansion rate (``n_experts / granularity``) of the MoE runs of ``runs`` (None without any).

    For reports and the demo, which take no ``--expansion``: :func:`decide` states the rate and the runs' mix.
    """
    if runs is None or not runs_expansions(runs).size:
        return None
    moe = runs[runs["n_experts"].fillna(1) > 1]
    return float((moe["n_experts"] / moe["granularity"]).round(6).mode().iloc[0])


def parameters_note(posterior, group: str | None) -> str:
    """Which parameters the bands describe (hierarchical fits: population mean, a fitted group or a new group)."""
    pooled = tuple(getattr(posterior, "pooled", ()) or ())
    if not hasattr(posterior, "runs"):
        return "a published coefficient set: one point, no posterior"
    if not pooled:
        return "the posterior of the fitted law (no groups)"
    if group is None:
        return (
            f"the population mean (mu) of the pooled parameters {', '.join(pooled)}: a typical group, without the "
            "between-group spread; --group NEW gives a new group's bands, which include it"
        )
    if group in posterior.groups:
        return f"the fitted group '{group}'"
    return (
        f"a new group '{group}' (mu + tau z per draw): the bands include the between-group spread of "
        f"{', '.join(pooled)}"
    )


def conventions(
    posterior, family: Family | None, expansion: float | None, expansion_source: str, group: str | None
) -> dict:
    """The ``conventions`` object (module doc); ``family`` None where no configurations are searched."""
    law = posterior.law
    runs = fitted_runs(posterior)
    notes = []
    with_embedding = runs is None or ("n_embedding" in runs.columns and bool((runs["n_embedding"].fillna(0) > 0).any()))
    if law.name == "joint" and not with_embedding:
        notes.append(
            "the fitted runs have no n_embedding, so this fit's N excludes embeddings (the paper's includes "
            "them); configurations are priced the same way"
        )
    prior_set = (getattr(posterior, "meta", {}) or {}).get("prior_set")
    if prior_set and law.name == "chinchilla":
        notes.append(
            f"the priors are centred on {prior_set}, whose N includes embeddings, while this fit's N "
            "(n_active) excludes them"
        )
    if family is not None and family.sources.get("flop_model", "").startswith("closest"):
        notes.append(f"FLOP model: {family.sources['flop_model']}")
    out = {
        "family": None if family is None else family.describe(),
        "n_counts": law.n_counts,
        "n_embedding_in_law": bool(with_embedding) if law.name == "joint" else None,
        "parameters": parameters_note(posterior, group),
        "loss": "posterior predictive band of one new run's final loss (law mean x fitted observation noise); "
        "loss_law: the law's mean alone",
        "dense": _DENSE.get(law.name, "n_experts = 1"),
        "optimal": "continuous optimum bands: the law's published architecture with real-valued sizes (not trainable)",
        "notes": notes,
    }
    if expansion is not None:
        out["expansion_rate"] = {"value": expansion, "source": expansion_source}
    return out


_DENSE = {
    "joint": "n_experts = 1 in the same law (Ê = E_start): a dense SwiGLU FFN of the family's width",
    "granularity": "the law's dense limit (g term dropped, N = n_total of a dense model): a dense SwiGLU FFN",
    "chinchilla": "every configuration is dense",
}


def merge(recommendation: dict | None, decision: dict) -> dict:
    """One ``recommendations[i]``: continuous recommendation plus :func:`decide`'s keys (``moe_vs_dense`` joined)."""
    out = dict(recommendation or {})
    for key, value in decision.items():
        out[key] = {**out[key], **value} if key == "moe_vs_dense" and key in out else value
    return out


def _beyond_runs(config: dict | None, runs: pd.DataFrame | None) -> list[str]:
    """Warnings for a configuration whose expert count or granularity lies past every fitted run's, or whose
    tokens per active parameter lie outside the fitted runs' range (the law's D-N trade-off is then read off
    a region no run measured)."""
    if config is None or runs is None:
        return []
    out = []
    for key, what in (("n_experts", "expert count"), ("granularity", "granularity")):
        if key in runs.columns and runs[key].notna().any() and config[key] > runs[key].max():
            out.append(
                f"extrapolation in {what}: {key} {config[key]} is past the fitted runs' largest "
                f"({runs[key].max():g}); --experts-max / --granularity-max bound the search"
            )
    if {"tokens", "n_active"} <= set(runs.columns) and config.get("n_active"):
        ratio = runs["tokens"].to_numpy(float) / runs["n_active"].to_numpy(float)
        lo, hi = float(np.nanmin(ratio)), float(np.nanmax(ratio))
        mine = float(config["tokens"]) / float(config["n_active"])
        if not lo <= mine <= hi:
            out.append(
                f"extrapolation in tokens per active parameter: {mine:.3g} is outside the fitted runs' "
                f"{lo:.3g}-{hi:.3g}; the law's trade-off between size and tokens is unmeasured there"
            )
    return out


def _at_search_edge(config: dict | None, choices: list | None) -> list[str]:
    """A warning when the recommended MoE choice is the largest expert count or granularity searched: the law's
    optimum may lie past the search's bound (--experts-max / --granularity-max, or the runs' largest)."""
    if config is None or not choices or config["n_experts"] <= 1:
        return []
    # granularity first: where the search varies it, the expert count follows it (n_experts = expansion x G)
    for key, option in (("granularity", "--granularity-max"), ("n_experts", "--experts-max")):
        top = max(getattr(c, key) for c in choices)
        if top > 1 and config[key] >= top:
            return [f"{key} {config[key]} is the largest the search tried ({option} bounds it): read it as "
                    "'at least' that many; the law's optimum may lie beyond"]
    return []


def search_bounds(runs: pd.DataFrame, law: str) -> dict[str, float]:
    """Upper bounds for the optimum searches (``optimum`` options): the fitted runs' largest expert count (joint
    law) or granularity (granularity law), so a recommendation uses no expert count or granularity nobody trained
    (the report and the demo search within them)."""
    column, option = {"joint": ("n_experts", "experts_max"), "granularity": ("granularity", "granularity_max")}.get(
        law, (None, None))
    if column is None or column not in runs.columns or not runs[column].notna().any():
        return {}
    return {option: float(runs[column].max())}


def _past_term_reach(term, compute: float, config: dict | None) -> list[str]:
    """A warning when the budget (or the recommended n_active, for terms measured in n_active) lies past the
    distances the discrepancy term was learned from."""
    point = {"compute": compute, **({"n_active": float(config["n_active"])} if config else {})}
    if term is None or term.scale_column not in point:
        return []
    frame = pd.DataFrame([point])
    if not term.past_reach(frame)[0]:
        return []
    return [term.reach_warning(float(term.distance(frame)[0]), subject="this budget")]


def heldout_points(posterior) -> list[tuple[float, float, str]]:
    """(distance past the fitted compute, |median prediction - observed| in nats, run_id) of each held-out run."""
    heldout = getattr(posterior, "heldout", None)
    runs = fitted_runs(posterior)
    if heldout is None or runs is None or not len(heldout):
        return []
    pred = posterior.predict(heldout)
    distance = heldout["compute"].to_numpy(float) / runs["compute"].max()
    error = np.abs(pred["q50"].to_numpy(float) - pred["observed"].to_numpy(float))
    return list(zip(distance.tolist(), error.tolist(), heldout["run_id"].astype(str).tolist()))


#: held-out runs within this ln distance of the nearest one are scored together (one isoFLOP level).
HELDOUT_LEVEL_LN = 0.1


def _heldout_check(heldout: list[tuple[float, float, str]], factor: float) -> dict:
    """The held-out run nearest ``factor`` (``run_id``, ``distance``, ``abs_error``) and, over every held-out run
    at about that distance (one level), ``n_runs``, ``median_abs_error`` and the worst run."""
    d, err, run = min(heldout, key=lambda h: abs(np.log(h[0]) - np.log(factor)))
    level = [h for h in heldout if abs(np.log(h[0]) - np.log(d)) <= HELDOUT_LEVEL_LN]
    worst = max(level, key=lambda h: h[1])
    return {"run_id": run, "distance": d, "abs_error": err, "n_runs": len(level),
            "median_abs_error": float(np.median([h[1] for h in level])), "max_abs_error": worst[1],
            "max_run_id": worst[2]}


def decide(
    posterior,
    budgets: Sequence[float],
    *,
    family: str | None = None,
    group: str | None = None,
    expansion: float | None = None,
    objective: str = "compute",
    options: dict | None = None,
    prob: float = 0.9,
    epsilon: float = 0.005,
    discrepancy: bool = True,
    seed: int = 0,
) -> tuple[dict, list[dict]]:
    """(conventions, one dict per budget) for a fit or a published set (module doc).

    Args:
        posterior: a :class:`~bayesmoe.inference.Fit` or :class:`~bayesmoe.decide.optimum.PointPosterior`.
        budgets: training FLOPs (B,).
        family: ``"runs"``, ``"paper"`` or None (runs when the fitted table has d_model and n_layers).
        group: hierarchical fits: None (population mean), a fitted group or a new label.
        expansion: the granularity law's expansion rate (None: from the runs, see :func:`resolve_expansion`).
        options: optimum options (``memory`` bytes, ``experts_max``, ``granularity_max``).
        discrepancy: add the fit's learned model-discrepancy term (if any) to the ``loss`` bands.
    """
    options = options or {}
    law = posterior.law.name
    searchable = law in LAWS_WITH_CONFIGS and objective != "inference"
    fam = choose_family(posterior, family) if searchable else None
    expansion, source = resolve_expansion(posterior, expansion)
    conv = conventions(posterior, fam, expansion, source, group)
    term = getattr(posterior, "discrepancy", None) if discrepancy else None
    conv["discrepancy"] = (
        f"included in the loss bands: {term.formula(3)} on log loss past the fitted runs "
        "(learned by bayesmoe validate)"
        if term is not None
        else "left out (--no-discrepancy)"
        if not discrepancy
        else "none learned for this fit (bayesmoe validate FIT learns one): bands assume the law's form holds"
    )
    runs = fitted_runs(posterior)
    largest = float(runs["compute"].max()) if runs is not None else None
    heldout = heldout_points(posterior)
    if not searchable:
        conv["notes"].append(
            f"no trainable configurations for law '{law}' with --objective {objective} "
            f"(searched for {', '.join(LAWS_WITH_CONFIGS)} under compute and memory objectives)"
        )
        choices = None
    else:
        choices = law_choices(
            law,
            expansion=expansion,
            experts_max=float(options.get("experts_max", 64)),
            granularity_max=float(options.get("granularity_max", 64)),
        )
    theta = posterior.draws(group)
    size = len(next(iter(theta.values())))
    if size > MAX_DRAWS:
        rows = np.sort(np.random.default_rng(seed).choice(size, MAX_DRAWS, replace=False))
        theta = {k: np.asarray(v)[rows] for k, v in theta.items()}
    likelihood = (getattr(posterior, "meta", {}) or {}).get("likelihood", "student_t")
    with_embedding = conv["n_embedding_in_law"] is not False
    ev = Evaluator(posterior.law, theta, with_embedding=with_embedding, likelihood=likelihood, discrepancy=term)
    out = []
    for b, compute in enumerate(np.asarray(budgets, float)):
        entry: dict = {"compute": float(compute)}
        if choices is not None:
            entry.update(
                recommend_configs(
                    ev,
                    fam,
                    choices,
                    float(compute),
                    prob=prob,
                    epsilon=epsilon,
                    memory=options.get("memory") if objective == "memory" else None,
                    seed=seed + b,
                )
            )
        factor = None if largest is None else compute / largest
        entry["extrapolation"] = factor
        entry["warnings"] = [entry.pop("edge")] if "edge" in entry else []
        if factor is not None and factor > EXTRAPOLATION_WARN:
            entry["warnings"].append(
                f"extrapolation: {compute:.3g} FLOPs is {factor:.3g}x the largest fitted run "
                f"({largest:.3g} FLOPs), past {EXTRAPOLATION_WARN:g}x; the bands assume the law's form holds there"
                + (", up to the discrepancy term's tilt, which widens the bands of sizes and tokens: 10x past our "
                   "own sweep the law-only band missed the best dense size (2.7x above it) and the tilted band "
                   "held it; 30x past it, on runs trained after the tilt was added, both held it"
                   if term is not None and term.tilts is not None else
                   ", and the bands of sizes and tokens are the law's posterior alone (no discrepancy tilt "
                   "learned: bayesmoe validate FIT): 10x past our own sweep such a band missed the best dense "
                   "size, 2.7x above it")
            )
        entry["warnings"] += _beyond_runs(entry.get("config"), runs)
        entry["warnings"] += _at_search_edge(entry.get("config"), choices)
        entry["warnings"] += _past_term_reach(term, float(compute), entry.get("config"))
        if heldout and factor is not None:
            entry["heldout_check"] = _heldout_check(heldout, factor)
        out.append(entry)
    return conv, out
