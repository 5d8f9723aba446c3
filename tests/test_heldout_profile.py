"""benchmarks/heldout_profile.py: a recorded prediction scored against the runs trained since (no fit)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

_SPEC = importlib.util.spec_from_file_location(
    "heldout_profile", Path(__file__).resolve().parents[1] / "benchmarks" / "heldout_profile.py")
heldout_profile = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(heldout_profile)

FAMILY = {"n_experts": 1.0, "top_k": 1.0, "granularity": 1.0, "shared_ratio": 0.0}


def _runs(losses: dict[str, float], sizes: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"run_id": r, "loss": loss, "n_active": sizes[r], "budget": 3e14, **FAMILY}
                         for r, loss in losses.items()])


def _prediction() -> dict:
    sizes = {"a": 4e5, "b": 7.38336e5, "c": 2e6}
    bands = {"a": [1.25, 1.28, 1.31], "b": [1.24, 1.28, 1.32], "c": [1.27, 1.31, 1.35]}
    # the law-only size band's top is the middle run's size rounded through exp(log(n)), as the grid gives it
    top = float(np.exp(np.log(7.38336e5)))
    return {"plan": "plan.csv",
            "predictions": [{"run_id": r, "n_active": sizes[r], "compute": 3e14, "law_only": bands[r],
                             "with_discrepancy": [bands[r][0] - 0.01, bands[r][1], bands[r][2] + 0.01]}
                            for r in sizes],
            "profiles": [{"family": FAMILY, "sizes": 3, "budget": 3e14, "band": [4e5, 6e5, 1.0e6],
                          "law_only": [4.2e5, 6e5, top * (1 - 1e-15)]}]}, sizes


def test_score_counts_runs_in_each_band_and_the_best_size_in_each_size_band():
    prediction, sizes = _prediction()
    # a inside both; b below the law-only band but inside the wider one; c below both
    scored = heldout_profile.score_prediction(prediction, _runs({"a": 1.30, "b": 1.235, "c": 1.25}, sizes))
    inside = {r["run_id"]: (r["inside_law_only"], r["inside_with_discrepancy"]) for r in scored["runs"]}
    assert inside == {"a": (True, True), "b": (False, True), "c": (False, False)}
    assert scored["coverage_law_only"] == 1 / 3 and scored["coverage_with_discrepancy"] == 2 / 3
    (profile,) = scored["profiles"]
    assert profile["observed_best"] == sizes["b"]
    assert profile["inside"] and profile["inside_law_only"]   # at the band's edge, off by rounding only


def test_score_leaves_out_runs_and_profiles_not_trained_yet():
    prediction, sizes = _prediction()
    scored = heldout_profile.score_prediction(prediction, _runs({"a": 1.30, "c": 1.33}, sizes))
    assert [r["run_id"] for r in scored["runs"]] == ["a", "c"]
    assert scored["profiles"] == []          # 2 of the profile's 3 sizes: no observed best size yet
    best_elsewhere = heldout_profile.score_prediction(prediction, _runs({"a": 1.30, "b": 1.32, "c": 1.26}, sizes))
    assert best_elsewhere["profiles"][0]["observed_best"] == sizes["c"]
    assert not best_elsewhere["profiles"][0]["inside"] and not best_elsewhere["profiles"][0]["inside_law_only"]
