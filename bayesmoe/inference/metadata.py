"""The metadata saved with every fit: what was fitted, to which data, how, and with which software."""
from __future__ import annotations

import platform
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata

import pandas as pd

from ..laws import Law
from ..model import STUDENT_T_NU, ModelSpec
from ..runs import data_hash


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a fit depends on (``"unknown"`` when not installed)."""
    out = {"python": platform.python_version()}
    for name in ("bayesmoe", "jax", "numpyro", "arviz", "numpy", "pandas"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def fit_metadata(
    *,
    law: Law,
    frame: pd.DataFrame,
    spec: ModelSpec,
    group_column: str | None,
    source: str,
    prior_set: str | None,
    settings: dict,
    method: str,
    selection: dict,
    seconds: float,
    reduction: dict | None,
    modes: tuple[dict, ...] = (),
) -> dict:
    """The JSON-ready ``meta`` of a fit (read back by :class:`~bayesmoe.inference.fitted.Fit`).

    Args:
        law: the law sampled (after any reduction); frame: the runs fitted; spec: the model;
            group_column: the runs-table column that defines the groups, or None.
        source: the runs table's path, or ``"DataFrame"``; prior_set: the published set the priors are
            centred on, or None.
        settings: sampler settings (``Settings.as_dict()``); method: ``"nuts"`` or ``"laplace"``.
        selection: the ``where`` / ``exclude_top_loss`` / ``holdout_top_compute`` arguments.
        seconds: wall time of the sampling; reduction: :func:`bayesmoe.model.prepare`'s record.
        modes: the distinct modes the mode search found (:attr:`~bayesmoe.inference.draws.Draws.modes`).
    """
    return {
        "law": law.name,
        "source": source,
        "priors": {k: [v.loc, v.sd, v.low, v.high] for k, v in spec.priors.items()},
        "prior_set": prior_set,
        "prior_text": spec.describe_priors(),
        "likelihood": spec.likelihood,
        "student_t_nu": STUDENT_T_NU,
        "group_column": group_column,
        "groups": list(spec.groups),
        "pooled": list(spec.pooled),
        "centring": dict(spec.centring),
        "settings": settings,
        "method": method,
        "selection": selection,
        "n_runs": len(frame),
        "data_hash": data_hash(frame),
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sampling_seconds": round(seconds, 3),
        "constants": dict(law.constants),
        "reduction": reduction,
        "modes": list(modes),
    }
