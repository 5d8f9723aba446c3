"""Real runs tables shipped with bayesmoe (package ``bayesmoe.shipped``), each with its licence.

>>> import bayesmoe.datasets as ds
>>> ds.list_datasets()                  # name -> DatasetInfo(title, source, licence, n_runs, ...)
>>> runs = ds.load("clark2022_routing") # validated runs table (docs/runs-table.md) (pandas DataFrame)

Shipped: ``clark2022_routing`` (Clark et al. 2022, CC-BY 4.0), ``gadre2024_overtraining``
(Gadre et al. 2024, MIT), ``trainer_cpu_sweep`` (this project's own CPU sweep) and ``trainer_gpu_extension``
(that sweep's recipe on a GPU at 3e13, 1e14 and 3e14 FLOPs, plus replicas of its 1e13 runs). Each CSV comes with
``<name>.md`` holding the attribution or licence notice. Names may be spelled with ``-`` instead of ``_``.
Every command that reads a runs table accepts ``dataset:NAME`` in place of a file, e.g.
``bayesmoe fit dataset:clark2022_routing --law routing ...``. The Epoch AI Chinchilla extraction has no
licence and is not shipped: read it in place with :func:`bayesmoe.load_runs`.
"""
from __future__ import annotations

import pandas as pd

from .catalogue import DATASETS, DatasetInfo, attribution, list_datasets, path, resolve
from .table import validate_runs

__all__ = ["DATASETS", "DatasetInfo", "attribution", "list_datasets", "load", "path"]


def load(name: str) -> pd.DataFrame:
    """The shipped runs table ``name``, validated (docs/runs-table.md), original columns kept.

    Args:
        name: a key of :func:`list_datasets` (``"clark2022_routing"``, ``"gadre2024_overtraining"``).

    Returns:
        DataFrame, one row per run, with ``run_id``, ``group``, ``loss`` (nats), ``tokens``,
        ``n_active``, ``n_total``, ... filled as :func:`bayesmoe.runs.validate_runs` does.
    """
    return validate_runs(f"dataset:{resolve(name).name}")
