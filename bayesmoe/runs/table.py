"""The runs table (docs/runs-table.md): loading, validation and derived columns.

One row per finished training run. Units are raw counts and nats per token. The table is a
:class:`pandas.DataFrame`; :func:`load_runs` reads it from CSV / Parquet (or takes a DataFrame),
validates every column it knows, and fills the derived columns:

- ``run_id``: ``run0, run1, ...`` when absent;
- ``n_total`` / ``n_active``: for a dense run (``n_experts`` absent or 1) either one fills the other;
- ``n_embedding``: 0 when absent;
- ``compute``: ``flops_per_token * tokens`` where M is known, else ``6 * n_active * tokens``.

Epoch AI's extraction of the Chinchilla runs (columns ``Model Size``, ``Training FLOP``, ``loss``) is
read as ``n_active`` = N, ``tokens`` = C / (6 N), ``compute`` = C, so that file can be fit as it is.

Each problem raises :class:`~bayesmoe.errors.BayesMoeError` naming the column, the rows and the fix.
"""
from __future__ import annotations

import hashlib
from os import PathLike
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import BayesMoeError
from .catalogue import path as dataset_path

#: Known numeric columns: name -> (lower bound, bound inclusive?, integer?, meaning).
NUMERIC_COLUMNS: dict[str, tuple[float, bool, bool, str]] = {
    "loss": (0.0, False, False, "final validation cross-entropy in nats per token, > 0"),
    "tokens": (0.0, False, False, "training tokens D, > 0"),
    "n_active": (0.0, False, False, "active non-embedding parameters per token, > 0"),
    "n_total": (0.0, False, False, "total non-embedding parameters, > 0"),
    "n_embedding": (0.0, True, False, "embedding + unembedding parameters, >= 0"),
    "n_experts": (1.0, True, True, "routed experts per MoE layer, an integer >= 1"),
    "top_k": (1.0, True, True, "routed experts activated per token, an integer >= 1"),
    "granularity": (0.0, False, False, "dense FFN hidden size / expert hidden size, > 0"),
    "shared_ratio": (0.0, True, False, "shared-expert share of activated expert parameters, in [0, 1)"),
    "d_model": (0.0, False, True, "hidden dimension, a positive integer"),
    "n_layers": (0.0, False, True, "transformer blocks, a positive integer"),
    "flops_per_token": (0.0, False, False, "training FLOPs per token M, > 0"),
    "compute": (0.0, False, False, "training FLOPs C, > 0"),
    "seed": (-np.inf, True, True, "training seed, an integer"),
}

_MAX_LISTED_ROWS = 5


def _rows(mask: np.ndarray, frame: pd.DataFrame) -> str:
    """Describe the rows selected by ``mask`` as '3 rows (2, 7, 9; run_id a, b, c)'."""
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:_MAX_LISTED_ROWS])
    more = f" and {len(idx) - _MAX_LISTED_ROWS} more" if len(idx) > _MAX_LISTED_ROWS else ""
    ids = ""
    if "run_id" in frame.columns:
        ids = "; run_id " + ", ".join(str(v) for v in frame["run_id"].to_numpy()[idx[:_MAX_LISTED_ROWS]])
    word = "row" if len(idx) == 1 else "rows"
    return f"{word} {shown}{more}{ids}"


def read_table(source: str | PathLike | pd.DataFrame, *, what: str = "runs table") -> pd.DataFrame:
    """Read a table from a CSV or Parquet path, or copy a DataFrame."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if str(source).startswith("dataset:"):  # a table shipped with bayesmoe (bayesmoe.runs.datasets)
        return pd.read_csv(dataset_path(str(source)[len("dataset:"):]))
    path = Path(source)
    if not path.exists():
        raise BayesMoeError(f"{what} file '{path}' does not exist")
    if path.is_dir():
        raise BayesMoeError(f"{what} '{path}' is a directory; expected a .csv or .parquet file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BayesMoeError(f"cannot read {what} '{path}': {first}; expected a CSV or Parquet file") from None


def _coerce_numeric(frame: pd.DataFrame, column: str, where: str) -> None:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna().to_numpy() & frame[column].notna().to_numpy()
    if bad.any():
        example = frame[column].to_numpy()[np.flatnonzero(bad)[0]]
        raise BayesMoeError(
            f"{where}: column '{column}' has non-numeric values ({example!r}) in {_rows(bad, frame)}; "
            f"expected {NUMERIC_COLUMNS[column][3]}"
        )
    frame[column] = values.astype(float)


def _check_bounds(frame: pd.DataFrame, column: str, where: str) -> None:
    low, inclusive, integer, meaning = NUMERIC_COLUMNS[column]
    values = frame[column].to_numpy(dtype=float)
    present = ~np.isnan(values)
    bad = present & ~np.isfinite(values)
    if bad.any():
        raise BayesMoeError(
            f"{where}: column '{column}' has infinite values in {_rows(bad, frame)}; expected {meaning}"
        )
    with np.errstate(invalid="ignore"):
        bad = present & ((values < low) if inclusive else (values <= low))
        if column == "shared_ratio":
            bad |= present & (values >= 1)
        if integer:
            bad |= present & (np.abs(values - np.round(values)) > 1e-9 * np.maximum(1, np.abs(values)))
    if bad.any():
        example = values[np.flatnonzero(bad)[0]]
        raise BayesMoeError(
            f"{where}: column '{column}' has invalid value {example:g} in {_rows(bad, frame)}; expected {meaning}"
        )


def _fill_dense_counts(frame: pd.DataFrame, where: str) -> None:
    """Fill n_total from n_active (and back) for dense runs; check n_total >= n_active."""
    dense = np.ones(len(frame), dtype=bool)
    if "n_experts" in frame.columns:
        e = frame["n_experts"].to_numpy(dtype=float)
        dense = np.isnan(e) | (e == 1)
    for have, fill in (("n_active", "n_total"), ("n_total", "n_active")):
        if have not in frame.columns:
            continue
        if fill not in frame.columns:
            frame[fill] = np.nan
        missing = frame[fill].isna().to_numpy() & dense & frame[have].notna().to_numpy()
        frame.loc[missing, fill] = frame.loc[missing, have]
    if {"n_active", "n_total"} <= set(frame.columns):
        na, nt = frame["n_active"].to_numpy(float), frame["n_total"].to_numpy(float)
        with np.errstate(invalid="ignore"):
            bad = nt < na * (1 - 1e-9)
        if bad.any():
            raise BayesMoeError(
                f"{where}: n_total < n_active in {_rows(bad, frame)}; n_total counts all experts and must be "
                ">= n_active"
            )


def _fill_compute(frame: pd.DataFrame) -> None:
    if "tokens" not in frame.columns:
        return
    derived = pd.Series(np.nan, index=frame.index)
    if "n_active" in frame.columns:
        derived = 6.0 * frame["n_active"] * frame["tokens"]
    if "flops_per_token" in frame.columns:
        with_m = frame["flops_per_token"].notna()
        derived = derived.where(~with_m, frame["flops_per_token"] * frame["tokens"])
    if "compute" not in frame.columns:
        frame["compute"] = derived
    else:
        frame["compute"] = frame["compute"].fillna(derived)


#: Column layout of Epoch AI's extraction of Hoffmann et al.'s Figure 4 (``svg_extracted_data.csv``).
EPOCH_COLUMNS = ("Model Size", "Training FLOP", "loss")


def _from_epoch_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """Map Epoch AI's Chinchilla extraction onto the runs table: n_active = N, tokens = C / (6 N), compute = C."""
    if not set(EPOCH_COLUMNS) <= set(frame.columns) or {"n_active", "tokens"} & set(frame.columns):
        return frame
    n = pd.to_numeric(frame["Model Size"], errors="coerce")
    c = pd.to_numeric(frame["Training FLOP"], errors="coerce")
    return pd.DataFrame({"n_active": n, "tokens": c / (6 * n), "compute": c, "loss": frame["loss"]})


def validate_runs(
    source: str | PathLike | pd.DataFrame,
    *,
    required: Iterable[str] = (),
    require_loss: bool = True,
    law: str | None = None,
    what: str = "runs table",
) -> pd.DataFrame:
    """Validate a runs table and return a copy with derived columns filled.

    Args:
        source: path to a CSV/Parquet file, or a DataFrame.
        required: columns the caller (usually a law) needs with a value in every row.
        require_loss: False for candidate/prediction tables that have no ``loss`` yet.
        law: law id, named in errors about ``required`` columns.
        what: how the table is named in error messages.

    Returns:
        A new DataFrame (index reset) with ``run_id``, ``n_embedding``, dense ``n_total``/``n_active``
        and ``compute`` filled in.
    """
    name = str(source) if not isinstance(source, pd.DataFrame) else what
    frame = _from_epoch_layout(read_table(source, what=what)).reset_index(drop=True)
    where = f"{what} '{name}'" if not isinstance(source, pd.DataFrame) else what
    if len(frame) == 0:
        raise BayesMoeError(f"{where} has no rows; expected one row per finished training run")
    if "run_id" not in frame.columns:
        frame.insert(0, "run_id", [f"run{i}" for i in range(len(frame))])
    frame["run_id"] = frame["run_id"].astype(str)
    dup = frame["run_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        raise BayesMoeError(
            f"{where}: column 'run_id' has duplicate values in {_rows(dup, frame)}; run ids must be unique"
        )
    if "group" in frame.columns:
        frame["group"] = frame["group"].astype("string").fillna("").astype(str)
    for column in NUMERIC_COLUMNS:
        if column in frame.columns:
            _coerce_numeric(frame, column, where)
            _check_bounds(frame, column, where)
    if "n_embedding" not in frame.columns:
        frame["n_embedding"] = 0.0
    frame["n_embedding"] = frame["n_embedding"].fillna(0.0)
    _fill_dense_counts(frame, where)
    _fill_compute(frame)
    needed = ["tokens", *required] + (["loss"] if require_loss else [])
    for column in dict.fromkeys(needed):
        by = f" (needed by law '{law}')" if law and column in required else ""
        if column not in frame.columns:
            meaning = NUMERIC_COLUMNS.get(column, (0, 0, 0, "a value per run"))[3]
            raise BayesMoeError(f"{where}: missing column '{column}'{by}; expected {meaning}")
        empty = frame[column].isna().to_numpy()
        if empty.any():
            raise BayesMoeError(
                f"{where}: column '{column}'{by} is empty in {_rows(empty, frame)}; fill it or drop those runs"
            )
    return frame


def select_runs(
    frame: pd.DataFrame,
    *,
    where: str | None = None,
    exclude_top_loss: int = 0,
) -> pd.DataFrame:
    """Filter a validated runs table.

    Args:
        where: a pandas query (``DataFrame.query``), e.g. ``"top_k == 1 and routing_frequency == 0.5"``.
        exclude_top_loss: drop the K runs with the highest loss (Besiroglu et al. 2024's cleaning).
    """
    out = frame
    if where:
        try:
            mask = out.eval(where)
        except Exception as exc:  # pandas raises many types for a bad expression
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise BayesMoeError(f"invalid --where expression {where!r}: {first}") from None
        if not (isinstance(mask, pd.Series) and mask.dtype == bool):
            raise BayesMoeError(f"--where expression {where!r} is not a true/false condition on the runs")
        out = out[mask.to_numpy()]
        if len(out) == 0:
            raise BayesMoeError(f"--where expression {where!r} keeps no runs")
    if exclude_top_loss:
        if exclude_top_loss < 0 or exclude_top_loss >= len(out):
            raise BayesMoeError(
                f"--exclude-top-loss {exclude_top_loss} must be between 0 and {len(out) - 1} (the table has "
                f"{len(out)} runs)"
            )
        out = out.sort_values("loss", kind="stable").iloc[: len(out) - exclude_top_loss].sort_index()
    return out.reset_index(drop=True)


def split_top_compute(frame: pd.DataFrame, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off the ``k`` largest-compute runs: returns (training runs, held-out runs)."""
    if k < 0 or k >= len(frame):
        raise BayesMoeError(
            f"--holdout-top-compute {k} must be between 0 and {len(frame) - 1} (the table has {len(frame)} runs)"
        )
    order = np.argsort(frame["compute"].to_numpy(), kind="stable")
    held = np.zeros(len(frame), dtype=bool)
    held[order[len(frame) - k:]] = True
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def load_runs(
    source: str | PathLike | pd.DataFrame,
    *,
    required: Iterable[str] = (),
    law: str | None = None,
    where: str | None = None,
    exclude_top_loss: int = 0,
) -> pd.DataFrame:
    """Load, validate and filter a runs table (see :func:`validate_runs` and :func:`select_runs`)."""
    frame = validate_runs(source, required=required, law=law)
    return select_runs(frame, where=where, exclude_top_loss=exclude_top_loss)


def data_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the table's canonical CSV text (columns sorted), to identify the data a fit saw."""
    text = frame.reindex(sorted(frame.columns), axis=1).to_csv(index=False, float_format="%.12g")
    return hashlib.sha256(text.encode()).hexdigest()
