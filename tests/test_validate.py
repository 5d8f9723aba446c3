"""Forward-chaining validation and the model-discrepancy term (issue 20)."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.decide import validate as validation
from bayesmoe.inference import discrepancy
from bayesmoe.inference.discrepancy import Discrepancy, learn, learn_tilt, past_fitted
from bayesmoe.report.html import FigureWriter
from bayesmoe.report.sections import FitView, glance_section
from bayesmoe.report.validation import validation_section


def test_levels_follow_isoflop_budgets():
    budgets = np.repeat([1e11, 3e11, 1e12, 3e12], 4) * np.tile([0.97, 1.0, 1.02, 1.04], 4)
    level = validation.scale_levels(budgets)
    assert level.tolist() == np.repeat([0, 1, 2, 3], 4).tolist()


def test_continuous_scale_is_cut_into_bins_and_small_top_levels_merge():
    scale = 10 ** np.linspace(18, 20, 41)  # 2 decades, no gaps -> bins of 0.25 dex
    level = validation.scale_levels(scale)
    assert level.max() + 1 == 8
    assert np.all(np.diff(level) >= 0)
    assert level[-1] == level[-2] == level[-3]  # the top (a single run at 1e20) is merged down


def chaining_table(seed: int, s0: float, s1: float, t: float, steps: int, runs: int, law_sd: float = 0.003):
    """Simulated forward-chaining errors: ``steps`` chaining steps of ``runs`` runs each, at distances drawn in
    0-3 per run, the term's independent part per run and one shift ``t d z`` per step."""
    rng = np.random.default_rng(seed)
    step = np.repeat(np.arange(steps), runs)
    distance = rng.uniform(0, 3, steps * runs)
    shift = t * distance * rng.standard_normal(steps)[step]
    sd = np.sqrt(law_sd**2 + (s0 + s1 * distance) ** 2)
    return pd.DataFrame({"step": step, "ahead": 1, "distance": distance, "law_sd": law_sd,
                         "error": sd * rng.standard_normal(steps * runs) + shift})


def test_learn_recovers_a_known_discrepancy():
    table = chaining_table(0, s0=0.004, s1=0.01, t=0.0, steps=60, runs=10)
    posterior = learn(table["error"], table["law_sd"], table["distance"], table["step"])
    est0, est1, est_t = posterior.mean
    assert est0 == pytest.approx(0.004, rel=0.35, abs=0.0015)
    assert est1 == pytest.approx(0.01, rel=0.2)
    assert est_t < 0.003  # no shared shift in these errors
    assert posterior.kept.shape == (discrepancy.KEPT_DRAWS, 3)
    assert np.exp(posterior.log_weights).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [1, 2])
def test_learn_finds_and_recovers_a_shift_shared_within_a_step(seed):
    table = chaining_table(seed, s0=0.004, s1=0.003, t=0.02, steps=12, runs=15)
    args = (table["error"], table["law_sd"], table["distance"], table["step"])
    shared, independent = learn(*args), learn(*args, shared=False)
    assert shared.log_evidence - independent.log_evidence > 10  # the chaining errors favour the shift
    assert shared.mean[2] == pytest.approx(0.02, rel=0.3)


def test_learn_does_not_claim_a_shift_the_errors_lack():
    table = chaining_table(3, s0=0.004, s1=0.003, t=0.0, steps=12, runs=15)
    args = (table["error"], table["law_sd"], table["distance"], table["step"])
    shared, independent = learn(*args), learn(*args, shared=False)
    assert shared.log_evidence < independent.log_evidence  # the Occam factor of an unneeded t
    assert shared.mean[2] < 0.006


def test_learn_finds_no_discrepancy_when_the_law_sd_explains_the_errors():
    table = chaining_table(1, s0=0.0, s1=0.0, t=0.0, steps=40, runs=10, law_sd=0.01)
    est0, est1, est_t = learn(table["error"], table["law_sd"], table["distance"], table["step"]).mean
    widened = np.sqrt(0.01**2 + (est0 + 3 * est1) ** 2 + (3 * est_t) ** 2)
    assert widened < 1.2 * 0.01  # at d = 3 the predictive sd grows by less than 20% (a real term of 0.01: 41%)


@pytest.mark.parametrize("seed", [4, 5])
def test_a_learned_prior_scale_follows_the_size_of_the_errors(seed):
    small = chaining_table(seed, s0=0.002, s1=0.001, t=0.002, steps=6, runs=8)
    large = chaining_table(seed, s0=0.01, s1=0.03, t=0.02, steps=6, runs=8)
    args = lambda table: (table["error"], table["law_sd"], table["distance"], table["step"])  # noqa: E731
    fixed, learned = learn(*args(small)), learn(*args(small), prior_sd=discrepancy.LEARNED_SCALES)
    assert fixed.prior_sd == discrepancy.PRIOR_SD
    assert learned.prior_sd < 0.5 * discrepancy.PRIOR_SD  # small errors: the scale learned is small
    assert learned.log_evidence > fixed.log_evidence      # and the errors prefer it
    sd_at_2 = lambda post: np.exp(post.log_weights) @ np.hypot(post.points[:, 0] + 2 * post.points[:, 1],  # noqa: E731
                                                               2 * post.points[:, 2])
    assert sd_at_2(learned) < sd_at_2(fixed)              # so the term's sd shrinks towards the errors' own size
    assert learn(*args(large), prior_sd=discrepancy.LEARNED_SCALES).prior_sd > 2 * learned.prior_sd
    one = learn(*args(small), prior_sd=np.array([discrepancy.PRIOR_SD]))  # a one-point scale is the fixed prior
    np.testing.assert_allclose(one.log_weights, fixed.log_weights)


def test_a_term_with_a_learned_scale_uses_it_past_the_reach_and_keeps_it_on_disk():
    table = chaining_table(6, s0=0.002, s1=0.001, t=0.002, steps=6, runs=8)
    args = (table["error"].to_numpy(), table["law_sd"].to_numpy(), table["distance"].to_numpy(),
            table["step"].to_numpy())
    term = Discrepancy.learned(*args, scale_column="compute", reference=1e20, prior_scale="learned")
    assert term.scale_learned and term.prior_sd < 0.01
    slopes = term.prior_slopes(np.random.default_rng(0), 200_000)
    assert np.sqrt(np.mean(slopes**2)) == pytest.approx(term.prior_sd, rel=0.02)  # s2 ~ HalfNormal(prior_sd)
    assert "prior scale learned from the errors" in term.formula()
    assert Discrepancy.from_meta(json.loads(json.dumps(term.as_meta()))) == term
    old = Discrepancy.from_meta({"s0": 0.001, "s1": 0.01, "scale_column": "compute", "reference": 1e20,
                                 "n_errors": 30, "max_distance": 1.0})
    assert old.prior_sd == discrepancy.PRIOR_SD and not old.scale_learned  # saved before: the fixed prior
    with pytest.raises(ValueError, match="'fixed' or 'learned'"):
        Discrepancy.learned(*args, scale_column="compute", reference=1e20, prior_scale="wide")


def test_rank_one_normal_logpdf_equals_the_dense_normal():
    from scipy import stats

    rng = np.random.default_rng(0)
    diag, shift, residual = rng.uniform(1e-5, 1e-4, (3, 6)), rng.uniform(0, 0.01, (3, 6)), rng.normal(0, 0.01, 6)
    expected = [stats.multivariate_normal.logpdf(residual, np.zeros(6), np.diag(d) + np.outer(u, u))
                for d, u in zip(diag, shift)]
    assert discrepancy.normal_rank_one_logpdf(residual, diag, shift) == pytest.approx(expected, rel=1e-10)


def test_low_rank_normal_logpdf_equals_the_dense_normal():
    from scipy import stats

    rng = np.random.default_rng(4)
    diag, cols, residual = rng.uniform(1e-5, 1e-4, (3, 7)), rng.normal(0, 0.01, (3, 7, 2)), rng.normal(0, 0.01, 7)
    expected = [stats.multivariate_normal.logpdf(residual, np.zeros(7), np.diag(d) + u @ u.T)
                for d, u in zip(diag, cols)]
    assert discrepancy.normal_low_rank_logpdf(residual, diag, cols) == pytest.approx(expected, rel=1e-10)
    one = discrepancy.normal_low_rank_logpdf(residual, diag, cols[..., :1])
    assert one == pytest.approx(discrepancy.normal_rank_one_logpdf(residual, diag, cols[..., 0]), rel=1e-10)


def tilted_table(seed: int, u: float, steps: int = 12, runs: int = 10):
    """Chaining errors of ``steps`` isoFLOP-like steps: per run independent scatter (sd 0.004) and per step a
    shift (t = 0.005) and a tilt ``u d z' (ln N - mean)`` across the step's sizes (ln N spread by sd 1)."""
    table = chaining_table(seed, s0=0.004, s1=0.0, t=0.005, steps=steps, runs=runs)
    rng = np.random.default_rng(seed + 100)
    table["distance"] = np.repeat(rng.uniform(0.3, 2.5, steps), runs)      # one distance per step
    table["log_n"] = 12 + rng.standard_normal(steps * runs)
    centred = table["log_n"] - table.groupby("step")["log_n"].transform("mean")
    table["error"] += u * table["distance"] * rng.standard_normal(steps)[table["step"]] * centred
    return table


@pytest.mark.parametrize("seed", [1, 2])
def test_learn_tilt_recovers_a_tilt_across_the_runs_of_a_step(seed):
    table = tilted_table(seed, u=0.02)
    args = (table["error"], table["law_sd"], table["distance"], table["step"])
    draws, log_bf = learn_tilt(*args, table["log_n"], learn(*args).kept)
    assert draws.shape == (discrepancy.KEPT_DRAWS,)
    assert draws.mean() == pytest.approx(0.02, rel=0.4)
    assert log_bf > 5  # the errors favour the tilt


def test_learn_tilt_does_not_claim_a_tilt_the_errors_lack():
    table = tilted_table(3, u=0.0)
    args = (table["error"], table["law_sd"], table["distance"], table["step"])
    draws, log_bf = learn_tilt(*args, table["log_n"], learn(*args).kept)
    assert draws.mean() < 0.006 and log_bf < 1


def test_the_tilt_moves_each_draws_best_size_and_nothing_else():
    """The tilt is zero at the runs' mean size, grows with |ln N - mean| and the distance, and is common to
    the runs of one prediction: per draw it is a straight line in ln N."""
    term = Discrepancy(0.003, 0.0, "compute", 1e20, 40, max_distance=5.0, t=0.004, u=0.01, tilts=[0.01, 0.01])
    frame = pd.DataFrame({"compute": 1e20 * np.exp(2.0), "n_active": np.exp([10.0, 11.0, 12.0])})
    tilt = term.tilt(frame, np.random.default_rng(0), 100_000)
    assert tilt[:, 1] == pytest.approx(0.0, abs=1e-12)
    assert tilt.std(axis=0) == pytest.approx([0.02, 0.0, 0.02], rel=0.02, abs=1e-12)
    assert np.allclose(tilt[:, 0], -tilt[:, 2])
    none = Discrepancy(0.003, 0.0, "compute", 1e20, 40, max_distance=5.0, t=0.004)   # saved before the tilt
    assert not none.tilt(frame, np.random.default_rng(0), 10).any()
    assert "tilt" in term.formula() and "tilt" not in none.formula()


def test_the_shift_is_common_to_the_runs_of_one_prediction():
    term = Discrepancy(0.003, 0.0, "compute", 1e20, 40, max_distance=5.0, t=0.004)
    frame = pd.DataFrame({"compute": 1e20 * np.exp([1.0, 1.0, 2.0])})
    noise = term.noise(frame, np.random.default_rng(0), (200_000, 3))
    assert noise.std(axis=0) == pytest.approx([0.005, 0.005, np.hypot(0.003, 0.008)], rel=0.02)
    assert np.corrcoef(noise[:, 0], noise[:, 1])[0, 1] == pytest.approx(0.004**2 / 0.005**2, abs=0.01)
    assert term.sd_at(np.array([1.0, 2.0])) == pytest.approx([0.005, np.hypot(0.003, 0.008)])


def test_the_predictive_draws_the_terms_posterior():
    term = Discrepancy(0.01, 0.0, "compute", 1e20, 40, max_distance=5.0, draws=[[0.0, 0.0, 0.0], [0.02, 0.0, 0.0]])
    frame = pd.DataFrame({"compute": [1e20]})
    sd = term.sd_draws(frame, np.random.default_rng(0), 10_000)[:, 0]
    assert set(np.round(sd, 12)) == {0.0, 0.02} and sd.mean() == pytest.approx(0.01, abs=0.001)
    noise = term.noise(frame, np.random.default_rng(1), (200_000, 1))[:, 0]
    assert stats_kurtosis(noise) > 1.0  # a scale mixture, heavier-tailed than the Normal of the mean sd


def stats_kurtosis(x: np.ndarray) -> float:
    """Excess kurtosis (0 for a Normal)."""
    z = (x - x.mean()) / x.std()
    return float(np.mean(z**4) - 3)


def test_past_fitted_is_zero_inside_and_log_ratio_outside():
    assert past_fitted(np.array([1e20, 1e21, np.e * 1e21]), 1e21).tolist() == pytest.approx([0, 0, 1])


@pytest.fixture(scope="module")
def misspecified_fit():
    """Chinchilla fitted to runs whose true loss bends below the law past 3e18 FLOPs (a form error).

    Laplace fits: these tests check the validation logic, not the sampler, and must stay quick."""
    rng = np.random.default_rng(3)
    budgets = np.repeat(10.0 ** np.arange(17, 21.5, 0.5), 8)
    n = 10 ** rng.uniform(-0.6, 0.6, len(budgets)) * np.sqrt(budgets / 120)
    runs = pd.DataFrame({"n_active": n, "tokens": budgets / (6 * n), "compute": budgets})
    values = {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}
    runs = bayesmoe.simulate_runs("chinchilla", values, len(runs), design=runs, noise=0.004, seed=3)
    runs["loss"] *= np.exp(-0.01 * np.maximum(0, np.log10(budgets) - 18.5) ** 2)  # a bend the law cannot follow
    return bayesmoe.fit(runs, law="chinchilla", holdout_top_compute=8, seed=0, method="laplace")


def test_forward_chaining_learns_a_growing_discrepancy_that_restores_coverage(misspecified_fit, monkeypatch, tmp_path):
    monkeypatch.setattr(validation, "REFIT_METHOD", "laplace")
    result = validation.validate(misspecified_fit, steps=3)
    assert result.scale_column == "compute"
    assert len(result.refits) == 3 and set(result.errors["ahead"]) == {1, 2}
    assert (result.errors["distance"] > 0).all()
    term = result.discrepancy
    assert term is not None and term.sd_at(np.array([2.0]))[0] - term.sd_at(np.array([0.0]))[0] > 0.006  # grows
    assert term.t > term.s1  # one bend, common to every run past it: a shared shift, not run-to-run scatter
    scores = validation.calibration(misspecified_fit)
    assert scores["law_only"]["coverage"] <= 0.5  # the law alone is overconfident past the bend
    assert scores["with_discrepancy"]["coverage"] >= 0.6
    for band in ("law_only", "with_discrepancy"):  # the count is scored on the very band above
        count = scores[band]["count"]
        assert count["covered"] == round(scores[band]["coverage"] * scores["n_runs"]) and count["n_runs"] == 8
        assert 0 <= count["range"][0] <= count["expected"] <= count["range"][1] <= 8
    assert not scores["law_only"]["count"]["consistent"]  # 8 runs past a bend: too few covered for the law alone
    path = misspecified_fit.save(tmp_path / "fit.nc")
    assert bayesmoe.load_fit(path).discrepancy == term


def test_discrepancy_widens_predictions_with_distance_only(misspecified_fit, tmp_path):
    fitted = bayesmoe.load_fit(misspecified_fit.save(tmp_path / "copy.nc"))
    top = float(fitted.runs["compute"].max())
    runs = pd.DataFrame({"n_active": [3e8, 3e9], "tokens": [top / 1.8e9, 100 * top / 1.8e10]})
    runs["compute"] = 6 * runs["n_active"] * runs["tokens"]
    fitted.update_meta(discrepancy=Discrepancy(0.0, 0.02, "compute", top, 10).as_meta())
    law_only = fitted.predict(runs, discrepancy=False)
    widened = fitted.predict(runs)
    width = lambda t: (t["q95"] - t["q05"]).to_numpy()  # noqa: E731
    assert width(widened)[0] == pytest.approx(width(law_only)[0], rel=0.1)  # at the edge: s0 = 0
    assert width(widened)[1] > 2 * width(law_only)[1]  # 100x past: sd 0.02 x ln(100) = 0.09
    # the term is zero-mean and symmetric: it widens the band around the law's point and leaves the point
    np.testing.assert_array_equal(widened["q50"], law_only["q50"])
    assert (widened["q05"] < widened["q50"]).all() and (widened["q50"] < widened["q95"]).all()


def test_longer_chaining_reaches_farther_and_the_term_records_its_reach(misspecified_fit, monkeypatch, tmp_path):
    monkeypatch.setattr(validation, "REFIT_METHOD", "laplace")
    fitted = bayesmoe.load_fit(misspecified_fit.save(tmp_path / "reach.nc"))
    short = validation.forward_chain(fitted, steps=4, ahead=2)[0]
    result = validation.validate(fitted, steps=4, ahead=4)
    assert set(short["ahead"]) == {1, 2} and set(result.errors["ahead"]) == {1, 2, 3, 4}
    assert result.errors["distance"].max() > short["distance"].max() + 0.5  # two more levels of 0.5 dex
    term = result.discrepancy
    assert term.max_distance == pytest.approx(result.errors["distance"].max())
    top = float(fitted.runs["compute"].max())
    runs = pd.DataFrame({"n_active": [1e9, 1e9], "tokens": [top / 6e9, top * np.exp(term.max_distance + 1) / 6e9]})
    runs["compute"] = 6 * runs["n_active"] * runs["tokens"]
    assert term.past_reach(runs).tolist() == [False, True]
    band = fitted.predict(runs)
    assert band["past_term_reach"].tolist() == [False, True]
    assert band["distance"].to_numpy() == pytest.approx([0.0, term.max_distance + 1])
    with pytest.raises(bayesmoe.BayesMoeError, match="--ahead must be a positive integer"):
        validation.forward_chain(fitted, ahead=0)


def test_past_its_reach_the_term_grows_at_the_priors_rate():
    from bayesmoe.inference.discrepancy import PRIOR_SD

    term = Discrepancy(0.002, 0.01, "compute", 1e20, 40, max_distance=1.0)
    frame = pd.DataFrame({"compute": 1e20 * np.exp([0.5, 1.0, 3.0])})
    sd = term.sd_draws(frame, np.random.default_rng(0), 200_000)
    assert sd[:, 0] == pytest.approx(0.002 + 0.01 * 0.5) and sd[:, 1] == pytest.approx(0.012)  # inside: learned
    extra = sd[:, 2] - (0.002 + 0.01 * 3.0)
    assert extra.min() >= 0
    assert np.sqrt(np.mean(extra**2)) == pytest.approx(PRIOR_SD * 2.0, rel=0.02)  # HalfNormal slope x 2 ln units
    noise = term.noise(frame, np.random.default_rng(1), (200_000, 3))
    assert noise[:, 1].std() == pytest.approx(0.012, rel=0.02)
    assert noise[:, 2].std() == pytest.approx(np.sqrt(np.mean(sd[:, 2] ** 2)), rel=0.02)
    unbounded = Discrepancy(0.002, 0.01, "compute", 1e20, 40)  # a fit validated before the reach was kept
    assert unbounded.sd_draws(frame, np.random.default_rng(0), 10)[:, 2] == pytest.approx(0.032)


def test_a_term_saved_before_its_reach_was_recorded_still_loads():
    old = {"s0": 0.001, "s1": 0.01, "scale_column": "compute", "reference": 1e20, "n_errors": 30}
    term = Discrepancy.from_meta(old)
    assert term.max_distance is None and term.t == 0.0 and term.draws is None  # the independent point term
    assert term.sd_draws(pd.DataFrame({"compute": [1e20 * np.e]}), np.random.default_rng(0), 3) == pytest.approx(0.011)
    assert not term.past_reach(pd.DataFrame({"compute": [1e25]})).any()


def test_predict_cli_warns_past_the_terms_reach(misspecified_fit, tmp_path):
    fitted = bayesmoe.load_fit(misspecified_fit.save(tmp_path / "cli.nc"))
    top = float(fitted.runs["compute"].max())
    fitted.update_meta(discrepancy=Discrepancy(0.001, 0.01, "compute", top, 20, max_distance=1.0).as_meta())
    path = fitted.save(tmp_path / "cli.nc")
    runs = pd.DataFrame({"run_id": ["near", "far"], "n_active": [1e9, 1e9], "tokens": [top / 6e9, 20 * top / 6e9]})
    runs["compute"] = 6 * runs["n_active"] * runs["tokens"]
    runs.to_csv(tmp_path / "new.csv", index=False)
    cmd = [sys.executable, "-m", "bayesmoe.cli.main", "predict", str(path), str(tmp_path / "new.csv")]
    text = subprocess.run(cmd, capture_output=True, text=True)
    assert text.returncode == 0
    assert "1 of 2 runs" in text.stderr and "up to 1.00" in text.stderr and "farthest is at 3.00" in text.stderr
    out = subprocess.run(cmd + ["--json"], capture_output=True, text=True)
    payload = json.loads(out.stdout)
    assert [r["distance"] for r in payload["runs"]] == pytest.approx([0.0, np.log(20)])
    assert len(payload["warnings"]) == 1
    quiet = subprocess.run(cmd + ["--no-discrepancy", "--json"], capture_output=True, text=True)
    assert json.loads(quiet.stdout)["warnings"] == []


def test_validate_cli_reports_the_held_out_count_against_its_joint_predictive(misspecified_fit, monkeypatch,
                                                                              tmp_path, capsys):
    from bayesmoe.cli.main import main

    monkeypatch.setattr(validation, "REFIT_METHOD", "laplace")
    path = misspecified_fit.save(tmp_path / "cli.nc")
    before = path.read_bytes()
    assert main(["validate", str(path), "--no-save"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert path.read_bytes() == before  # --no-save
    law_only = lines[[i for i, line in enumerate(lines) if "held-out runs (8), law only" in line][0] + 1]
    assert law_only.startswith("  its joint predictive expects ") and law_only.endswith("is not consistent with it")
    assert main(["validate", str(path), "--no-save", "--json"]) == 0
    count = json.loads(capsys.readouterr().out)["heldout"]["with_discrepancy"]["count"]
    assert set(count) >= {"covered", "n_runs", "range", "p_all", "consistent"} and count["n_runs"] == 8
    assert main(["validate", str(path), "--no-save", "--json", "--prior-scale", "learned"]) == 0
    term = json.loads(capsys.readouterr().out)["discrepancy"]
    assert term["scale_learned"] and discrepancy.LEARNED_SCALES[0] <= term["prior_sd"] <= discrepancy.LEARNED_SCALES[-1]
    assert main(["validate", str(path), "--prior-scale", "wide"]) == 2
    assert "--prior-scale" in capsys.readouterr().err and path.read_bytes() == before


def test_validate_cli_refuses_runs_at_one_scale(tmp_path):
    runs = bayesmoe.simulate_runs("chinchilla", {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}, 12,
                                  seed=0)
    runs["tokens"] = 1e21 / (6 * runs["n_active"])
    runs["compute"] = 1e21
    fitted = bayesmoe.fit(runs, law="chinchilla", method="laplace", seed=0)
    path = fitted.save(tmp_path / "one.nc")
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "bayesmoe.cli.main", "validate", str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "2 or more scales" in proc.stderr and "Traceback" not in proc.stderr
    assert path.read_bytes() == before


def test_report_section_shows_the_chaining_and_both_held_out_bands(misspecified_fit, monkeypatch, tmp_path):
    monkeypatch.setattr(validation, "REFIT_METHOD", "laplace")
    result = validation.validate(misspecified_fit, steps=3)
    view = FitView(misspecified_fit, "bent", "", FigureWriter(tmp_path))
    body = validation_section(view).body
    term, scores = result.discrepancy, validation.calibration(misspecified_fit, prob=0.9)
    assert f"sd = {term.s0:.4f} + {term.s1:.4f}" in body
    assert f"up to ln distance <b>{result.errors['distance'].max():.2f}</b>" in body
    for ahead, rows in result.errors.groupby("ahead"):   # the chaining table, one row per level ahead
        assert f"<td>{len(rows)}</td>" in body and f"{rows['inside'].mean():.0%}" in body
    law_only, widened = scores["law_only"]["coverage"], scores["with_discrepancy"]["coverage"]
    assert f"{law_only:.0%}" in body and f"{widened:.0%}" in body and law_only < widened
    count = scores["law_only"]["count"]
    assert f"{count['covered']} of 8 / {count['range'][0]}-{count['range'][1]}" in body and "not consistent" in body
    assert (tmp_path / "calibration.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "chaining.png").read_bytes().startswith(b"\x89PNG")
    assert view.facts["calibration"] == scores
    glance = glance_section([view], None).body  # the one-line verdict carries the count check
    count = scores["with_discrepancy"]["count"]
    assert f"joint predictive expects {count['range'][0]}-{count['range'][1]} of them" in glance


def test_report_section_of_a_fit_never_validated_says_what_its_bands_assume(misspecified_fit, tmp_path):
    fresh = bayesmoe.load_fit(misspecified_fit.save(tmp_path / "fit.nc"))
    fresh.update_meta(discrepancy=None, validation=None)
    view = FitView(fresh, "bent", "", FigureWriter(tmp_path))
    body = validation_section(view).body
    assert "Not validated past the data" in body and "bayesmoe validate FIT" in body and "<img" not in body
    assert view.facts["validated"] is False

