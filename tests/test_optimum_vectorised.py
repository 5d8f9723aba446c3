"""Optimum over many draws and budgets at once, the quantile conventions of docs/cli.md, mixtures, errors, CLI."""
import json

import numpy as np
import pytest

from bayesmoe.cli.main import main
from bayesmoe.decide.optimum import OptimumResult, PointPosterior, mixture, optimum
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws import get_law


class Draws:
    """A posterior stand-in: the published set with every parameter jittered (S draws)."""

    def __init__(self, law, coefficients, n=40, scale=0.02, seed=0):
        self.law = get_law(law)
        base = PointPosterior.from_set(law, coefficients).draws()
        rng = np.random.default_rng(seed)
        self.values = {k: v[0] * (1 + scale * rng.standard_normal(n)) if k in self.law.param_names else np.full(n, v[0])
                       for k, v in base.items()}

    def draws(self, group=None, seed=0):
        return self.values


@pytest.mark.parametrize("law,coefficients,options", [
    ("granularity", "granularity:krajewski2024", {}),
    ("joint", "joint:ludziejewski2025", {}),
    ("joint", "joint:ludziejewski2025", {"objective": "memory", "memory": 80e9}),
])
def test_vectorised_equals_one_draw_at_a_time(law, coefficients, options):
    post = Draws(law, coefficients)
    budgets = [1e19, 1e21, 1e23]
    together = optimum(post, budgets, **options)
    for s in (0, 17, 39):
        single = PointPosterior(post.law, {k: post.values[k][s] for k in post.law.param_names})
        alone = optimum(single, budgets, **options)
        for key, value in alone.draws.items():
            np.testing.assert_allclose(together.draws[key][s], value[0], rtol=1e-8)


def test_bands_widen_with_parameter_uncertainty():
    narrow = optimum(Draws("joint", "joint:ludziejewski2025", n=400, scale=0.002), [1e21])
    wide = optimum(Draws("joint", "joint:ludziejewski2025", n=400, scale=0.02), [1e21])

    def width(r):
        q = r.quantiles(0.9)[0]["optimal"]["n_active"]
        return q["q95"] / q["q05"]

    assert width(wide) > width(narrow) > 1


def test_quantile_conventions_for_near_optimal_d():
    draws = {
        "loss": np.array([[2.0], [2.2]]),
        "d_model_near_optimal_lo": np.array([[1000.0], [1200.0]]),
        "d_model_near_optimal_hi": np.array([[3000.0], [3400.0]]),
        "p_near_optimal_d:2048": np.array([[1.0], [0.0]]),
        "p_near_optimal_d:4096": np.array([[0.0], [0.0]]),
    }
    out = OptimumResult("holistic", "compute", np.array([1e21]), draws).quantiles(0.9)[0]["optimal"]
    assert set(out) == {"loss", "d_model_near_optimal", "p_near_optimal_d"}
    assert out["d_model_near_optimal"]["lo"]["q50"] == pytest.approx(1100.0)
    assert out["d_model_near_optimal"]["hi"]["q95"] == pytest.approx(3380.0)
    assert out["p_near_optimal_d"] == {"2048": 0.5, "4096": 0.0}


def test_mixture_resamples_by_weight():
    budgets = np.array([1e20, 1e21])
    a = OptimumResult("joint", "compute", budgets, {"loss": np.full((1000, 2), 1.0), "n_experts": np.ones((1000, 2))})
    b = OptimumResult("granularity", "compute", budgets, {"loss": np.full((500, 2), 2.0)})
    mixed = mixture([a, b], [0.25, 0.75], draws=8000)
    assert set(mixed.draws) == {"loss"}
    assert np.mean(mixed.draws["loss"] == 2.0) == pytest.approx(0.75, abs=0.02)
    assert mixed.law == "joint+granularity"
    with pytest.raises(BayesMoeError):
        mixture([a, b], [0.0, 0.0])


def test_errors():
    joint = PointPosterior.from_set("joint", "joint:ludziejewski2025")
    with pytest.raises(BayesMoeError, match="--memory"):
        optimum(joint, [1e21], objective="memory")
    with pytest.raises(BayesMoeError, match="--inference-tokens"):
        optimum(joint, [1e21], objective="inference")
    with pytest.raises(BayesMoeError, match="only --objective compute"):
        optimum(PointPosterior.from_set("granularity", "krajewski2024"), [1e21], objective="memory", memory=1e9)
    with pytest.raises(BayesMoeError, match="budgets"):
        optimum(joint, [-1.0])


def test_infeasible_memory_gives_nulls(capsys):
    """A memory budget no model fits (1 MB) yields no optimum: null quantiles, not a crash."""
    assert main(["optimum", "--law", "joint", "--coefficients", "joint:ludziejewski2025", "--compute", "1e21",
                 "--objective", "memory", "--memory", "1e6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["budgets"][0]["optimal"]["n_active"]["q50"] is None
    assert out["recommendations"][0]["feasible"] is False


def test_cli_published_set_json(capsys):
    assert main(["optimum", "--law", "granularity", "--coefficients", "granularity:krajewski2024",
                 "--compute", "1e19", "1e21", "1e23", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["law"] == "granularity" and out["objective"] == "compute" and out["prob"] == 0.9
    assert [b["compute"] for b in out["budgets"]] == [1e19, 1e21, 1e23]
    for budget in out["budgets"]:
        for key in (
            "n_total",
            "n_active",
            "tokens",
            "loss",
            "ratio_total_active",
            "granularity",
            "n_experts",
            "d_model",
        ):
            q = budget["optimal"][key]
            assert q["q05"] == q["q50"] == q["q95"]
    assert len(out["recommendations"]) == 3


def test_cli_errors(capsys):
    assert main(["optimum", "--law", "joint", "--coefficients", "joint:ludziejewski2025", "--compute", "1e21",
                 "--objective", "memory"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--memory" in err and len(err.strip().splitlines()) == 1
    assert main(["optimum", "--compute", "1e21"]) == 2
    assert main(["optimum", "--law", "joint", "--coefficients", "nope", "--compute", "1e21"]) == 2
