"""Layer 1, the data: the runs table (reading, validation, derived columns) and the shipped datasets.

Imports nothing from bayesmoe but :mod:`bayesmoe.errors`. The table's columns, units and rules are
described in ``docs/runs-table.md``.
"""
from .groups import group_labels, has_group_columns
from .table import data_hash, load_runs, read_table, select_runs, split_top_compute, validate_runs

__all__ = ["data_hash", "group_labels", "has_group_columns", "load_runs", "read_table", "select_runs",
           "split_top_compute", "validate_runs"]
