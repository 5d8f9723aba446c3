"""Printing results: one JSON object on stdout for ``--json``, plain text tables otherwise."""
from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def print_json(obj: dict) -> None:
    """Print ``obj`` as one JSON object (NaN/inf become null, numpy scalars become numbers)."""
    sys.stdout.write(json.dumps(_clean(obj), allow_nan=False) + "\n")


def warn(message: str) -> None:
    """A warning line on stderr."""
    sys.stderr.write(f"warning: {message}\n")


def quantiles(values: np.ndarray, prob: float = 0.9) -> dict[str, float]:
    """{"q05", "q50", "q95"}-style quantiles of a 1-d array for central interval ``prob``."""
    lo = (1 - prob) / 2
    q = np.quantile(np.asarray(values, dtype=float), [lo, 0.5, 1 - lo])
    return {f"q{round(lo * 100):02d}": float(q[0]), "q50": float(q[1]), f"q{round((1 - lo) * 100):02d}": float(q[2])}
