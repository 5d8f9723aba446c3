"""Shared test settings: float64 JAX for the whole session, small MCMC settings, the location of ../shared/data."""
import os
from pathlib import Path

import pytest

import bayesmoe

os.environ.setdefault("MPLBACKEND", "Agg")
#: the tests compute with jax.numpy directly, as a program that calls bayesmoe.configure() does.
bayesmoe.configure()

#: ../shared/data beside the checkout (tests that read it skip when it is absent).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: CI-sized NUTS settings.
FAST = {"chains": 2, "warmup": 400, "draws": 400, "progress_bar": False}


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path
