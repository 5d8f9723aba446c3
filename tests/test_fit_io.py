"""Save/load round trip, reproducible seeds, atomic writes."""
import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.errors import BayesMoeError
from bayesmoe.model.simulate import simulate_runs

TINY = {"chains": 2, "warmup": 100, "draws": 100, "progress_bar": False}
TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}


@pytest.fixture(scope="module")
def runs():
    return simulate_runs("chinchilla", TRUTH, 40, seed=1).assign(group="x", extra_column="kept")


@pytest.fixture(scope="module")
def fit(runs):
    return bayesmoe.fit(runs, "chinchilla", seed=7, holdout_top_compute=3, **TINY)


def test_round_trip(fit, tmp_path, runs):
    path = fit.save(tmp_path / "fit.nc")
    again = bayesmoe.load_fit(path)
    pd.testing.assert_frame_equal(fit.summary(), again.summary())
    pd.testing.assert_frame_equal(fit.predict(runs), again.predict(runs))
    assert again.meta == fit.meta
    assert again.runs["extra_column"].tolist() == ["kept"] * 37
    assert len(again.heldout) == 3 and set(again.heldout["run_id"]).isdisjoint(again.runs["run_id"])
    assert again.meta["versions"]["numpyro"] and len(again.meta["data_hash"]) == 64


def test_same_seed_same_draws(runs, fit):
    again = bayesmoe.fit(runs, "chinchilla", seed=7, holdout_top_compute=3, **TINY)
    np.testing.assert_array_equal(fit.draws()["alpha"], again.draws()["alpha"])


def test_failed_save_leaves_existing_file(fit, tmp_path):
    path = fit.save(tmp_path / "fit.nc")
    before = path.read_bytes()
    with pytest.raises(BayesMoeError, match="does not exist"):
        fit.save(tmp_path / "missing" / "fit.nc")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fit.nc"]


def test_load_errors(tmp_path):
    with pytest.raises(BayesMoeError, match="does not exist"):
        bayesmoe.load_fit(tmp_path / "none.nc")
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(BayesMoeError, match="cannot read fit file"):
        bayesmoe.load_fit(junk)


def test_load_refuses_draws_of_another_form_of_the_law(fit, tmp_path):
    """A file whose draws lack a parameter the law samples today (saved by a version with another form of
    the law, as the joint law's fixed-D floor before b3f4f84) is refused by name, not with a KeyError."""
    from bayesmoe.inference import arviz_io

    idata = fit.idata.copy()
    idata.posterior = idata.posterior.drop_vars("A").rename({"log_A": "log_A_old"})
    path = arviz_io.save(idata, tmp_path / "old.nc")
    with pytest.raises(BayesMoeError, match=r"old\.nc': law 'chinchilla' here samples A, which .*refit"):
        bayesmoe.load_fit(path)


def test_predict_without_loss_and_prob_checks(fit, runs):
    out = fit.predict(runs.drop(columns="loss").head(4), prob=0.5)
    assert list(out.columns) == ["run_id", "q25", "q50", "q75", "mean"]
    assert (out["q25"] < out["q50"]).all() and (out["q50"] < out["q75"]).all()
    with pytest.raises(BayesMoeError, match="--prob"):
        fit.predict(runs, prob=1.5)


def test_bad_settings_and_group():
    runs = simulate_runs("chinchilla", TRUTH, 10, seed=1)
    with pytest.raises(BayesMoeError, match="--chains"):
        bayesmoe.fit(runs, "chinchilla", chains=0)
    with pytest.raises(BayesMoeError, match="--group column 'lab'"):
        bayesmoe.fit(runs, "chinchilla", group="lab")
    with pytest.raises(BayesMoeError, match="single value"):
        bayesmoe.fit(runs.assign(lab="a"), "chinchilla", group="lab")


def test_sampler_statistics_saved_and_tree_depth_warning(fit, tmp_path):
    """n_steps, tree depth, acceptance rate and step size are in the file; a fit whose trajectories hit
    the maximum tree depth is warned about, one that does not is not."""
    loaded = bayesmoe.load_fit(fit.save(tmp_path / "fit.nc"))
    stats = loaded.idata.sample_stats
    for name in ("diverging", "energy", "n_steps", "tree_depth", "acceptance_rate", "step_size"):
        assert name in stats, name
    steps = stats["n_steps"].values
    assert steps.min() >= 1 and (steps <= 2 ** fit.meta["settings"]["max_tree_depth"] - 1).all()
    assert not any("tree depth" in m for m in loaded.problems())
    stats["n_steps"].values[...] = 2 ** loaded.meta["settings"]["max_tree_depth"] - 1
    assert loaded.tree_depth_saturation == 1.0
    assert any("100% of draws hit the maximum tree depth (10)" in m for m in loaded.problems())
