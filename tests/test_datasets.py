"""Shipped real runs tables (issue 11): loading, licences, the CLI, and ``--where`` on Clark et al.'s runs."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe import datasets
from bayesmoe.errors import BayesMoeError
from bayesmoe.runs import select_runs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_clark_loads_with_the_documented_design():
    runs = datasets.load("clark2022_routing")
    assert len(runs) == 223
    # SOURCE: 13 dense and 210 routed runs; the notebook subset has 5 Dense, 53 S-Base, 54 RL-R, 51 Hash
    assert (runs["n_experts"] == 1).sum() == 13
    subset = runs[runs["clark_notebook_subset"].astype(bool)]
    assert subset["group"].value_counts().to_dict() == {"RL-R": 54, "S-Base": 53, "Hash": 51, "Dense": 5}
    assert runs["n_total"].ge(runs["n_active"]).all()
    assert runs["tokens"].max() / runs["tokens"].min() < 1.01  # every run saw ~1.305e11 tokens


def test_gadre_loads_with_three_corpora_and_embeddings():
    runs = datasets.load("gadre2024-overtraining")  # '-' spelling accepted
    assert len(runs) == 104
    assert runs["group"].value_counts().to_dict() == {"rpj": 35, "rw_original": 35, "c4_original": 34}
    # n_active excludes input embedding and untied output layer: params - 2 * 50,432 * d_model
    assert np.allclose(runs["n_active"], runs["params"] - 2 * 50432 * runs["d_model"])
    assert np.allclose(runs["n_embedding"], 2 * 50432 * runs["d_model"])


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent")
@pytest.mark.parametrize(
    "name, folder", [("clark2022_routing", "clark2022-routing"), ("gadre2024_overtraining", "gadre2024-overtraining")]
)
def test_shipped_tables_equal_the_source_tables(name, folder):
    shipped = datasets.load(name)
    source = pd.read_csv(SHARED / folder / "runs.csv")
    assert list(shipped["run_id"]) == list(source["run_id"])
    assert np.array_equal(shipped["loss"].to_numpy(), source["loss"].to_numpy())


def test_licences_ship_with_the_data():
    clark = datasets.attribution("clark2022_routing")
    assert "CC-BY 4.0" in clark and "DeepMind" in clark and "2202.01169" in clark
    gadre = datasets.attribution("gadre2024_overtraining")
    assert "MIT License" in gadre and "Copyright (c) 2024 mlfoundations" in gadre
    own = datasets.attribution("trainer_cpu_sweep")
    assert "python -m trainer sweep" in own and "Hardware" in own
    gpu = datasets.attribution("trainer_gpu_extension")
    assert "NVIDIA H200" in gpu and "replica" in gpu and "Apache-2.0" in gpu
    assert set(datasets.list_datasets()) == {"clark2022_routing", "gadre2024_overtraining", "trainer_cpu_sweep",
                                             "trainer_gpu_extension"}


def test_gpu_extension_continues_the_cpu_sweep():
    """The GPU runs use the CPU sweep's recipe: their replicas of 1e13 runs carry the same plan rows and land
    within the sweep's seed noise (sd 0.007-0.010) of the CPU losses; the core runs lie past its top budget."""
    cpu = datasets.load("trainer_cpu_sweep").set_index("run_id")
    gpu = datasets.load("trainer_gpu_extension")
    assert len(gpu) == datasets.list_datasets()["trainer_gpu_extension"].n_runs
    assert set(gpu["precision"]) == {"fp32"} and gpu["device"].str.contains("H200").all()
    core, replica = gpu[gpu["design"] == "core"], gpu[gpu["design"] == "replica"].set_index("run_id")
    assert core["compute"].min() > 2 * cpu["compute"].max()
    assert set(replica.index) <= set(cpu.index)
    for column in ("n_active", "tokens", "batch_seqs", "steps", "lr", "seed", "compute"):
        assert np.allclose(replica[column].astype(float), cpu.loc[replica.index, column].astype(float)), column
    diff = replica["loss"] - cpu.loc[replica.index, "loss"]
    assert np.abs(diff).max() < 0.02 and abs(diff.mean()) < 0.005


def test_gpu_extension_runs_are_their_plans_rows_and_the_3e14_prediction_covers_them():
    """Every GPU run trained a row of one of the committed plans, unchanged; the prediction recorded before the
    3e14 runs (benchmarks/prediction_3e14.json) names exactly the plan-v3 runs."""
    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    gpu = datasets.load("trainer_gpu_extension").set_index("run_id")
    plans = pd.concat([pd.read_csv(bench / f"gpu_sweep_plan_{v}.csv") for v in ("v2", "v3", "v4")])
    plans = plans.drop_duplicates("run_id").set_index("run_id")
    assert set(gpu.index) <= set(plans.index)
    for column in ("n_active", "tokens", "n_layers", "d_model", "n_experts", "top_k", "batch_seqs", "steps", "lr"):
        assert np.allclose(gpu[column].astype(float), plans.loc[gpu.index, column].astype(float)), column
    predicted = {p["run_id"] for p in json.loads((bench / "prediction_3e14.json").read_text())["predictions"]}
    assert predicted == set(pd.read_csv(bench / "gpu_sweep_plan_v3.csv")["run_id"])
    assert set(gpu.index[gpu["budget"] == 3e14]) <= predicted


def test_unknown_dataset_is_a_clean_error():
    with pytest.raises(BayesMoeError, match="unknown dataset 'chinchilla'.*clark2022_routing"):
        datasets.load("chinchilla")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "bayesmoe.cli.main", *args], capture_output=True, text=True)


def test_cli_lists_datasets_as_json_and_exports(tmp_path):
    out = _cli("datasets", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)["datasets"]
    assert info["clark2022_routing"]["licence"].startswith("CC-BY 4.0")
    assert info["gadre2024_overtraining"]["n_runs"] == 104
    out = _cli("datasets", "--export", "clark2022_routing", str(tmp_path / "clark.csv"))
    assert out.returncode == 0, out.stderr
    assert len(pd.read_csv(tmp_path / "clark.csv")) == 223
    assert "CC-BY" in (tmp_path / "clark.md").read_text()


def test_where_selects_the_papers_subset():
    runs = datasets.load("clark2022_routing")
    kept = select_runs(runs, where="top_k == 1 and routing_frequency == 0.5")
    # top_k is 1 for every dense run (13), plus 51 Hash + 54 RL-R + 53 S-Base routed top-1 runs at frequency 0.5
    assert len(kept) == 171
    assert kept["top_k"].eq(1).all() and kept["routing_frequency"].eq(0.5).all()
    # the original column k is the FLOP increase for dense runs: k == 1 drops the 5 widened dense runs
    assert len(select_runs(runs, where="k == 1 and routing_frequency == 0.5")) == 166
    kept = select_runs(runs, where="group == 'Hash' and n_experts >= 64")
    assert set(kept["group"]) == {"Hash"} and kept["n_experts"].min() == 64


@pytest.mark.parametrize("expr, message", [
    ("top_k === 1", "invalid --where expression"),
    ("no_such_column > 3", "invalid --where expression"),
    ("n_experts + 1", "not a true/false condition"),
    ("n_experts > 100000", "keeps no runs"),
])
def test_where_errors_are_clean(expr, message):
    with pytest.raises(BayesMoeError, match=message):
        select_runs(datasets.load("clark2022_routing"), where=expr)


def test_cli_fit_with_invalid_where_exits_2(tmp_path):
    csv = tmp_path / "clark.csv"
    datasets.load("clark2022_routing").to_csv(csv, index=False)
    out = _cli("fit", str(csv), "--law", "routing", "--out", str(tmp_path / "f.nc"), "--where", "top_k == = 1")
    assert out.returncode == 2
    assert out.stderr.startswith("error: invalid --where expression") and "Traceback" not in out.stderr


def test_fit_where_keeps_only_matching_runs():
    with warnings.catch_warnings():  # short chains may warn on diagnostics; the selection is what is tested
        warnings.simplefilter("ignore")
        fit = bayesmoe.fit(
            datasets.load("clark2022_routing"),
            "routing",
            where="group in ['Dense', 'S-Base'] and top_k == 1 and routing_frequency == 0.5",
            chains=1,
            warmup=100,
            draws=100,
            seed=1,
            progress_bar=False,
        )
    assert fit.meta["n_runs"] == 13 + 53  # every dense run has top_k 1 and frequency 0.5
    assert fit.meta["selection"]["where"].startswith("group in")
    assert set(fit.runs["group"]) == {"Dense", "S-Base"}


@pytest.mark.parametrize("name", ["clark2022_routing", "gadre2024_overtraining", "trainer_cpu_sweep"])
def test_catalogue_counts_match_the_shipped_tables(name):
    from bayesmoe.runs.catalogue import DATASETS

    info = DATASETS[name]
    assert info.n_runs == len(datasets.load(name))
    assert str(info.n_runs) in info.title
