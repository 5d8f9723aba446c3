"""Report section "Past the data": how the law's error grows beyond the fitted runs (issue 20).

Built from what ``bayesmoe validate FIT`` stored in the fit (:mod:`bayesmoe.decide.validate`): the
forward-chaining summary (refits on the smaller runs predicting the next one and two scale levels), the
learned discrepancy term (per run ``sd = s0 + s1 d``, plus a shift ``t d`` shared by the runs of one prediction,
``d = max(0, ln(scale / largest fitted))``; past the chaining's reach a further slope drawn from the prior,
:mod:`bayesmoe.inference.discrepancy`) and, when the fit held
runs out (``fit --holdout-top-compute K``), those runs scored with the law-only band and with the term.
A fit that was never validated gets one paragraph saying what its bands assume and how to check them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from ..decide.validate import calibration
from ..inference import Fit
from ..inference.discrepancy import Discrepancy
from .figures import WIDTH
from .html import Section, esc, table
from .sections import FitView, _tag

#: Central interval probability of the section's bands.
PROB = 0.9


def validation_section(view: FitView) -> Section:
    """Section ``validation``: forward-chaining errors, the discrepancy term, the held-out calibration."""
    fit = view.fit
    term, meta = fit.discrepancy, fit.meta.get("validation")
    title = f"7. Past the data{_tag(view)}"
    if term is None:
        body = ("<p>Not validated past the data. The bands above assume the law's form holds exactly beyond the "
                "fitted runs (their only noise is the per-run scatter). <code>bayesmoe validate FIT</code> refits "
                "the law on the smaller runs, predicts the larger ones, and learns how the law's own error grows "
                "with the distance past the data; <code>predict</code>, <code>optimum</code> and this report then "
                "widen their bands by it.</p>")
        view.facts["validated"] = False
        return Section(view.sid("validation"), title, body)
    view.facts["validated"] = True
    unit = " FLOPs" if term.scale_column == "compute" else ""
    parts = [
        f"<p>Law error learned by forward chaining ({term.n_errors} predicted runs): on log loss, "
        f"<b>sd = {term.s0:.4f} + {term.s1:.4f} &times; ln({esc(term.scale_column)} / {term.reference:.3g}{unit})</b> "
        "per run past the largest fitted run (0 inside the runs)"
        + (f", plus a shift <b>{term.t:.4f} &times; ln(...)</b> shared by the runs of one prediction (a law "
           "extrapolated one step errs alike for the runs there)" if term.t else "")
        + (" (posterior means; the bands average over the posterior of the three)" if term.draws is not None else "")
        + (f"; the prior's scale was learned from the errors: {term.prior_sd:.4f} (posterior mean; "
           "<code>--prior-scale learned</code>)" if term.scale_learned else "")
        + ". Bands of <code>predict</code>, <code>optimum</code> and the "
        "sections above include it; <code>--no-discrepancy</code> gives the law-only band."
        + (f" It was learned from errors up to ln distance <b>{term.max_distance:.2f}</b> "
           f"({np.exp(term.max_distance):.3g}x the refits' largest {esc(term.scale_column)}). Past that reach no "
           "error measured its growth: the sd grows by a further slope drawn from the prior, "
           f"HalfNormal({term.prior_sd:.2g}) per ln unit, and <code>predict</code> and <code>optimum</code> say so "
           "(<code>bayesmoe validate --ahead K</code> chains farther)." if term.max_distance is not None else "")
        + "</p>"
    ]
    if meta and meta.get("ahead"):
        rows = pd.DataFrame([
            {"levels past the data": int(k), "predicted runs": v["n_runs"],
             f"law-only {PROB:.0%} coverage": f"{v['coverage']:.0%}",
             "median |relative error|": f"{v['median_abs_rel_error']:.2%}"}
            for k, v in sorted(meta["ahead"].items(), key=lambda kv: int(kv[0]))
        ])
        parts.append("<h3>Forward chaining within the fitted runs</h3>" + table(rows, index=False))
    errors = pd.DataFrame(meta.get("errors", [])) if meta else pd.DataFrame()
    if len(errors):
        parts.append(view.writer.add(
            view.fig("chaining"), chaining_figure(errors, term),
            f"Forward chaining: each refit's error on the runs one or more levels past its data (log loss, "
            f"observed minus predicted median) against the distance past them. Grey: the {PROB:.0%} band of the "
            "learned discrepancy term with the median law-only sd; points outside it are errors the law-only "
            "band would not cover."))
    held = calibration(fit, prob=PROB)
    if held is not None:
        rows = pd.DataFrame([
            {"band": name.replace("_", " "), f"{PROB:.0%} coverage": f"{held[name]['coverage']:.0%}",
             "median |relative error|": f"{held[name]['median_abs_rel_error']:.2%}", "R^2": held[name]["r2"],
             "covered / its joint predictive's 90% range": _count_cell(held[name]["count"])}
            for name in ("law_only", "with_discrepancy") if name in held
        ])
        view.facts["calibration"] = held
        parts.append(f"<h3>The {held['n_runs']} held-out runs (never fitted, never chained)</h3>"
                     + table(rows, index=False))
        parts.append(view.writer.add(
            view.fig("calibration"), calibration_figure(fit),
            f"Held-out runs: observed loss (x) and the {PROB:.0%} predictive interval, law-only (thin, left) "
            "and with the discrepancy term (thick, right), ordered by scale. Calibrated bands cover about "
            f"{PROB:.0%} of the runs; the runs of one prediction share the law's error, so the count they "
            "cover varies more than for independent runs (the table's range is the band's own expectation)."))
    return Section(view.sid("validation"), title, "".join(parts))


def _count_cell(count: dict) -> str:
    """``"k of n / lo-hi (all: p)"``, flagged where k is outside what the band's joint predictive expects."""
    lo, hi = count["range"]
    cell = f"{count['covered']} of {count['n_runs']} / {lo}-{hi} (all: {count['p_all']:.0%})"
    return cell if count["consistent"] else cell + " - not consistent"


def chaining_figure(errors: pd.DataFrame, term: Discrepancy) -> Figure:
    """Forward-chaining errors (log loss) against distance past the fitted runs, with the learned band.

    ``errors``: one row per predicted run with ``distance`` (ln units), ``error`` (log loss), ``law_sd``
    and ``ahead`` (1 or 2 levels past the data); ``term``: the learned term, whose marginal sd (independent
    part and shared shift, at the posterior means) widens the band.
    """
    fig = Figure(figsize=(WIDTH * 0.6, 4.0), layout="constrained")
    ax = fig.add_subplot()
    distance = errors["distance"].to_numpy(float)
    grid = np.linspace(0.0, max(float(distance.max()), 1e-3) * 1.05, 100)
    z = stats.norm.ppf(0.5 + PROB / 2)
    half = z * np.hypot(float(np.median(errors["law_sd"])), term.sd_at(grid))
    ax.fill_between(grid, -half, half, color="0.85", label=f"{PROB:.0%} band (law sd + discrepancy)")
    for ahead, marker in ((1, "o"), (2, "s")):
        rows = errors[errors["ahead"] == ahead]
        if len(rows):
            ax.scatter(rows["distance"], rows["error"], s=16, marker=marker, zorder=3,
                       label=f"{ahead} level{'s' if ahead > 1 else ''} past the data")
    ax.axhline(0, color="0.3", linestyle="--", linewidth=1)
    ax.set(xlabel="distance past the fitted runs, ln(scale / largest fitted)",
           ylabel="observed - predicted (log loss)", title="How the law's error grows past the data")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def calibration_figure(fit: Fit) -> Figure:
    """The fit's held-out runs: observed loss and the law-only / with-discrepancy predictive intervals."""
    heldout = fit.heldout
    order = np.argsort(heldout[fit.discrepancy.scale_column].to_numpy(float), kind="stable")
    fig = Figure(figsize=(WIDTH * 0.6, 4.0), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(heldout))
    for offset, use, width, label in ((-0.15, False, 1.2, "law only"), (0.15, True, 4.0, "with discrepancy")):
        band = fit.predict(heldout, prob=PROB, discrepancy=use).iloc[order]
        ax.vlines(x + offset, band.iloc[:, 1], band.iloc[:, 3], linewidth=width, alpha=0.6, label=label,
                  color="C0" if use else "C1")
        ax.scatter(x + offset, band["q50"], s=10, color="0.2", zorder=3)
    ax.scatter(x, heldout["loss"].to_numpy(float)[order], marker="x", color="crimson", s=36, zorder=4,
               label="observed")
    ax.set(xlabel="held-out run (by scale)", ylabel="loss (nats)", title=f"Held-out runs: {PROB:.0%} intervals")
    ax.set_xticks(x)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig
