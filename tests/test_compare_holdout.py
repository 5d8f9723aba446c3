"""PSIS-LOO comparison, stacking mixtures and the held-out extrapolation check, on simulated data.

Truth: Chinchilla in n_active (E 1.8, A 480, B 2000, alpha 0.35, beta 0.37; 1% noise on log loss). The
granularity law is misspecified for these runs: it reads n_total, which differs from n_active by a
random factor of 1-64 per run, and a granularity that has no effect.
"""
import json
import warnings

import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.cli.main import main
from bayesmoe.errors import BayesMoeError

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}
HOLDOUT = 5


def true_loss(frame):
    return TRUTH["E"] + TRUTH["A"] / frame["n_active"] ** TRUTH["alpha"] + TRUTH["B"] / frame["tokens"] ** TRUTH["beta"]


def simulate(n=36, sigma=0.01, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "run_id": [f"r{i}" for i in range(n)],
        "tokens": np.exp(rng.uniform(np.log(1e9), np.log(1e11), n)),
        "n_active": np.exp(rng.uniform(np.log(1e7), np.log(1e9), n)),
        "n_experts": 8, "top_k": 1, "granularity": rng.choice([1, 2, 4, 8], n),
    })
    frame["n_total"] = frame["n_active"] * np.exp(rng.uniform(0, np.log(64), n))
    frame["loss"] = true_loss(frame) * np.exp(sigma * rng.standard_normal(n))
    return frame


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fits")
    frame = simulate()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for law in ("chinchilla", "granularity"):
            fit = bayesmoe.fit(frame, law, chains=2, warmup=300, draws=300, seed=1, holdout_top_compute=HOLDOUT,
                               progress_bar=False)
            fit.save(folder / f"{law}.nc")
            out[law] = bayesmoe.load_fit(folder / f"{law}.nc")
    return out


def test_compare_ranks_the_correct_law_first(fits):
    from bayesmoe.decide.compare import compare

    models = compare([fits["granularity"], fits["chinchilla"]])
    assert [m["law"] for m in models] == ["chinchilla", "granularity"]
    assert models[0]["elpd_diff"] == 0
    assert models[1]["elpd_diff"] > 4 * models[1]["dse"]  # decisively, not within noise
    assert models[0]["weight"] > 0.9 and sum(m["weight"] for m in models) == pytest.approx(1)
    assert all(np.isfinite(m["pareto_k_max"]) for m in models)


def test_compare_cli_json_and_pareto_warning(fits, capsys, monkeypatch):
    paths = [str(fits["chinchilla"].path), str(fits["granularity"].path)]
    assert main(["compare", *paths, "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [
        set(m) >= {"fit", "law", "elpd_loo", "se", "elpd_diff", "weight", "pareto_k_max"} for m in out["models"]
    ] == [True, True]
    assert out["models"][0]["fit"] == paths[0]
    monkeypatch.setattr("bayesmoe.decide.compare.PARETO_K_WARN", -1.0)  # every k exceeds it
    assert main(["compare", *paths]) == 0
    assert "Pareto k" in capsys.readouterr().err


def test_compare_refuses_fits_of_different_runs(fits, capsys):
    from bayesmoe.decide.compare import compare

    other = bayesmoe.load_fit(fits["granularity"].path)
    other.runs = other.runs.iloc[:-1]
    with pytest.raises(BayesMoeError, match="different runs"):
        compare([fits["chinchilla"], other])
    assert main(["compare", str(fits["chinchilla"].path)]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_holdout_check_recovers_the_truth(fits):
    from bayesmoe.decide.holdout import check

    result = check(fits["chinchilla"])
    held = fits["chinchilla"].heldout
    assert result["n_runs"] == HOLDOUT == len(held)
    # the K largest-compute runs were held out
    compute = 6 * held["n_active"] * held["tokens"]
    assert compute.min() >= (6 * fits["chinchilla"].runs["n_active"] * fits["chinchilla"].runs["tokens"]).max()
    predicted = np.array([r["predicted"] for r in result["runs"]])
    # extrapolating past the largest fitted budget from 31 runs: within 0.08 nats of the true law
    np.testing.assert_allclose(predicted, true_loss(held).to_numpy(), atol=0.08)
    errors = np.abs(predicted - held["loss"].to_numpy())
    assert result["max_abs_error"] == pytest.approx(errors.max()) and result["max_abs_error"] < 0.12
    assert result["mean_abs_error"] == pytest.approx(errors.mean())
    inside = [r["lo"] <= r["observed"] <= r["hi"] for r in result["runs"]]
    assert result["coverage"] == pytest.approx(np.mean(inside))
    assert result["count"]["covered"] == sum(inside) and result["count"]["n_runs"] == HOLDOUT  # the same band
    assert all(r["lo"] < r["predicted"] < r["hi"] for r in result["runs"])
    assert check(fits["chinchilla"], prob=0.5)["coverage"] <= result["coverage"]


def test_summary_json_reports_holdout(fits, capsys):
    assert main(["summary", str(fits["chinchilla"].path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["holdout"]["n_runs"] == HOLDOUT and 0 <= out["holdout"]["coverage"] <= 1
    assert main(["summary", str(fits["chinchilla"].path)]) == 0
    text = capsys.readouterr().out
    assert "held-out runs: 5" in text and "of 5; its joint predictive expects" in text


def test_optimum_of_several_fits_is_the_stacking_mixture(fits, capsys):
    paths = [str(fits["chinchilla"].path), str(fits["granularity"].path)]
    assert main(["optimum", *paths, "--compute", "1e19", "1e21", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # weights from the 5 held-out top-compute runs (both fits held them out): most weight on the true law
    assert out["weights_from"] == "holdout" and out["weights"][paths[0]] > 0.6
    # only the quantities both laws report survive the mixture
    assert set(out["budgets"][0]["optimal"]) == {
        "n_active",
        "n_total",
        "tokens",
        "loss",
        "tokens_per_param",
        "ratio_total_active",
    }
    assert main(["optimum", paths[0], "--compute", "1e19", "1e21", "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    mixed_n, alone_n = out["budgets"][1]["optimal"]["n_active"], alone["budgets"][1]["optimal"]["n_active"]
    assert mixed_n["q50"] == pytest.approx(alone_n["q50"], rel=0.1)
    assert alone_n["q05"] < alone_n["q50"] < alone_n["q95"]


def test_held_out_log_scores_weight_the_extrapolating_law(fits):
    """Both fits held out the same 5 top-compute runs: their log scores there favour the true law, and the
    weights for mixing extrapolated optima come from them (said so), not from LOO on the fitted runs."""
    from bayesmoe.decide.compare import compare, holdout_scores, mixing_weights

    scores = holdout_scores([fits["chinchilla"], fits["granularity"]])
    assert scores.shape == (2, HOLDOUT) and scores[0].sum() > scores[1].sum()
    weights, source = mixing_weights([fits["chinchilla"], fits["granularity"]])
    assert source == "holdout" and weights[0] > 0.6 and weights.sum() == pytest.approx(1)
    rows = {m["law"]: m for m in compare([fits["chinchilla"], fits["granularity"]])}
    assert rows["chinchilla"]["elpd_holdout"] == pytest.approx(scores[0].sum())
    assert rows["chinchilla"]["holdout_weight"] == pytest.approx(weights[0], abs=1e-6)
    assert rows["chinchilla"]["method"] == "nuts"


def test_held_out_score_is_the_predictive_density(fits):
    """A held-out run's log score is log mean_s p(y | theta_s): check one run against a direct computation."""
    from scipy import special, stats

    from bayesmoe.decide.compare import holdout_scores

    fit = fits["chinchilla"]
    run = fit.heldout.iloc[[0]]
    score = holdout_scores([fit, fits["granularity"]])[0, 0]
    log_p = stats.t.logpdf(np.log(run["loss"].to_numpy()), 4.0, loc=fit.log_mean(run)[:, 0], scale=fit.draws()["sigma"])
    assert score == pytest.approx(special.logsumexp(log_p) - np.log(log_p.size))


def test_mixing_without_held_out_runs_uses_loo_stacking(fits):
    from bayesmoe.decide.compare import mixing_weights

    plain = bayesmoe.load_fit(fits["granularity"].path)
    plain.heldout = None
    weights, source = mixing_weights([fits["chinchilla"], plain])
    assert source == "loo" and weights[0] > 0.9


def test_compare_refuses_laplace_fits(fits, tmp_path, capsys):
    from bayesmoe.decide.compare import compare

    frame = simulate()
    laplace = bayesmoe.fit(frame, "chinchilla", method="laplace", draws=200, holdout_top_compute=HOLDOUT)
    with pytest.raises(BayesMoeError, match="Laplace approximation"):
        compare([fits["chinchilla"], laplace])
    path = laplace.save(tmp_path / "laplace.nc")
    assert main(["compare", str(fits["chinchilla"].path), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--method nuts" in err
