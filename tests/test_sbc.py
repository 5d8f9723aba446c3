"""Simulation-based calibration, CI-sized (benchmarks/sbc.py runs >= 100 replicates per law).

With the prior the data were drawn from, the truths' ranks among the posterior draws are uniform; with a
deliberately mis-specified prior (the irreducible loss forced about e times too high) they are not, and
the same loose test says so.
"""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from bayesmoe.errors import BayesMoeError
from bayesmoe.model import Prior
from bayesmoe.report.html import FigureWriter
from bayesmoe.report.sbc import read_sbc, sbc_section, sbc_table, uniformity

_SPEC = importlib.util.spec_from_file_location("sbc", Path(__file__).resolve().parents[1] / "benchmarks" / "sbc.py")
sbc = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(sbc)

SMALL = {"chains": 1, "warmup": 150, "draws": 100}
#: loose: a calibrated fit fails it once in a thousand runs.
ALPHA = 1e-3


def test_rank_and_uniformity_helpers():
    draws = np.arange(200, dtype=float).reshape(2, 100)
    rng = np.random.default_rng(0)
    assert sbc.rank(draws, -1.0, rng) == 0 and sbc.rank(draws, 1e9, rng) == sbc.L
    assert sbc.rank(draws, 99.5, rng) == sbc.L // 2  # half of each chain's thinned draws lie below
    uniform = np.random.default_rng(1).integers(0, sbc.L + 1, 400)
    assert uniformity(uniform, sbc.L) > ALPHA
    assert uniformity(np.zeros(40, dtype=int), sbc.L) < 1e-6


def test_sbc_passes_with_the_true_prior_and_fails_with_a_wrong_one():
    calibrated = [sbc.replicate("chinchilla", seed, **SMALL) for seed in range(8)]
    for name in calibrated[0]["ranks"]:
        ranks = np.array([r["ranks"][name] for r in calibrated])
        assert uniformity(ranks, sbc.L, bins=4) > ALPHA, (name, ranks)
    wrong = {"E": Prior(float(np.log(2.0)) + 1.0, 0.05)}
    biased = [sbc.replicate("chinchilla", seed, fit_prior=wrong, **SMALL) for seed in range(8)]
    ranks = np.array([r["ranks"]["E"] for r in biased])
    assert uniformity(ranks, sbc.L, bins=4) < ALPHA, ranks


@pytest.mark.slow
def test_sbc_pooled_routing_replicate_runs():
    record = sbc.replicate("routing_pooled", 0, **SMALL)
    assert {"b_tau", "c_tau", "opt_loss", "sigma"} <= set(record["ranks"])
    assert all(0 <= r <= sbc.L for r in record["ranks"].values())


def _write_results(folder: Path, model: str, ranks: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(ranks.values())))
    lines = [json.dumps({"replicate": i, "L": sbc.L, "ranks": {q: int(r[i]) for q, r in ranks.items()},
                         "code": "abc1234"}) for i in range(n)]
    (folder / f"{model}.jsonl").write_text("\n".join(lines) + "\n")


def test_sbc_section_flags_the_quantity_whose_ranks_are_not_uniform(tmp_path):
    rng = np.random.default_rng(3)
    results = tmp_path / "sbc"
    # `alpha` ranks pile up at the top (a biased posterior); `E` ranks are uniform
    _write_results(results, "toy", {"E": rng.integers(0, sbc.L + 1, 200), "alpha": rng.integers(80, sbc.L + 1, 200)})
    table = sbc_table(read_sbc(results)).set_index("quantity")
    assert table.loc["E", "p_value"] > ALPHA and table.loc["alpha", "p_value"] < 1e-6
    assert (table["replicates"] == 200).all() and (table["code"] == "abc1234").all()
    (tmp_path / "out").mkdir()
    section = sbc_section(read_sbc(results), results, FigureWriter(tmp_path / "out"))
    assert section.id == "sbc" and "toy alpha" in section.body and "toy E" not in section.body
    assert (tmp_path / "out" / "sbc-toy.png").read_bytes().startswith(b"\x89PNG")


def test_sbc_results_errors_name_the_folder_and_line(tmp_path):
    with pytest.raises(BayesMoeError, match="not a folder"):
        read_sbc(tmp_path / "missing")
    with pytest.raises(BayesMoeError, match="no <model>.jsonl"):
        read_sbc(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"replicate": 0, "L": 100, "ranks": {}}\nnot json\n')
    with pytest.raises(BayesMoeError, match=r"bad.jsonl: line 2 is not JSON"):
        read_sbc(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"replicate": 0}\n')
    with pytest.raises(BayesMoeError, match=r"bad.jsonl: line 1 has no 'ranks'"):
        read_sbc(tmp_path)
