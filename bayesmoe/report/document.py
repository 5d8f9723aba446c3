"""The report page: :func:`report` writes ``<out>/report.html`` and its figures for one or more fits."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..config import float64
from ..decide.design import DesignResult
from ..errors import BayesMoeError
from ..inference import Fit, load_fit
from .calibration import calibration_section, read_calibration
from .html import FigureWriter, page
from .sbc import read_sbc, sbc_section
from .sections import (
    FitView,
    comparison_section,
    data_section,
    decisions_section,
    diagnostics_section,
    fit_section,
    glance_section,
    model_section,
    next_runs_section,
    scaling_section,
)
from .validation import validation_section

#: File name of the page inside ``out``.
PAGE = "report.html"
_PER_FIT = (data_section, model_section, diagnostics_section, fit_section, scaling_section, decisions_section,
            validation_section)


def _label(fit: Fit, position: int) -> str:
    return fit.path.stem if fit.path is not None else f"fit {position + 1} ({fit.law.name})"


@float64
def report(
    fits: Fit | str | os.PathLike | Sequence[Fit | str | os.PathLike],
    out: str | os.PathLike,
    *,
    design: DesignResult | None = None,
    title: str | None = None,
    budgets: Sequence[float] | None = None,
    sbc: str | os.PathLike | None = None,
    calibration: str | os.PathLike | None = None,
) -> Path:
    """Write ``<out>/report.html`` and its figures (``<out>/<figure>.png``) for one or more fits.

    Args:
        fits: :class:`~bayesmoe.fit.Fit` objects or fit file paths (``bayesmoe fit --out``).
        out: folder to write into (created if missing).
        design: a result of ``bayesmoe.design``; adds the "next runs" section that
            ``bayesmoe.design.report.next_runs_section`` renders.
        title: page title (default: "bayesmoe report: <laws>").
        budgets: training-FLOP budgets of the recommendation table (default: the decade above the
            largest fitted run and the three after it).
        sbc: a folder of simulation-based calibration results (``benchmarks/sbc.py`` writes
            ``<model>.jsonl`` there); adds the section ``sbc`` (:mod:`bayesmoe.report.sbc`).
        calibration: a calibration results file (``benchmarks/calibration.py`` writes
            ``benchmarks/calibration_results.json``); adds the section ``calibration``
            (:mod:`bayesmoe.report.calibration`).

    Returns:
        The path of the HTML page.
    """
    items = [fits] if isinstance(fits, (Fit, str, os.PathLike)) else list(fits)
    if not items:
        raise BayesMoeError("report needs at least one fit")
    # the cheap inputs first: a bad results file fails before any fit is read
    sbc_results = read_sbc(sbc) if sbc is not None else None
    calibration_records = read_calibration(calibration) if calibration is not None else None
    loaded = [f if isinstance(f, Fit) else load_fit(f) for f in items]
    if budgets is not None:
        budgets = np.asarray(budgets, dtype=float)
        if budgets.ndim != 1 or not np.all(np.isfinite(budgets)) or np.any(budgets <= 0):
            raise BayesMoeError(f"--budgets must be positive numbers of FLOPs, got {list(np.ravel(budgets))}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BayesMoeError(f"--out '{out}' is a file; expected a folder for the report")
    out.mkdir(parents=True, exist_ok=True)
    writer = FigureWriter(out)
    labels = [_label(f, i) for i, f in enumerate(loaded)]
    labels = [lab if labels.count(lab) == 1 else f"{lab} #{i + 1}" for i, lab in enumerate(labels)]
    views = [
        FitView(f, lab, "" if i == 0 else f"-{i + 1}", writer, budgets)
        for i, (f, lab) in enumerate(zip(loaded, labels))
    ]
    sections = [build(view) for view in views for build in _PER_FIT]
    comparison = None
    if len(views) > 1:
        section, comparison = comparison_section(views)
        sections.append(section)
    if design is not None:
        sections.append(next_runs_section(design, writer))
    if calibration_records is not None:
        sections.append(calibration_section(calibration_records, calibration))
    if sbc_results is not None:
        sections.append(sbc_section(sbc_results, sbc, writer))
    sections.insert(0, glance_section(views, comparison))
    laws = ", ".join(dict.fromkeys(f.law.name for f in loaded))
    title = title or f"bayesmoe report: {laws}"
    subtitle = f"{len(loaded)} fit(s): " + ", ".join(labels)
    path = out / PAGE
    path.write_text(page(title, subtitle, sections), encoding="utf-8")
    return path

