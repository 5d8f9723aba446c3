"""Real runs tables shipped with bayesmoe (package ``bayesmoe.shipped``), each with its licence.

>>> import bayesmoe.datasets as ds
>>> ds.list_datasets()                  # name -> DatasetInfo(title, source, licence, n_runs, ...)
>>> runs = ds.load("clark2022_routing") # validated SPEC §1 runs table (pandas DataFrame)

Shipped: ``clark2022_routing`` (Clark et al. 2022, CC-BY 4.0), ``gadre2024_overtraining``
(Gadre et al. 2024, MIT) and ``trainer_cpu_sweep`` (this project's own CPU sweep). Each CSV comes with ``<name>.md`` holding the attribution or licence notice.
Names may be spelled with ``-`` instead of ``_``. Every command that reads a runs table accepts
``dataset:NAME`` in place of a file, e.g. ``bayesmoe fit dataset:clark2022_routing --law routing ...``. The Epoch AI Chinchilla extraction has no licence and
is not shipped: read it in place with :func:`bayesmoe.load_runs`.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pandas as pd

from .errors import BayesMoeError
from .runs import validate_runs


@dataclass(frozen=True)
class DatasetInfo:
    """What a shipped runs table is and where it comes from."""

    name: str
    title: str
    source: str
    licence: str
    n_runs: int
    groups: str
    laws: str


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "trainer_cpu_sweep",
            "81 small MoE and dense runs from bayesmoe's own trainer on CPU, isoFLOP curves at 1e10-1e13 FLOPs, "
            "E 1-32, granularity 1-4, one shared-expert family",
            "bayesmoe `python -m trainer sweep` (make sweep); provenance in trainer_cpu_sweep.md",
            "Apache-2.0 (made by this project)",
            81,
            "group = trainer-cpu-v1 (one sweep)",
            "granularity, joint, chinchilla, five_factor, holistic",
        ),
        DatasetInfo(
            "clark2022_routing",
            "223 routed and dense LM runs, 15M-1.3B dense parameters, 1-512 experts, routers S-Base/RL-R/Hash",
            "Clark et al. 2022, Unified Scaling Laws for Routed Language Models, arXiv 2202.01169; "
            "github.com/google-deepmind/scaling_laws_for_routing @ 42da0c39",
            "CC-BY 4.0, Copyright 2022 DeepMind Technologies Limited",
            223,
            "group = router type (Dense, S-Base, RL-R, Hash)",
            "routing, joint (tokens constant: D term reduced)",
        ),
        DatasetInfo(
            "gadre2024_overtraining",
            "104 dense LM runs on C4/RedPajama/RefinedWeb, 0.9M-6.5B parameters, 5-640 tokens per parameter",
            "Gadre et al. 2024, Language models scale reliably with over-training and on downstream tasks, "
            "arXiv 2403.08540; github.com/mlfoundations/scaling @ a003c491",
            "MIT, Copyright (c) 2024 mlfoundations",
            104,
            "group = training corpus (c4_original, rpj, rw_original); loss = C4 eval",
            "chinchilla",
        ),
    )
}


def _resolve(name: str) -> DatasetInfo:
    key = str(name).replace("-", "_")
    if key not in DATASETS:
        raise BayesMoeError(f"unknown dataset '{name}'; shipped datasets: {', '.join(DATASETS)}")
    return DATASETS[key]


def list_datasets() -> dict[str, DatasetInfo]:
    """The shipped runs tables by name."""
    return dict(DATASETS)


def path(name: str):
    """The installed CSV of dataset ``name`` (an ``importlib.resources`` traversable)."""
    return resources.files("bayesmoe.shipped").joinpath(f"{_resolve(name).name}.csv")


def attribution(name: str) -> str:
    """The dataset's attribution / licence notice (markdown)."""
    return resources.files("bayesmoe.shipped").joinpath(f"{_resolve(name).name}.md").read_text()


def load(name: str) -> pd.DataFrame:
    """The shipped runs table ``name``, validated (SPEC §1), original columns kept.

    Args:
        name: a key of :func:`list_datasets` (``"clark2022_routing"``, ``"gadre2024_overtraining"``).

    Returns:
        DataFrame, one row per run, with ``run_id``, ``group``, ``loss`` (nats), ``tokens``,
        ``n_active``, ``n_total``, ... filled as :func:`bayesmoe.runs.validate_runs` does.
    """
    return validate_runs(f"dataset:{_resolve(name).name}")
