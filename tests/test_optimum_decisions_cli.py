"""`bayesmoe optimum --json` on fits of our sweep: trainable configurations, extrapolation factors and
conventions per budget; the granularity law's expansion rate; the routing law asked by active size."""

import json

import pytest

from bayesmoe.cli.main import main
from bayesmoe.runs import read_table, validate_runs

TINY = ["--chains", "2", "--warmup", "150", "--draws", "100"]
SWEEP = validate_runs(read_table("dataset:trainer_cpu_sweep"))
LARGEST = float(SWEEP["compute"].max())
INTEGERS = ("d_model", "n_layers", "n_heads", "n_experts", "top_k", "granularity")


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decisions")
    paths = {}
    for law in ("joint", "granularity"):
        paths[law] = folder / f"{law}.nc"
        assert main(["fit", "dataset:trainer_cpu_sweep", "--law", law, "--out", str(paths[law]), *TINY]) == 0
    return paths


def _check(out: dict, budgets: list[float]):
    assert out["conventions"]["family"]["name"] == "runs"
    assert out["conventions"]["n_counts"] and out["conventions"]["family"]["flop_model"]
    assert len(out["recommendations"]) == len(budgets)
    for budget, rec in zip(budgets, out["recommendations"]):
        config = rec["config"]
        for key in INTEGERS:
            assert isinstance(config[key], int) and config[key] >= 1, key
        assert config["d_model"] % config["n_heads"] == 0
        assert config["tokens"] >= 1 and config["loss"]["q05"] <= config["loss"]["q50"] <= config["loss"]["q95"]
        assert rec["extrapolation"] == pytest.approx(budget / LARGEST)


def test_joint_optimum_gives_trainable_configs(capsys, fits):
    budgets = [5 * LARGEST, 300 * LARGEST]
    code, out, _ = run(capsys, "optimum", fits["joint"], "--compute", *budgets, "--json")
    assert code == 0
    result = json.loads(out)
    _check(result, budgets)
    near, far = result["recommendations"]
    assert not any("past 10x" in w for w in near["warnings"])
    assert any("past 10x" in w and "bands of sizes and tokens" in w for w in far["warnings"])
    assert 0 <= near["moe_vs_dense"]["p_moe_beats_dense"] <= 1
    assert near["dense_config"]["n_experts"] == 1


def test_granularity_uses_the_runs_expansion_or_asks_for_it(capsys, fits):
    moe = SWEEP[SWEEP["n_experts"] > 1]
    rates = sorted(set((moe["n_experts"] / moe["granularity"]).round(6)))
    code, out, err = run(capsys, "optimum", fits["granularity"], "--compute", 1e14, "--json")
    if len(rates) > 1:
        assert code == 2 and out == "" and "--expansion" in err and "Traceback" not in err
    else:
        assert code == 0 and json.loads(out)["conventions"]["expansion_rate"]["value"] == rates[0]
    code, out, _ = run(capsys, "optimum", fits["granularity"], "--compute", 1e14, "--expansion", 8, "--json")
    assert code == 0
    result = json.loads(out)
    _check(result, [1e14])
    assert result["conventions"]["expansion_rate"]["value"] == 8
    config = result["recommendations"][0]["config"]
    assert config["n_experts"] in (1, 8 * config["granularity"])
    optimal = result["budgets"][0]["optimal"]
    assert optimal["n_experts"]["q50"] == 8 * optimal["granularity"]["q50"]


def test_routing_compute_is_an_error_naming_n_active(capsys):
    code, out, err = run(
        capsys, "optimum", "--law", "routing", "--coefficients", "routing:clark2022-sbase", "--compute", 1e20
    )
    assert code == 2 and out == "" and "--n-active" in err and err.count("error:") == 1


def test_routing_by_active_size(capsys):
    code, out, _ = run(
        capsys,
        "optimum",
        "--law",
        "routing",
        "--coefficients",
        "routing:clark2022-sbase",
        "--n-active",
        1e8,
        1e13,
        "--json",
    )
    result = json.loads(out)
    assert code == 0 and result["law"] == "routing"
    small, large = result["n_active"]
    assert small["best_n_experts"]["q50"] > 1 and large["best_n_experts"]["q50"] == 1
    assert 1e8 < result["crossover_n_active"]["q50"] < 1e13
    # the search's edge is said where the best count reaches it, and never where dense wins
    top = max(result["candidates_n_experts"])
    assert any("largest candidate" in w for w in small["warnings"]) == (small["best_n_experts"]["q95"] >= top)
    assert not any("largest candidate" in w for w in large["warnings"])
    # a published set has no runs, so no extrapolation factor; the bands' assumption is stated
    assert result["crossover_extrapolation"] is None and result["crossover_warnings"] == []
    assert "law's form holds" in result["conventions"]["discrepancy"]


def test_n_active_on_a_law_with_a_data_term_is_an_error(capsys, fits):
    code, out, err = run(capsys, "optimum", fits["joint"], "--n-active", 1e8)
    assert code == 2 and out == "" and "--compute" in err


def test_decisions_from_a_fit_that_failed_its_diagnostics_say_so(fits, capsys):
    # 2 chains x 100 draws cannot reach a bulk/tail ESS of 400: the fit fails its diagnostics
    code, out, _ = run(capsys, "optimum", fits["joint"], "--compute", 10 * LARGEST, "--json")
    assert code == 0
    warnings = json.loads(out)["fit_warnings"]
    assert len(warnings) == 1 and "failed its diagnostics" in warnings[0] and "ESS" in warnings[0]
    code, out, _ = run(capsys, "optimum", fits["joint"], "--compute", 10 * LARGEST)
    assert code == 0 and out.splitlines()[1].startswith("WARNING:") and "failed its diagnostics" in out


def test_a_continuous_optimum_far_from_the_recommendation_is_flagged():
    from bayesmoe.cli.optimum import _continuous_mismatch

    rec = {"config": {"n_active": 2.6e5}}
    assert "does not fit this family" in _continuous_mismatch({"n_active": {"q05": 0.7, "q50": 4.1, "q95": 18}}, rec)
    assert _continuous_mismatch({"n_active": {"q25": 1e5, "q50": 2e5, "q75": 4e5}}, rec) is None
    assert _continuous_mismatch({"n_active": {"q05": 1.0, "q50": 2.0, "q95": 3.0}}, None) is None


def test_a_mismatched_continuous_optimum_is_not_printed_as_numbers(fits, capsys):
    code, out, _ = run(capsys, "optimum", fits["joint"], "--compute", 10 * LARGEST, "--json")
    budget = json.loads(out)["budgets"][0]
    rec = json.loads(out)["recommendations"][0]
    from bayesmoe.cli.optimum import _continuous_mismatch

    code, text, _ = run(capsys, "optimum", fits["joint"], "--compute", 10 * LARGEST)
    assert code == 0
    if _continuous_mismatch(budget["optimal"], rec):   # our sweep's tiny models: the paper's architecture is off
        assert "continuous optimum not shown" in text and "tokens_per_param" not in text
    else:
        assert "continuous optimum (the law's published architecture" in text and "tokens_per_param" in text


def test_routing_fit_states_how_far_its_crossover_lies_past_the_runs(tmp_path, capsys):
    from bayesmoe.runs import load_runs

    where = "routing_frequency == 0.5 and top_k == 1"
    path = tmp_path / "routing.nc"
    assert main(["fit", "dataset:clark2022_routing", "--law", "routing", "--where", where, "--out", str(path),
                 *TINY]) == 0
    capsys.readouterr()
    largest = float(load_runs("dataset:clark2022_routing", law="routing", where=where)["n_active"].max())
    code, out, _ = run(capsys, "optimum", path, "--n-active", 1e9, "--json")
    result = json.loads(out)
    factor = result["crossover_extrapolation"]
    assert code == 0 and factor == pytest.approx(result["crossover_n_active"]["q50"] / largest)
    assert bool(result["crossover_warnings"]) == (factor > 100)
    assert "validate" in result["conventions"]["discrepancy"]  # no term learned: the output says so
