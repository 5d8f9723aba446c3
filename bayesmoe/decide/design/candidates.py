"""Candidate runs for a design: a runs table (docs/runs-table.md) without ``loss``; each row's cost is ``compute``.

Rules (each violation is a one-line :class:`~bayesmoe.errors.BayesMoeError`):
- the law's required columns must be present and filled (as for ``bayesmoe fit``);
- ``compute`` must be known for every row: given, or derived as ``flops_per_token * tokens`` or
  ``6 * n_active * tokens`` (docs/runs-table.md); it must be > 0;
- a ``loss`` column is an error when it holds any value (candidates are runs not yet trained; passing a
  trained runs table by mistake would silently ignore its results); an all-empty ``loss`` column is dropped.
"""
from __future__ import annotations

from os import PathLike

import numpy as np
import pandas as pd

from ...errors import BayesMoeError
from ...laws import Law
from ...runs import read_table, validate_runs


def load_candidates(source: str | PathLike | pd.DataFrame, law: Law) -> pd.DataFrame:
    """Validated candidates table (index reset, ``run_id`` and ``compute`` filled, no ``loss``)."""
    name = "candidates" if isinstance(source, pd.DataFrame) else f"candidates '{source}'"
    raw = read_table(source, what="candidates")
    if "loss" in raw.columns:
        filled = raw["loss"].notna().to_numpy()
        if filled.any():
            rows = ", ".join(map(str, np.flatnonzero(filled)[:5]))
            raise BayesMoeError(f"{name}: column 'loss' has values in rows {rows}; candidates are runs not yet "
                                "trained (a runs table without loss): drop the column")
        raw = raw.drop(columns="loss")
    frame = validate_runs(raw, required=law.required_columns, require_loss=False, law=law.name, what=name)
    empty = frame["compute"].isna().to_numpy()
    if empty.any():
        rows = ", ".join(map(str, np.flatnonzero(empty)[:5]))
        raise BayesMoeError(f"{name}: column 'compute' is empty in rows {rows} and cannot be derived; give compute "
                            "(training FLOPs, > 0) or flops_per_token or n_active")
    law.covariates(frame)  # law-specific checks (e.g. granularity of MoE rows)
    return frame
