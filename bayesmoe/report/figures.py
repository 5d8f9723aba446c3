"""Matplotlib figures of a report. Each function returns a :class:`matplotlib.figure.Figure` made
without pyplot (no backend, no global state); :mod:`.arviz_plots` draws the ArviZ panels.

Units: loss in nats per token, compute in training FLOPs, sizes in raw parameter counts.
Bands are central posterior intervals: 50% (dark) and 90% (light).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ..inference.arviz_io import az
from . import arviz_plots

#: Width of a full-width figure in inches (at the report's dpi this fits the page column).
WIDTH = 10.0
HELDOUT_STYLE = {"marker": "D", "facecolor": "none", "edgecolor": "crimson", "linewidths": 1.4, "s": 46, "zorder": 5}
#: Display names of the optimal quantities (docs/cli.md).
QUANTITY_LABELS = {
    "n_active": "active params Na",
    "n_total": "total params N",
    "tokens": "tokens D",
    "loss": "loss (nats)",
    "ratio_total_active": "N / Na",
    "ratio_active_total": "Na / N",
    "granularity": "granularity G",
    "n_experts": "experts E",
    "top_k": "top-k",
    "activated_experts": "activated experts",
    "shared_ratio": "shared ratio S",
    "d_model": "d_model",
    "flops_per_token": "FLOPs per token M",
    "ratio_flops_active": "M / Na",
    "tokens_per_param": "tokens per active param D/Na",
}


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _band(ax, x, draws, color, label=None):
    """Median line and 50/90% bands of ``draws`` (S, len(x)) over ``x``."""
    q = np.nanquantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    ax.fill_between(x, q[0], q[4], color=color, alpha=0.15, linewidth=0)
    ax.fill_between(x, q[1], q[3], color=color, alpha=0.35, linewidth=0)
    ax.plot(x, q[2], color=color, linewidth=1.6, label=label)


def colour_column(runs: pd.DataFrame) -> str | None:
    """The architecture column that varies most usefully for colouring: granularity, then experts."""
    for name in ("granularity", "n_experts", "top_k", "shared_ratio"):
        if name in runs.columns and runs[name].notna().all() and runs[name].nunique() > 1:
            return name
    return None


def runs_overview(runs: pd.DataFrame, heldout: pd.DataFrame | None, size_column: str) -> Figure:
    """Runs over compute (x) against model size (y), coloured by granularity / experts; held-out marked."""
    fig = _figure(WIDTH, 4.2)
    ax = fig.add_subplot()
    every = runs if heldout is None else pd.concat([runs, heldout], ignore_index=True)
    colour = colour_column(every)
    if colour and every[colour].nunique() <= 8:
        levels = np.sort(every[colour].unique())
        cmap = colormaps["viridis"]
        for i, level in enumerate(levels):
            mine = runs[runs[colour] == level]
            ax.scatter(mine["compute"], mine[size_column], color=cmap(i / max(len(levels) - 1, 1)), s=30, edgecolor="k",
                       linewidth=0.3, label=f"{colour} {level:g}")
    elif colour:
        values = every[colour].to_numpy(float)
        norm = LogNorm(values.min(), values.max()) if values.min() > 0 else None
        sc = ax.scatter(
            runs["compute"],
            runs[size_column],
            c=runs[colour],
            cmap="viridis",
            norm=norm,
            s=30,
            edgecolor="k",
            linewidth=0.3,
        )
        fig.colorbar(sc, ax=ax, label=colour)
    else:
        ax.scatter(
            runs["compute"], runs[size_column], s=30, color="C0", edgecolor="k", linewidth=0.3, label="fitted runs"
        )
    if heldout is not None and len(heldout):
        ax.scatter(heldout["compute"], heldout[size_column], label="held out (not fitted)", **HELDOUT_STYLE)
    ax.set(xscale="log", yscale="log", xlabel="training compute C (FLOPs)", ylabel=f"{size_column} (parameters)")
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize="small")
    return fig


def predictive_check(pred50: pd.DataFrame, pred90: pd.DataFrame, heldout_ids: set[str]) -> Figure:
    """Observed (x) vs predicted loss (y): median, 50% (thick) and 90% (thin) predictive intervals."""
    fig = _figure(WIDTH * 0.55, 4.6)
    ax = fig.add_subplot()
    held = pred90["run_id"].astype(str).isin(heldout_ids).to_numpy()
    obs, mid = pred90["observed"].to_numpy(float), pred90["q50"].to_numpy(float)
    for mask, colour, label in ((~held, "C0", "fitted runs"), (held, "crimson", "held-out runs")):
        if not mask.any():
            continue
        ax.vlines(obs[mask], pred90["q05"][mask], pred90["q95"][mask], color=colour, alpha=0.35, linewidth=1)
        ax.vlines(obs[mask], pred50["q25"][mask], pred50["q75"][mask], color=colour, alpha=0.9, linewidth=3)
        ax.scatter(obs[mask], mid[mask], s=12, color=colour, zorder=3, label=label)
    lo, hi = np.nanmin([obs.min(), pred90["q05"].min()]), np.nanmax([obs.max(), pred90["q95"].max()])
    ax.plot([lo, hi], [lo, hi], color="0.3", linestyle="--", linewidth=1, label="predicted = observed")
    ax.set(
        xlabel="observed loss (nats)", ylabel="predicted loss (nats)", title="Posterior predictive: 50% / 90% intervals"
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    return fig


def residuals(compute: np.ndarray, pred90: pd.DataFrame, heldout_ids: set[str]) -> Figure:
    """Observed minus predicted median loss against compute, with the 90% predictive interval."""
    fig = _figure(WIDTH * 0.45, 4.6)
    ax = fig.add_subplot()
    held = pred90["run_id"].astype(str).isin(heldout_ids).to_numpy()
    mid = pred90["q50"].to_numpy(float)
    resid = pred90["observed"].to_numpy(float) - mid
    for mask, colour, label in ((~held, "C0", "fitted"), (held, "crimson", "held out")):
        if not mask.any():
            continue
        ax.vlines(compute[mask], (pred90["q05"] - mid)[mask], (pred90["q95"] - mid)[mask], color=colour, alpha=0.3)
        ax.scatter(compute[mask], resid[mask], s=14, color=colour, zorder=3, label=label)
    ax.axhline(0, color="0.3", linestyle="--", linewidth=1)
    ax.set(
        xscale="log",
        xlabel="training compute C (FLOPs)",
        ylabel="observed - predicted (nats)",
        title="Residuals vs compute",
    )
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return fig


def loo_panels(idata: az.InferenceData, loo_result: az.ELPDData, y_hat: np.ndarray) -> Figure:
    """Pareto k per run (left) and the LOO-PIT calibration ECDF (right)."""
    fig = _figure(WIDTH, 3.6)
    left, right = fig.subplots(1, 2)
    arviz_plots.plot_khat(loo_result, left)
    left.set_title("Pareto k per run (> 0.7: influential run)")
    left.set_xlabel("run (position in the runs table)")
    arviz_plots.plot_loo_pit(idata, y_hat, right)
    right.set_title("LOO-PIT: inside the band = calibrated")
    return fig


def prior_posterior(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """One panel per parameter: prior draws (dashed) vs posterior draws (filled), latent scale.

    Args:
        pairs: label -> (posterior draws (S,), prior draws (P,)).
    """
    n = len(pairs)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = _figure(WIDTH, 2.2 * rows + 0.4)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax, (label, (post, prior)) in zip(axes, pairs.items()):
        arviz_plots.plot_prior_posterior(post, prior, ax, label=label)
        lo, hi = np.quantile(np.concatenate([post, prior]), [0.005, 0.995])
        plo, phi = np.quantile(post, [0.001, 0.999])
        ax.set_xlim(min(lo, plo), max(hi, phi))
        ax.set_yticks([])
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    for ax in axes[n:]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside upper right", ncols=2)
    return fig


def isoflop(
    compute: np.ndarray, n_grid: np.ndarray, panels: list[tuple[str, np.ndarray, list[pd.DataFrame]]]
) -> Figure:
    """Loss vs active size at each budget, one panel per architecture family: posterior median and
    50/90% bands of the mean loss, with that family's observed runs near each budget as points.

    Args:
        compute: budgets (B,); n_grid: active sizes (K,);
        panels: per family (title, mean-loss draws (S, B, K), per budget the runs within a factor 1.3 of it).
    """
    cols = 1 if len(panels) == 1 else 2
    rows = int(np.ceil(len(panels) / cols))
    fig = _figure(WIDTH, 4.6 if len(panels) == 1 else 3.4 * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    lows, tops = [], []
    for ax, (title, grid, observed) in zip(axes, panels):
        for b, c in enumerate(compute):
            colour = f"C{b % 10}"
            _band(ax, n_grid, grid[:, b, :], colour, label=f"C = {c:.2g}")
            runs = observed[b]
            if len(runs):
                ax.scatter(runs["n_active"], runs["loss"], color=colour, edgecolor="k", linewidth=0.4, s=28, zorder=4)
                tops.append(runs["loss"].max())
        median = np.nanmedian(grid, axis=0)
        lows.append(np.nanquantile(grid, 0.05, axis=0).min())
        tops.append(float(np.nanmin(median.max(axis=1))))
        ax.set(xscale="log")
        ax.set_title(title, fontsize="medium")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].set_ylim(min(lows) * 0.98, max(tops) * 1.03)
    for ax in axes[::cols]:
        ax.set_ylabel("loss (nats)")
    for ax in axes[:len(panels)][-cols:]:
        ax.set_xlabel("active parameters Na")
    axes[0].legend(loc="upper right", ncols=2, fontsize="small")
    return fig


def frontier(compute: np.ndarray, loss: np.ndarray, runs: pd.DataFrame, heldout: pd.DataFrame | None) -> Figure:
    """Lowest attainable loss vs compute (median, 50/90% bands over draws), observed runs as points."""
    fig = _figure(WIDTH, 4.2)
    ax = fig.add_subplot()
    _band(ax, compute, loss, "C0", label="compute-optimal loss (posterior)")
    ax.scatter(runs["compute"], runs["loss"], s=14, color="0.25", alpha=0.7, label="fitted runs", zorder=3)
    if heldout is not None and len(heldout):
        ax.scatter(heldout["compute"], heldout["loss"], label="held-out runs", **HELDOUT_STYLE)
    ax.axvline(runs["compute"].max(), color="0.5", linestyle=":", linewidth=1)
    ax.text(runs["compute"].max(), ax.get_ylim()[1], " largest fitted run", va="top", fontsize="small", color="0.35")
    ax.set(xscale="log", xlabel="training compute C (FLOPs)", ylabel="loss (nats)", title="Loss vs compute frontier")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper right")
    return fig


def decisions(compute: np.ndarray, draws: Mapping[str, np.ndarray], near: tuple[np.ndarray, np.ndarray] | None,
              max_observed: float, tolerance: float) -> Figure:
    """Optimal quantities vs compute: median and 50/90% bands, one panel each (log-log).

    Args:
        compute: budgets (B,); draws: quantity -> (S, B) (docs/cli.md names);
        near: (lo, hi) medians (B,) of the near-optimal active-size band, drawn on the ``n_active`` panel.
        max_observed: largest fitted compute (a dotted line: extrapolation to its right).
    """
    names = list(draws)
    cols = min(3, len(names))
    rows = int(np.ceil(len(names) / cols))
    fig = _figure(WIDTH, 2.9 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        values = draws[name]
        _band(ax, compute, values, "C0", label="optimum")
        if name == "n_active" and near is not None:
            ax.plot(
                compute,
                near[0],
                color="C1",
                linestyle="--",
                linewidth=1.2,
                label=f"within {tolerance:.1%} of best loss",
            )
            ax.plot(compute, near[1], color="C1", linestyle="--", linewidth=1.2)
            ax.legend(loc="upper left", fontsize="small")
        finite = values[np.isfinite(values)]
        positive = np.all(finite > 0)
        log_y = positive and name not in ("loss", "shared_ratio")
        ax.set(xscale="log", yscale="log" if log_y else "linear",
               title=QUANTITY_LABELS.get(name, name), xlabel="compute C (FLOPs)")
        if finite.size and np.ptp(finite) == 0:   # one value at every budget (e.g. the largest expert count)
            ax.set_ylim(*((finite[0] / 2, finite[0] * 2) if log_y else (finite[0] - 1, finite[0] + 1)))
        ax.axvline(max_observed, color="0.5", linestyle=":", linewidth=1)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    return fig
