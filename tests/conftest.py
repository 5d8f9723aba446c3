"""Shared test settings: small MCMC settings and the location of ../shared/data."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

#: ../shared/data beside the checkout (tests that read it skip when it is absent).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: CI-sized NUTS settings.
FAST = {"chains": 2, "warmup": 400, "draws": 400, "progress_bar": False}


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path
