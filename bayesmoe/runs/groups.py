"""Group labels for partial pooling: one runs-table column, or several joined with ``+``.

``--group group`` pools by the values of column ``group``; ``--group group+routing_frequency+top_k`` pools by
each combination of the three columns (e.g. Clark et al.'s router, routing frequency and experts per token:
the laws have no term for the last two, so each configuration gets its own pooled terms). A combined label
joins the parts' values with ``/`` (numbers in ``%g`` form): ``S-Base/0.5/1``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BayesMoeError

#: joins the columns of a combined group spec (``--group a+b``).
SEPARATOR = "+"


def group_columns(spec: str) -> list[str]:
    """The columns a group spec names: ``"a+b"`` -> ``["a", "b"]``."""
    return [part.strip() for part in str(spec).split(SEPARATOR)]


def has_group_columns(frame: pd.DataFrame, spec: str) -> bool:
    """True when ``frame`` has every column of ``spec`` (or ``spec`` itself as one column)."""
    return spec in frame.columns or all(c in frame.columns for c in group_columns(spec))


def group_labels(frame: pd.DataFrame, spec: str) -> np.ndarray:
    """Each run's group label (str array (n,)) under the group spec ``spec`` (module docstring).

    Raises:
        BayesMoeError: a column of ``spec`` that ``frame`` lacks (one line naming it and the columns there are).
    """
    if spec in frame.columns:
        return frame[spec].astype(str).to_numpy()
    columns = group_columns(spec)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise BayesMoeError(
            f"--group column '{missing[0]}' is not in the runs table; columns: {', '.join(frame.columns)}")
    parts = [frame[c].map(_text).to_numpy() for c in columns]
    return np.array(["/".join(values) for values in zip(*parts)], dtype=object).astype(str)


def _text(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "" if np.isnan(value) else f"{value:g}"
    return "" if pd.isna(value) else str(value)
