"""Model comparison by PSIS-LOO, and stacking weights for model averaging.

All fits must have seen the same runs (same run ids and losses): the pointwise log likelihoods
(Student-t or Normal on log loss) are then on the same observations, whatever the law. Pareto-k
above ``PARETO_K_WARN`` means the importance-sampling estimate for that run is unreliable; such
runs are highly influential (refit without them, or use K-fold CV, before trusting the ranking).
"""
from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np

from ..errors import BayesMoeError
from ..inference import Fit, arviz_io, load_fit

PARETO_K_WARN = 0.7


def _label(fit, index: int) -> str:
    return str(fit.path) if getattr(fit, "path", None) else f"fit{index}"


def compare(fits: Sequence[Fit | str | os.PathLike]) -> list[dict]:
    """Rank fits by expected log predictive density (PSIS-LOO), best first (see :func:`_rows`)."""
    return sorted(_rows(fits), key=lambda m: -m["elpd_loo"])


def stacking_weights(fits: Sequence[Fit | str | os.PathLike]) -> np.ndarray:
    """Stacking weights of ``fits`` (fits or paths), in the order given."""
    return np.array([m["weight"] for m in _rows(fits)])


def _rows(fits: Sequence[Fit | str | os.PathLike]) -> list[dict]:
    """PSIS-LOO comparison rows, in the order of ``fits``.

    Args:
        fits: two or more :class:`~bayesmoe.inference.Fit` objects or paths to fit files.

    Returns:
        ``compare --json`` models (docs/cli.md): ``fit`` (path or ``fit<i>``), ``law``, ``elpd_loo``, ``se``,
        ``elpd_diff`` (to the best; 0 for it), ``dse`` (se of the difference), ``weight`` (stacking),
        ``pareto_k_max``, ``n_high_pareto_k`` (runs with k > 0.7). Warns when any k > 0.7.
    """
    fits = [load_fit(f) if isinstance(f, (str, os.PathLike)) else f for f in fits]
    if len(fits) < 2:
        raise BayesMoeError("compare needs at least two fits")
    labels = [_label(f, i) for i, f in enumerate(fits)]
    labels = [lab if labels.count(lab) == 1 else f"{lab}#{i}" for i, lab in enumerate(labels)]
    reference = fits[0].runs
    for label, f in zip(labels[1:], fits[1:]):
        same = (
            len(f.runs) == len(reference)
            and np.array_equal(f.runs["run_id"].astype(str).to_numpy(), reference["run_id"].astype(str).to_numpy())
            and np.allclose(f.runs["loss"].to_numpy(float), reference["loss"].to_numpy(float))
        )
        if not same:
            raise BayesMoeError(f"cannot compare '{label}' with '{labels[0]}': they were fitted to different runs "
                                f"({len(f.runs)} vs {len(reference)} runs); refit on the same runs table and selection")
    table = arviz_io.compare({label: f.idata for label, f in zip(labels, fits)})
    out = []
    for label, f in zip(labels, fits):
        k = np.asarray(arviz_io.loo(f.idata).pareto_k, dtype=float)
        row = table.loc[label]
        out.append({
            "fit": label, "law": f.law.name, "elpd_loo": float(row["elpd_loo"]), "se": float(row["se"]),
            "elpd_diff": float(row["elpd_diff"]), "dse": float(row["dse"]), "weight": float(row["weight"]),
            "pareto_k_max": float(np.max(k)), "n_high_pareto_k": int(np.sum(k > PARETO_K_WARN)),
        })
        if np.max(k) > PARETO_K_WARN:
            warnings.warn(f"{label}: {int(np.sum(k > PARETO_K_WARN))} runs have Pareto k > {PARETO_K_WARN} "
                          f"(max {np.max(k):.2f}); its PSIS-LOO estimate is unreliable", UserWarning, stacklevel=2)
    return out

