"""The sections of a report, one builder each. A builder takes a :class:`FitView` (a fit and where
its figures go) and returns a :class:`~bayesmoe.report.html.Section`; numbers a reader needs at a
glance are collected on the view as ``facts``.

Section ids (anchors; a second fit's sections get ``-2``, a third's ``-3``, ...): ``data``,
``model``, ``diagnostics``, ``fit``, ``scaling``, ``decisions``, ``validation`` (:mod:`.validation`); once per
report: ``glance``, ``comparison`` (several fits), ``next-runs`` (with ``design=``) and ``sbc`` (with ``sbc=``,
:mod:`.sbc`).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..decide.compare import compare
from ..decide.decisions import EXTRAPOLATION_WARN, common_expansion, continuous_mismatch, decide, search_bounds
from ..decide.design import DesignResult
from ..decide.experts_by_size import experts_by_size
from ..decide.optimum import optimum
from ..errors import BayesMoeError
from ..inference import Fit, arviz_io
from ..model.numpyro_model import SIGMA_PRIOR_SD, STUDENT_T_NU
from . import arviz_plots, figures, next_runs, scaling
from .html import FigureWriter, Section, badge, definitions, esc, fmt, human, table
from .verdicts import overall, parameter_verdicts, sampler_verdicts

#: Posterior draws used for the scaling picture and the optima (thinned evenly; bands need no more).
MAX_DRAWS = 400
#: Relative excess loss that still counts as near-optimal.
NEAR_OPTIMAL = 0.005
#: Order of optimal quantities in plots and tables (others follow in the optimizer's order).
QUANTITY_ORDER = ("n_active", "n_total", "tokens", "tokens_per_param", "ratio_total_active", "ratio_active_total",
                  "granularity", "n_experts", "top_k", "activated_experts", "shared_ratio", "d_model",
                  "flops_per_token", "ratio_flops_active", "loss")
RUN_COLUMNS = ("run_id", "group", "loss", "compute", "n_active", "n_total", "n_embedding", "tokens", "n_experts",
               "top_k", "granularity", "shared_ratio", "d_model", "n_layers")


@dataclass
class FitView:
    """A fit inside a report: its label, id suffix, figure writer and the facts gathered so far."""

    fit: Fit
    label: str
    suffix: str
    writer: FigureWriter
    budgets: np.ndarray | None = None
    facts: dict = field(default_factory=dict)

    def sid(self, base: str) -> str:
        return f"{base}{self.suffix}"

    def fig(self, base: str) -> str:
        return f"{base}{self.suffix}"

    @property
    def law(self):
        return self.fit.law

    def thinned(self) -> "Thinned":
        return Thinned(self.fit, MAX_DRAWS)


class Thinned:
    """A posterior with at most ``max_draws`` evenly spaced draws, usable wherever ``optimum()`` takes one."""

    def __init__(self, fit: Fit, max_draws: int):
        self.fit, self.law = fit, fit.law
        self.index = np.unique(np.linspace(0, fit.n_draws - 1, min(max_draws, fit.n_draws)).astype(int))

    def draws(self, group: str | None = None, *, seed: int = 0) -> dict[str, np.ndarray]:
        return {k: v[self.index] for k, v in self.fit.draws(group, seed=seed).items()}

    def __getattr__(self, name: str):
        """Everything but the draws (runs, meta, groups, held-out runs, predict) is the fit's."""
        return getattr(self.fit, name)


def _all_runs(fit: Fit) -> pd.DataFrame:
    if fit.heldout is None:
        return fit.runs
    return pd.concat([fit.runs, fit.heldout], ignore_index=True)


def _size_column(fit: Fit) -> str:
    return "n_total" if "n_total" in fit.law.n_counts.split(",")[0] else "n_active"


# -- 1. data -------------------------------------------------------------------------------------------

def data_section(view: FitView) -> Section:
    fit = view.fit
    sel = fit.meta.get("selection", {})
    excluded = []
    if sel.get("where"):
        excluded.append(f"kept only runs matching <code>{esc(sel['where'])}</code> (<code>--where</code>)")
    if sel.get("exclude_top_loss"):
        excluded.append(
            f"dropped the {int(sel['exclude_top_loss'])} highest-loss runs (<code>--exclude-top-loss</code>): "
            "outliers, typically diverged or unfinished runs; they are not in the fit file"
        )
    heldout = fit.heldout
    if heldout is not None and len(heldout):
        ids = ", ".join(esc(r) for r in heldout["run_id"])
        excluded.append(
            f"held out the {len(heldout)} largest-compute runs (<code>--holdout-top-compute</code>) to test "
            f"extrapolation: {ids}; they are marked in red in the plots"
        )
    exclusions = (
        "<ul>" + "".join(f"<li>{e}</li>" for e in excluded) + "</ul>" if excluded else "<p>No runs were excluded.</p>"
    )
    runs = _all_runs(fit)
    size = _size_column(fit)
    colour = figures.colour_column(runs)
    caption = (f"Each point is a run: compute against {size}"
               + (f", coloured by {colour}" if colour else "") + "; red diamonds: held-out runs.")
    fig = view.writer.add(view.fig("runs"), figures.runs_overview(fit.runs, heldout, size), caption)
    shown = runs[[c for c in RUN_COLUMNS if c in runs.columns]].copy()
    if heldout is not None and len(heldout):
        shown.insert(1, "used", ["fitted"] * len(fit.runs) + ["held out"] * len(heldout))
    summary = (f"<p><b>{len(fit.runs)}</b> runs fitted from <code>{esc(fit.meta.get('source', '?'))}</code>, "
               f"compute {fmt(runs['compute'].min(), 3)} to {fmt(runs['compute'].max(), 3)} FLOPs, "
               f"loss {runs['loss'].min():.3f} to {runs['loss'].max():.3f} nats.</p>")
    body = (summary + "<h3>Exclusions</h3>" + exclusions + fig + "<h3>Runs</h3>"
            + table(shown.set_index("run_id"), scroll=True))
    return Section(view.sid("data"), f"1. Data{_tag(view)}", body)


def _tag(view: FitView) -> str:
    return f" ({view.label})" if view.suffix else ""


# -- 2. law, priors, settings --------------------------------------------------------------------------

def model_section(view: FitView) -> Section:
    fit, law, meta = view.fit, view.fit.law, view.fit.meta
    priors = pd.DataFrame({"prior": meta["prior_text"]}).rename_axis("site")
    settings = meta.get("settings", {})
    groups = ", ".join(meta.get("groups", [])) or "none (one set of parameters)"
    items = [
        ("law", f"<b>{esc(law.name)}</b>: {esc(law.title)}"),
        ("source", esc(law.citation)),
        ("what N counts", esc(law.n_counts)),
        ("constants", esc(", ".join(f"{k} = {v:g}" for k, v in meta.get("constants", {}).items()) or "none")),
        ("priors centred on", esc(meta.get("prior_set") or "the law's default weakly-informative priors")),
        (
            "likelihood",
            esc(
                f"{meta.get('likelihood')} on log loss"
                + (f" (nu = {meta.get('student_t_nu'):g})" if meta.get("likelihood") == "student_t" else "")
            ),
        ),
        (
            "partial pooling",
            esc(
                f"groups from column '{meta.get('group_column')}': {groups}; pooled: "
                f"{', '.join(meta.get('pooled', [])) or '-'}"
                if meta.get("group_column")
                else "none"
            ),
        ),
        ("sampler", esc(", ".join(f"{k} {v}" for k, v in settings.items()))),
        ("sampling time", esc(f"{meta.get('sampling_seconds', '?')} s")),
        ("data hash", f"<code>{esc(meta.get('data_hash', '?'))}</code>"),
        ("created", esc(meta.get("created", "?"))),
        ("versions", esc(", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items()))),
    ]
    if fit.path is not None:
        items.insert(0, ("fit file", f"<code>{esc(fit.path)}</code>"))
    body = (f"<pre>{esc(law.formula)}</pre>"
            + (f'<p class="note">{esc(law.notes)}</p>' if law.notes else "")
            + definitions(items) + "<h3>Priors (latent scale: log for coefficients)</h3>" + table(priors))
    return Section(view.sid("model"), f"2. Law, priors and settings{_tag(view)}", body)


# -- 3. diagnostics ------------------------------------------------------------------------------------

def _diagnostic_sites(fit: Fit) -> list[str]:
    names = [p.latent for p in fit.law.params if p.latent in fit.idata.posterior]
    names += [f"{fit.law.param(n).latent}_tau" for n in fit.pooled]
    return names + ["sigma"]


def _prior_draws(fit: Fit, site: str, n: int, rng: np.random.Generator) -> np.ndarray | None:
    if site == "sigma":
        return np.abs(rng.normal(0.0, SIGMA_PRIOR_SD, n))
    for p in fit.law.params:
        if p.latent == site and p.name in fit.meta["priors"]:
            loc, sd, low, high = fit.meta["priors"][p.name]
            a = -np.inf if low is None else (low - loc) / sd
            b = np.inf if high is None else (high - loc) / sd
            return stats.truncnorm(a, b, loc=loc, scale=sd).rvs(n, random_state=rng)
    return None


def diagnostics_section(view: FitView) -> Section:
    fit = view.fit
    params = parameter_verdicts(fit.summary(), fit.chains)
    loo = arviz_io.loo(fit.idata)
    view.facts["loo"] = loo
    sampler = sampler_verdicts(divergences=fit.divergences, n_draws=fit.n_draws, bfmi=arviz_io.bfmi(fit.idata),
                               pareto_k=np.asarray(loo.pareto_k), run_ids=fit.runs["run_id"].astype(str).tolist())
    worst = overall([*params["verdict"], *(v.level for v in sampler)])
    view.facts["diagnostics"] = worst
    headline = {"ok": "The sampler converged: the numbers below can be used.",
                "check": "Usable, but read the flagged rows before deciding.",
                "bad": "Do not use these numbers yet: fix the problems flagged below and refit."}[worst]
    rows = "".join(f"<tr><td class=text>{esc(v.topic)}</td><td class=text>{badge(v.level)}</td>"
                   f"<td class=text>{esc(v.finding)}</td><td class=text>{esc(v.action)}</td></tr>" for v in sampler)
    sampler_table = (
        "<table><thead><tr><th class=text>check</th><th class=text>verdict</th><th class=text>finding</th>"
        f"<th class=text>what to do</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    shown = params[["mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk", "ess_tail"]].copy()
    shown["verdict"] = [badge(v) for v in params["verdict"]]
    shown["what to do"] = [esc(a) for a in params["action"]]
    shown.index.name = "parameter"
    sites = _diagnostic_sites(fit)
    rank = view.writer.add(view.fig("rank"), arviz_plots.plot_rank(fit.idata, sites),
                           "Rank plots (latent scale): each chain's histogram of draw ranks should be flat; "
                           "a slope or hump means the chains explore different regions.")
    trace = view.writer.add(view.fig("trace"), arviz_plots.plot_trace(fit.idata, sites),
                            "Traces (latent scale): left, the posterior density per chain; right, the draws; "
                            "black ticks at the bottom mark divergent transitions.")
    rng = np.random.default_rng(0)
    pairs = {}
    for site in sites:
        prior = _prior_draws(fit, site, 4000, rng)
        if prior is not None:
            pairs[site] = (fit._flat(site), prior)
    pp = view.writer.add(
        view.fig("prior-posterior"),
        figures.prior_posterior(pairs),
        "Prior (dashed) vs posterior (filled) on the sampled scale. A posterior much narrower than its "
        "prior was learned from the runs; one that looks like its prior was not.",
    )
    body = (f"<p>{badge(worst)} {esc(headline)}</p>" + sampler_table
            + "<h3>Per parameter (natural scale)</h3>" + table(shown, raw=("verdict", "what to do"))
            + rank + trace + pp)
    return Section(view.sid("diagnostics"), f"3. Diagnostics{_tag(view)}", body)


# -- 4. fit --------------------------------------------------------------------------------------------

def _posterior_predictive_log(fit: Fit) -> np.ndarray:
    """Predictive draws of log loss at the fitted runs, shape (run, sample), chain-major samples."""
    log_mean = fit.log_mean(fit.runs)
    rng = np.random.default_rng(1)
    eps = (
        rng.standard_t(STUDENT_T_NU, log_mean.shape)
        if fit.meta["likelihood"] == "student_t"
        else rng.standard_normal(log_mean.shape)
    )
    return (log_mean + fit.draws()["sigma"][:, None] * eps).T


def fit_section(view: FitView) -> Section:
    fit = view.fit
    runs = _all_runs(fit)
    pred50, pred90 = fit.predict(runs, prob=0.5), fit.predict(runs, prob=0.9)
    heldout_ids = set(fit.heldout["run_id"].astype(str)) if fit.heldout is not None else set()
    held = pred90["run_id"].astype(str).isin(heldout_ids).to_numpy()
    obs = pred90["observed"].to_numpy(float)
    in90 = (obs >= pred90["q05"]) & (obs <= pred90["q95"])
    in50 = (obs >= pred50["q25"]) & (obs <= pred50["q75"])
    lines = [f"Fitted runs inside their 50% / 90% predictive intervals: <b>{in50[~held].mean():.0%}</b> / "
             f"<b>{in90[~held].mean():.0%}</b> (calibrated: about 50% / 90%)."]
    if held.any():
        err = np.abs(obs[held] - pred90["q50"].to_numpy(float)[held])
        lines.append(
            f"Held-out runs (never fitted): <b>{in90[held].sum()} of {held.sum()}</b> inside their 90% interval; "
            f"median absolute error {np.median(err):.4f} nats, largest {err.max():.4f}."
        )
        view.facts["heldout"] = (int(in90[held].sum()), int(held.sum()), float(err.max()))
    view.facts["coverage90"] = float(in90[~held].mean())
    ppc = view.writer.add(view.fig("ppc"), figures.predictive_check(pred50, pred90, heldout_ids),
                          "Each run: observed loss (x) against its posterior predictive median (dot), 50% (thick) and "
                          "90% (thin) intervals. Points on the dashed line are predicted exactly.")
    resid = view.writer.add(
        view.fig("residuals"),
        figures.residuals(runs["compute"].to_numpy(float), pred90, heldout_ids),
        "Observed minus predicted median, with the 90% predictive interval. A trend with compute "
        "means the law misses something that will grow when extrapolating.",
    )
    loo = view.facts["loo"] if "loo" in view.facts else arviz_io.loo(fit.idata)
    lp = view.writer.add(
        view.fig("loo"),
        figures.loo_panels(fit.idata, loo, _posterior_predictive_log(fit)),
        "Left: Pareto k of each fitted run's leave-one-out weights. Right: LOO-PIT, the difference between "
        "the empirical CDF of leave-one-out predictive percentiles and a uniform CDF; inside the band "
        "the predictive intervals are calibrated.",
    )
    body = "<p>" + "<br>".join(lines) + f'</p><div class="row">{ppc}{resid}</div>{lp}'
    return Section(view.sid("fit"), f"4. Fit to the runs{_tag(view)}", body)


# -- 5. scaling picture --------------------------------------------------------------------------------

def scaling_section(view: FitView) -> Section:
    fit = view.fit
    runs = fit.runs
    every = scaling.architectures(runs, max_families=len(runs))
    families = every[:4]
    theta = view.thinned().draws()
    levels = scaling.budget_levels(runs)
    n_opt = np.sqrt(levels / (families[0].flops_ratio * 20.0))
    n_grid = np.geomspace(
        min(runs["n_active"].min(), n_opt.min()) / 3, max(runs["n_active"].max(), n_opt.max()) * 3, 80
    )
    panels = []
    for arch in families:
        members = scaling.members(runs, arch)
        observed = [members[(members["compute"] >= c / 1.3) & (members["compute"] <= c * 1.3)] for c in levels]
        panels.append(
            (f"{arch.label()}: {arch.n_runs} runs", scaling.loss_grid(fit.law, theta, arch, levels, n_grid), observed)
        )
    iso = view.writer.add(
        view.fig("isoflop"),
        figures.isoflop(levels, n_grid, panels),
        "Mean loss (posterior median, 50% and 90% bands) against active size at fixed training compute, "
        "one panel per architecture among the runs; the minimum of each curve is the compute-optimal size. "
        "Points: that architecture's runs within a factor 1.3 of the budget.",
    )
    best = scaling.best_architecture(fit.law, theta, families, runs["compute"].max())
    view.facts["architecture"] = best
    compute = np.geomspace(runs["compute"].min(), runs["compute"].max() * 1e3, 30)
    front = scaling.frontier(fit.law, theta, best, compute, tolerance=NEAR_OPTIMAL)
    fr = view.writer.add(
        view.fig("frontier"),
        figures.frontier(compute, front.loss, runs, fit.heldout),
        f"Lowest mean loss reachable at each compute with the best observed architecture ({esc(best.label())}; "
        "best active size per posterior draw): median, 50% and 90% bands. Right of the dotted line the law "
        "extrapolates.",
    )
    shown = "" if len(families) == len(every) else f" of {len(every)} (the most common shown)"
    body = (
        f"<p>{len(families)} architecture famil{'y' if len(families) == 1 else 'ies'}{shown}; runs of a family differ "
        f"only in size, and are trained with C = {families[0].flops_ratio:.3g} &middot; Na &middot; D. "
        f"Best at the largest fitted budget: <b>{esc(best.label())}</b>.</p>" + iso + fr
    )
    return Section(view.sid("scaling"), f"5. Scaling picture{_tag(view)}", body)


# -- 6. decisions --------------------------------------------------------------------------------------

def default_budgets(runs: pd.DataFrame) -> np.ndarray:
    """Budgets of the recommendation table: the decade above the largest run and three more decades."""
    start = np.ceil(np.log10(runs["compute"].max()))
    return 10.0 ** np.arange(start, start + 4)


def _ordered(draws: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Quantities to show: the order of docs/cli.md first; those constant over every draw and budget, or equal to
    one already shown, are left out."""
    names = [k for k in QUANTITY_ORDER if k in draws] + [k for k in draws if k not in QUANTITY_ORDER]
    out: dict[str, np.ndarray] = {}
    for name in names:
        values = np.asarray(draws[name], float)
        finite = values[np.isfinite(values)]
        if finite.size == 0 or np.ptp(finite) <= 1e-12 * max(1.0, np.abs(finite).max()):
            continue
        if any(v.shape == values.shape and np.allclose(v, values, equal_nan=True) for v in out.values()):
            continue
        out[name] = values
    return out


#: Quantities in the recommendation table (the plots show every quantity the optimizer returns).
TABLE_QUANTITIES = ("n_active", "n_total", "tokens", "tokens_per_param", "granularity", "n_experts", "top_k",
                    "activated_experts", "shared_ratio", "d_model", "loss")


def _interval(values: np.ndarray) -> str:
    q = np.nanquantile(values, [0.05, 0.5, 0.95])
    return f"{human(q[1])} [{human(q[0])}, {human(q[2])}]"


def decisions_section(view: FitView) -> Section:
    fit = view.fit
    runs = fit.runs
    if fit.law.name == "routing":
        return _routing_decisions(view)
    table_budgets = np.asarray(view.budgets if view.budgets is not None else default_budgets(runs), float)
    wide = np.geomspace(
        min(runs["compute"].min(), table_budgets.min()), max(runs["compute"].max(), table_budgets.max()) * 10, 25
    )
    posterior = view.thinned()
    expansion = common_expansion(runs) if fit.law.name == "granularity" else None
    options = ({"expansion": expansion} if expansion else {}) | search_bounds(runs, fit.law.name)
    try:
        curve = optimum(posterior, wide, **options)
        at = optimum(posterior, table_budgets, **options)
    except BayesMoeError as exc:
        body = (f'<p class="note">No decisions for this fit: {esc(exc)}. The scaling picture above still shows the '
                "loss at every size and budget.</p>")
        return Section(view.sid("decisions"), f"6. Decisions{_tag(view)}", body)
    first = table_budgets[0]
    body_decision, decided = _trainable_table(posterior, table_budgets)
    config = decided[0].get("config") if decided else None
    ratio = None
    if config is not None and "n_active" in at.draws:
        ratio = continuous_mismatch(np.nanmedian(at.draws["n_active"][:, 0]), config["n_active"])
    if ratio is not None:   # the law's published architecture is not the runs' family: its sizes would mislead
        bands = decided[0]["optimal_config_bands"]
        view.facts["recommendation"] = (first, {
            k: f"{human(bands[k]['q50'])} [{human(bands[k]['q05'])}, {human(bands[k]['q95'])}]"
            for k in ("n_active", "tokens", "n_experts", "granularity") if k in bands})
        body = (body_decision
                + f'<p class="note">The law\'s continuous optimum (its published architecture, real-valued sizes) is '
                  f"not shown: its active size at {fmt(first, 3)} FLOPs is {ratio:.2g}x the recommended run's, so "
                  "that architecture does not describe this family (it stays in <code>optimum --json</code>). "
                  "Act on the trainable configurations above.</p>")
        return Section(view.sid("decisions"), f"6. Decisions{_tag(view)}", body)
    shown = _ordered(curve.draws)
    arch = view.facts["architecture"] if "architecture" in view.facts else scaling.architectures(runs)[0]
    front = scaling.frontier(fit.law, posterior.draws(), arch, wide, tolerance=NEAR_OPTIMAL)
    near = (np.nanmedian(front.near_lo, axis=0), np.nanmedian(front.near_hi, axis=0))
    fig = view.writer.add(
        view.fig("decisions"),
        figures.decisions(wide, shown, near, runs["compute"].max(), NEAR_OPTIMAL),
        f"Compute-optimal configuration from the law's optimizer (objective: compute): posterior median and "
        f"50%/90% bands. Orange dashed lines on the active-size panel: the near-optimal band, sizes whose loss is "
        f"within {NEAR_OPTIMAL:.1%} of the best for the best observed architecture ({esc(arch.label())}, "
        f"C = {arch.flops_ratio:.3g} Na D, posterior median). Dotted: largest fitted run.",
    )
    keep = [k for k in _ordered(at.draws) if k in shown and k in TABLE_QUANTITIES] or list(shown)
    near_at = scaling.frontier(fit.law, posterior.draws(), arch, table_budgets, tolerance=NEAR_OPTIMAL)
    rows = []
    for b, c in enumerate(table_budgets):
        row = {"compute (FLOPs)": fmt(c, 3)}
        row.update({figures.QUANTITY_LABELS.get(k, k): _interval(at.draws[k][:, b]) for k in keep if k in at.draws})
        row[f"Na within {NEAR_OPTIMAL:.1%} of best loss"] = (f"{human(np.median(near_at.near_lo[:, b]))} - "
                                                             f"{human(np.median(near_at.near_hi[:, b]))}")
        rows.append(row)
    recommended = pd.DataFrame(rows).set_index("compute (FLOPs)")
    headline = {
        k: _interval(at.draws[k][:, 0])
        for k in ("n_active", "tokens", "granularity", "n_experts")
        if k in at.draws and k in keep
    }
    view.facts["recommendation"] = (first, headline)
    body = (
        "<p>Continuous optimum (the law's published architecture, real-valued sizes; not a trainable "
        "configuration): median and 90% interval <code>median [q05, q95]</code> of each optimal "
        "quantity (K, M, B, T: thousand, million, billion, trillion). Extrapolation beyond the fitted runs "
        "widens the intervals; trust the width, not only the median.</p>"
        + table(recommended, index=True)
        + body_decision
        + fig
    )
    return Section(view.sid("decisions"), f"6. Decisions{_tag(view)}", body)


def _trainable_table(posterior, budgets: np.ndarray) -> tuple[str, list[dict]]:
    """(HTML, decisions): the trainable configuration per budget (:func:`bayesmoe.decide.decisions.decide`,
    one dict per budget), its conventions, extrapolation factor and warnings; a note (and no decisions) when
    the law has none."""
    expansion = common_expansion(posterior.runs) if posterior.law.name == "granularity" else None
    bounds = search_bounds(posterior.runs, posterior.law.name)
    try:
        conv, rows = decide(posterior, budgets, expansion=expansion, epsilon=NEAR_OPTIMAL, options=bounds)
    except BayesMoeError as exc:
        return f'<p class="note">No trainable configurations: {esc(exc)}.</p>', []
    out, warned = [], []
    for row in rows:
        warned += row["warnings"]
        if "config" not in row:
            continue
        c = row["config"]
        moe = f"{c['n_experts']} experts, top-{c['top_k']}, G {c['granularity']}" if c["n_experts"] > 1 else "dense"
        versus = row.get("moe_vs_dense", {}).get("p_moe_beats_dense")
        out.append({
            "compute (FLOPs)": fmt(row["compute"], 3), "x largest run": fmt(row["extrapolation"], 3),
            "layers x d_model (heads)": f"{c['n_layers']} x {c['d_model']} ({c['n_heads']})", "experts": moe,
            "tokens": f"{c['tokens']:.3g}", "N active / total": f"{c['n_active']:.3g} / {c['n_total']:.3g}",
            "loss [90%]": f"{c['loss']['q50']:.3f} [{c['loss']['q05']:.3f}, {c['loss']['q95']:.3f}]",
            "expected regret (nats)": f"{c['expected_regret']:.4f}",
            "P(MoE run beats dense run)": "-" if versus is None else f"{versus:.2f}",
        })
    if not out:
        return "".join(f'<p class="note">{esc(n)}</p>' for n in conv["notes"]), rows
    fam = conv["family"]
    if "expansion_rate" in conv:
        conv["expansion_rate"]["source"] = conv["expansion_rate"]["source"].replace(
            "--expansion", "the most common rate of the fitted MoE runs:", 1)
    notes = conv["notes"] + ([f"expansion rate {conv['expansion_rate']['value']:g}: {conv['expansion_rate']['source']}"]
                             if "expansion_rate" in conv else [])
    notes += [f"search bounded by the fitted runs: {name.replace('_', ' ')} {value:g}"
              for name, value in bounds.items()]
    lo, hi = fam["aspect_ratio"]
    return ("<h3>Trainable configurations</h3><p>What to train: the integer configuration with the least expected "
            f"loss in the family '{esc(fam['name'])}' (d_model / n_layers {lo:g}-{hi:g}, head dimension "
            f"{fam['head_dim']}, vocabulary {fam['vocab_size']}, FLOPs {esc(fam['flop_model'])}); loss: the "
            "posterior predictive band of one run; regret against each draw's continuous optimum in the family. "
            f"Dense means {esc(conv['dense'])}. Bands describe {esc(conv['parameters'])}.</p>"
            + "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
            + "".join(f'<p class="note"><b>Warning:</b> {esc(w)}</p>' for w in dict.fromkeys(warned))
            + table(pd.DataFrame(out).set_index("compute (FLOPs)"))), rows


def _routing_decisions(view: FitView) -> Section:
    """The routing law's question (fixed training length): the best expert count by active size, per router."""
    fit, posterior = view.fit, view.thinned()
    top = float(fit.runs["n_active"].max())
    sizes = np.array([float(fit.runs["n_active"].min()), top, 10 * top, 100 * top])
    rows, crossings = [], []
    for group in fit.groups or (None,):
        result = experts_by_size(posterior.draws(group), sizes)
        label = group or "all runs"
        crossings.append(f"{esc(label)}: {_band_text(result['crossover_n_active'])}")
        for row in result["n_active"]:
            rows.append({
                "router": label, "N active": f"{row['n_active']:.3g}", "x largest run": f"{row['n_active'] / top:.3g}",
                "best n_experts [90%]": _band_text(row["best_n_experts"], "{:.0f}"),
                "effective parameter multiplier": _band_text(row["effective_multiplier"]),
                "P(experts help)": f"{row['p_experts_help']:.2f}",
            })
    body = ("<p>Clark et al.'s law fixes the training length, so it answers which expert count to use at a given "
            "active size N, not how to split a compute budget (<code>bayesmoe optimum FIT --n-active N</code>). "
            "Per router (fitted group): the best expert count among powers of two up to 512, the dense N with the "
            f"same loss over N, and P(some routed model beats dense). Past {EXTRAPOLATION_WARN:g}x the largest "
            "fitted N the law is extrapolated.</p>" + table(pd.DataFrame(rows).set_index("router"))
            + "<p>Experts stop paying beyond N = " + "; ".join(crossings) + " (median [90%]).</p>")
    return Section(view.sid("decisions"), f"6. Decisions{_tag(view)}", body)


def _band_text(q: dict, pattern: str = "{:.3g}") -> str:
    """``median [lo, hi]`` of a band dict (``-`` where it is empty)."""
    lo, mid, hi = q.values()
    if mid is None or mid != mid:
        return "-"
    return f"{pattern.format(mid)} [{pattern.format(lo)}, {pattern.format(hi)}]"


# -- 7. comparison -------------------------------------------------------------------------------------

def comparison_section(views: list[FitView]) -> tuple[Section, pd.DataFrame | None]:
    """The LOO comparison section and its table (None when the fits cannot be compared)."""
    try:
        table_frame = compare_table(views)
    except BayesMoeError as exc:
        body = f'<p class="note">No comparison: {esc(exc)}.</p>'
        return Section("comparison", "8. Comparing the fits", body), None
    best = table_frame.index[0]
    body = (
        f"<p>Ranked by expected log predictive density (PSIS-LOO; higher is better). <b>{esc(best)}</b> predicts "
        "left-out runs best. <code>elpd_diff</code> is the gap to the best with its standard error <code>dse</code>: "
        "a gap under about two <code>dse</code> is not a clear difference. Stacking weights say how to average the "
        "fits' predictions. Runs with Pareto k > 0.7 make a fit's LOO estimate unreliable.</p>" + table(table_frame)
    )
    return Section("comparison", "8. Comparing the fits", body), table_frame


def compare_table(views: list[FitView]) -> pd.DataFrame:
    """:func:`bayesmoe.decide.compare.compare` as a table, one row per fit (labelled as in the report), best first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # high Pareto k is reported in the table itself
        rows = compare([v.fit for v in views])
    labels = {(str(v.fit.path) if v.fit.path is not None else None): v.label for v in views}
    frame = pd.DataFrame(rows)
    frame["fit"] = [labels.get(f, f) for f in frame["fit"]]
    return frame.set_index("fit")


# -- at a glance ---------------------------------------------------------------------------------------

def glance_section(views: list[FitView], comparison: pd.DataFrame | None) -> Section:
    items = []
    for v in views:
        fit = v.fit
        parts = [
            f"{badge(v.facts.get('diagnostics', 'check'))} <b>{esc(v.label)}</b>: law "
            f"<code>{esc(fit.law.name)}</code>, "
            f"{len(fit.runs)} runs, {fit.chains} chains x {fit.n_draws // fit.chains} draws, {fit.divergences} "
            "divergences"
        ]
        if "coverage90" in v.facts:
            parts.append(f"{v.facts['coverage90']:.0%} of runs inside their 90% predictive interval")
        if "heldout" in v.facts:
            inside, total, worst = v.facts["heldout"]
            parts.append(f"held-out runs: {inside}/{total} inside 90%, worst error {worst:.3f} nats")
        if v.facts.get("validated") is False:
            parts.append("bands not validated past the data (<code>bayesmoe validate FIT</code>)")
        elif "calibration" in v.facts and "with_discrepancy" in v.facts["calibration"]:
            cal = v.facts["calibration"]
            count = cal["with_discrepancy"]["count"]
            parts.append(f"past the data: {cal['with_discrepancy']['coverage']:.0%} of {cal['n_runs']} held-out runs "
                         f"inside 90% with the learned law error ({cal['law_only']['coverage']:.0%} law-only); the "
                         f"band's joint predictive expects {count['range'][0]}-{count['range'][1]} of them: "
                         + ("consistent" if count["consistent"] else "<b>not consistent</b>"))
        if "recommendation" in v.facts:
            c, rec = v.facts["recommendation"]
            text = "; ".join(f"{figures.QUANTITY_LABELS.get(k, k)} {val}" for k, val in rec.items())
            parts.append(f"at C = {fmt(c, 3)}: {esc(text)} (median [90%])")
        items.append("<li>" + "; ".join(parts) + ".</li>")
    body = "<ul>" + "".join(items) + "</ul>"
    if comparison is not None:
        body += (f"<p>Best-predicting fit by LOO: <b>{esc(comparison.index[0])}</b> (stacking weight "
                 f"{comparison['weight'].iloc[0]:.2f}).</p>")
    body += (
        '<p class="note">Verdicts: <span class="badge ok">ok</span> trust it, <span class="badge check">check</span> '
        'read the flagged rows, <span class="badge bad">bad</span> refit before using.</p>'
    )
    return Section("glance", "At a glance", body)


# -- next runs (design hook) ---------------------------------------------------------------------------

def next_runs_section(design_result: DesignResult, writer: FigureWriter) -> Section:
    """Wrap :func:`.next_runs.next_runs_section` (design_result) -> (title, html, figures)."""
    title, fragment, figs = next_runs.next_runs_section(design_result)
    parts = [fragment]
    for name, fig in figs.items():
        slug = re.sub(r"[^a-z0-9_-]+", "-", str(name).lower()).strip("-") or "figure"
        parts.append(writer.add(f"next-runs-{slug}", fig, esc(name)))
    return Section("next-runs", title, "".join(parts))
