"""The catalogue of runs tables shipped with bayesmoe (package ``bayesmoe.shipped``): names, provenance, files.

Kept apart from :mod:`bayesmoe.runs.datasets` so that the table reader (:mod:`bayesmoe.runs.table`) can
resolve ``dataset:NAME`` without importing the loader that validates through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from ..errors import BayesMoeError


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
            "80 small MoE and dense runs from bayesmoe's own trainer on CPU (cpu-v2): isoFLOP profiles at 1e11, "
            "3e11 and 1e12 real FLOPs and held-out profiles at 2e12 and 1e13, E 1-32, granularity 1-4, "
            "one shared-expert family",
            "bayesmoe `python -m trainer sweep` (make sweep); provenance in trainer_cpu_sweep.md",
            "Apache-2.0 (made by this project)",
            80,
            "group = trainer-cpu-v2 (one sweep)",
            "granularity, joint, chinchilla, five_factor, holistic",
        ),
        DatasetInfo(
            "trainer_gpu_extension",
            "33 runs of the CPU sweep's recipe on one GPU (float32): 24 past its top budget, at 3e13, 1e14 and "
            "3e14 real FLOPs (dense and E 16 top-2; 3e14 dense only, predicted before it was trained), and 9 "
            "replicas of its 1e13 runs (design = replica)",
            "bayesmoe `make gpu-check` (python -m trainer sweep --plan benchmarks/gpu_sweep_plan_v2.csv, "
            "then _v3.csv and _v4.csv); "
            "provenance in trainer_gpu_extension.md",
            "Apache-2.0 (made by this project)",
            33,
            "group = trainer-gpu-v2 (one sweep); design = core or replica",
            "joint, chinchilla (test data for fits of trainer_cpu_sweep)",
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


def resolve(name: str) -> DatasetInfo:
    key = str(name).replace("-", "_")
    if key not in DATASETS:
        raise BayesMoeError(f"unknown dataset '{name}'; shipped datasets: {', '.join(DATASETS)}")
    return DATASETS[key]


def list_datasets() -> dict[str, DatasetInfo]:
    """The shipped runs tables by name."""
    return dict(DATASETS)


def path(name: str) -> Traversable:
    """The installed CSV of dataset ``name`` (an ``importlib.resources`` traversable)."""
    return resources.files("bayesmoe.shipped").joinpath(f"{resolve(name).name}.csv")


def attribution(name: str) -> str:
    """The dataset's attribution / licence notice (markdown)."""
    return resources.files("bayesmoe.shipped").joinpath(f"{resolve(name).name}.md").read_text()
