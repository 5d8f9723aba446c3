"""Simulation-based calibration results (Talts et al. 2018, arXiv 1804.06788): read, test, draw.

``benchmarks/sbc.py`` writes one JSON line per replicate to ``<folder>/<model>.jsonl``: the rank (0..L)
of the true value of each quantity among L thinned posterior draws, plus the settings and the commit. If
the fits are calibrated every rank is uniform on 0..L. This module tests that (chi-square on equal bins),
draws ECDF-difference plots with a simultaneous band, and renders the report section ``sbc``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from ..errors import BayesMoeError
from .html import FigureWriter, Section, esc, table

#: equal-width rank bins of the chi-square uniformity test.
BINS = 10
#: a quantity whose uniformity p-value is below this is flagged (before any multiple-testing correction).
FLAG_P = 0.01
#: 95% simultaneous band of an ECDF around the uniform CDF (Kolmogorov: 1.358 / sqrt(n)).
KOLMOGOROV_95 = 1.358


def read_sbc(folder: str | Path) -> dict[str, list[dict]]:
    """``{model: [replicate record, ...]}`` from every ``<folder>/<model>.jsonl``, sorted by model."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BayesMoeError(f"--sbc '{folder}' is not a folder; expected benchmarks/sbc (benchmarks/sbc.py writes it)")
    results = {}
    for path in sorted(folder.glob("*.jsonl")):
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise BayesMoeError(f"{path}: line {number} is not JSON; expected one SBC replicate per line") from None
            if not isinstance(record, dict) or not isinstance(record.get("ranks"), dict) or "L" not in record:
                raise BayesMoeError(f"{path}: line {number} has no 'ranks' and 'L'; expected an SBC record")
            records.append(record)
        if records:
            results[path.stem] = records
    if not results:
        raise BayesMoeError(f"--sbc '{folder}' holds no <model>.jsonl results; run benchmarks/sbc.py first")
    return results


def uniformity(ranks: np.ndarray, size: int, bins: int = BINS) -> float:
    """Chi-square p-value of ranks in 0..``size``, counted in ``bins`` equal bins, against the uniform."""
    counts = np.bincount((np.asarray(ranks, dtype=int) * bins) // (size + 1), minlength=bins)
    return float(stats.chisquare(counts).pvalue)


def sbc_table(results: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per (model, quantity): ``replicates``, ``p_value`` (chi-square, :data:`BINS` bins), ``code``."""
    rows = []
    for model, records in results.items():
        size = int(records[0]["L"])
        codes = sorted({str(r.get("code", "unknown")) for r in records})
        for name in records[0]["ranks"]:
            ranks = np.array([r["ranks"][name] for r in records])
            rows.append({"model": model, "quantity": name, "replicates": len(ranks),
                         "p_value": uniformity(ranks, size), "code": ", ".join(codes)})
    return pd.DataFrame(rows)


def ecdf_difference(ax, ranks: np.ndarray, size: int, title: str) -> None:
    """ECDF of the fractional ranks minus the uniform CDF on ``ax``, with a 95% simultaneous band."""
    fractional = np.sort((np.asarray(ranks) + 0.5) / (size + 1))
    grid = np.linspace(0, 1, 201)
    band = KOLMOGOROV_95 / np.sqrt(len(fractional))
    ax.fill_between(grid, -band, band, color="0.85")
    ax.plot(grid, np.searchsorted(fractional, grid, side="right") / len(fractional) - grid, color="C0", lw=1)
    ax.set_title(title, fontsize=7)
    ax.set_ylim(-2.5 * band, 2.5 * band)
    ax.tick_params(labelsize=6)


def ecdf_figure(model: str, records: list[dict]) -> Figure:
    """One panel per ranked quantity of ``model``: ECDF difference with the 95% band."""
    names = list(records[0]["ranks"])
    size = int(records[0]["L"])
    fig = Figure(figsize=(max(1.9 * len(names), 4.0), 2.1), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        ecdf_difference(ax, np.array([r["ranks"][name] for r in records]), size, name)
    fig.suptitle(f"{model}: ECDF of rank / (L + 1) minus uniform, 95% band", fontsize=8)
    return fig


def sbc_section(results: dict[str, list[dict]], folder: str | Path, writer: FigureWriter) -> Section:
    """Section ``sbc``: the uniformity table of every model of ``results`` (:func:`read_sbc` of ``folder``)
    and its ECDF-difference plots."""
    shown = sbc_table(results)
    flagged = shown[shown["p_value"] < FLAG_P]
    verdict = ("No quantity's ranks depart from uniform at p < {:.2g}: the fits recover what they were simulated "
               "from.".format(FLAG_P) if flagged.empty else
               "Ranks depart from uniform (p < {:.2g}) for: {}.".format(
                   FLAG_P, ", ".join(f"{r.model} {r.quantity}" for r in flagged.itertuples())))
    figures = "".join(
        writer.add(f"sbc-{model.replace('_', '-')}", ecdf_figure(model, records),
                   f"{esc(model)}: {len(records)} replicates. Inside the grey band everywhere: calibrated. "
                   "A U shape means too-narrow posteriors, a hump too-wide ones, a slope a bias.")
        for model, records in results.items()
    )
    shown = shown.assign(p_value=shown["p_value"].map(lambda p: f"{p:.3f}"))
    body = (
        "<p>Simulation-based calibration (Talts et al. 2018): each replicate draws parameters and a runs table "
        "from a model's prior predictive, fits it with <code>bayesmoe.fit</code> and ranks the truth among the "
        "posterior draws; a calibrated fit gives uniform ranks. Uniformity: chi-square on "
        f"{BINS} equal rank bins (results: <code>{esc(folder)}</code>, written by <code>benchmarks/sbc.py</code>).</p>"
        f"<p><b>{esc(verdict)}</b></p>" + table(shown, index=False) + figures
    )
    return Section("sbc", "Simulation-based calibration of the models", body)
