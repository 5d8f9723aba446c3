"""Stacking weights from forward-chaining log scores (issue 20, item 3), on simulated data.

Truth: L = 1.8 + A N^-0.4 at a fixed training length, N at ten sizes from 1e6 to 1e9 (four runs each), 0.3%
noise on log loss. Two laws of our own are fitted:

- ``floor_power``: the true form, L = E + A N^-alpha;
- ``quadratic``: log L = q0 + q1 z + q2 z^2 with z = ln(N / 1e8). Inside the fitted range it follows the
  curve to within the noise (it interpolates well), but its curvature keeps growing past the data, so it
  misses the next sizes by several noise sds.

Forward chaining refits each law on the smaller sizes and scores the next ones: the weights must go to
``floor_power``. The refits use the Laplace approximation here (``REFIT_METHOD``) to keep the test short.
"""
import json
import warnings

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.cli.main import main
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws import Law, Param

SIZES = np.logspace(6, 9, 10)
A_TRUE = 10 * 1e6**0.4


def _n(frame):
    return {"log_N": np.log(frame["n_active"].to_numpy(float))}


FLOOR_POWER = Law(
    name="test_floor_power", title="E + A N^-alpha", citation="test", formula="L = E + A N^-alpha",
    n_counts="N = n_active", required_columns=("n_active",), covariates=_n,
    params=(Param("E", "log", 0.5, 0.5, role="level"), Param("A", "log", 6.0, 2.0, role="level"),
            Param("alpha", "linear", 0.4, 0.15, low=0.0, high=1.5)),
    log_loss=lambda t, x: jnp.logaddexp(jnp.log(t["E"]), jnp.log(t["A"]) - t["alpha"] * x["log_N"]),
)
QUADRATIC = Law(
    name="test_quadratic", title="quadratic in ln N", citation="test", formula="log L = q0 + q1 z + q2 z^2",
    n_counts="N = n_active", required_columns=("n_active",), covariates=_n,
    params=(Param("q0", "linear", 1.0, 1.0), Param("q1", "linear", 0.0, 0.5), Param("q2", "linear", 0.0, 0.1)),
    log_loss=lambda t, x: t["q0"] + t["q1"] * (x["log_N"] - np.log(1e8)) + t["q2"] * (x["log_N"] - np.log(1e8)) ** 2,
)


def simulate(seed=0, sigma=0.003):
    rng = np.random.default_rng(seed)
    n_active = np.repeat(SIZES, 4)
    loss = (1.8 + A_TRUE * n_active**-0.4) * np.exp(sigma * rng.standard_normal(len(n_active)))
    return pd.DataFrame({"run_id": [f"r{i}" for i in range(len(n_active))], "n_active": n_active,
                         "tokens": 1e10, "loss": loss})


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chain")
    frame = simulate()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for law in (FLOOR_POWER, QUADRATIC):
            fitted = bayesmoe.fit(frame, law, chains=2, warmup=150, draws=100, seed=1, progress_bar=False)
            out[law.name] = bayesmoe.load_fit(fitted.save(folder / f"{law.name}.nc"))
    return out


@pytest.fixture
def quick_refits(monkeypatch):
    monkeypatch.setattr("bayesmoe.decide.validate.REFIT_METHOD", "laplace")


def test_quadratic_interpolates_well(fits):
    """The case is fair: inside the fitted runs the wrong law follows the data to about the noise."""
    for fitted in fits.values():
        residual = np.log(fitted.runs["loss"].to_numpy()) - np.median(fitted.log_mean(fitted.runs), axis=0)
        assert np.sqrt(np.mean(residual**2)) < 0.006


def test_chaining_weights_prefer_the_law_that_extrapolates(fits, quick_refits):
    from bayesmoe.decide.compare import chaining_scores, stack_log_scores

    pair = [fits["test_quadratic"], fits["test_floor_power"]]
    scores, keys = chaining_scores(pair, steps=3)
    assert scores.shape == (2, len(keys)) and np.isfinite(scores).all()
    # 3 refits (below the 8th, 9th, 10th sizes), each scoring the next one and two sizes: 5 predicted levels x 4
    assert len(keys) == 20 and set(keys["ahead"]) == {1, 2}
    assert scores[1].sum() > scores[0].sum() + 5
    weights = stack_log_scores(scores)
    assert weights.sum() == pytest.approx(1) and weights[1] > 0.8


def test_compare_reports_chaining_weights(fits, quick_refits, capsys):
    paths = [str(fits["test_quadratic"].path), str(fits["test_floor_power"].path)]
    assert main(["compare", *paths, "--weights", "chaining", "--steps", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weights_from"] == "chaining" and "forward-chaining" in out["weights_description"]
    rows = {m["law"]: m for m in out["models"]}
    assert rows["test_floor_power"]["chaining_weight"] > 0.8
    assert rows["test_floor_power"]["elpd_chaining"] > rows["test_quadratic"]["elpd_chaining"]
    assert all(m["weights_from"] == "chaining" and m["mixing_weight"] == m["chaining_weight"] for m in rows.values())
    from bayesmoe.decide.compare import mixing_weights

    weights, source = mixing_weights([fits["test_quadratic"], fits["test_floor_power"]], weights="chaining", steps=2)
    assert source == "chaining" and weights == pytest.approx([rows[k]["chaining_weight"] for k in
                                                              ("test_quadratic", "test_floor_power")], abs=1e-6)
    assert main(["compare", *paths]) == 0  # default: no refits, LOO weights, said so
    text = capsys.readouterr().out
    assert "mixing weights used: loo" in text and "forward chaining" not in text


def test_chaining_needs_the_same_runs_and_known_weights(fits, quick_refits):
    from bayesmoe.decide.compare import chaining_matrix, chaining_scores, mixing_weights

    other = bayesmoe.load_fit(fits["test_quadratic"].path)
    other.runs = other.runs.iloc[:-1]
    with pytest.raises(BayesMoeError, match="same runs"):
        chaining_scores([fits["test_floor_power"], other])
    with pytest.raises(BayesMoeError, match="weights must be one of"):
        mixing_weights(list(fits.values()), weights="bogus")
    with pytest.raises(BayesMoeError, match="held-out"):
        mixing_weights(list(fits.values()), weights="holdout")
    table = pd.DataFrame({"step": [1, 1], "ahead": [1, 1], "run_id": ["a", "b"], "score": [0.0, 1.0]})
    with pytest.raises(BayesMoeError, match="not those of fit0"):
        chaining_matrix([table, table.iloc[::-1]])


def test_mixture_predictive_follows_its_weights(fits):
    from bayesmoe.decide.compare import mixture_predictive

    pair = [fits["test_floor_power"], fits["test_quadratic"]]
    far = pd.DataFrame({"run_id": ["far"], "n_active": [1e11], "tokens": [1e10]})  # 2 decades past the runs
    own = [np.median(f.predictive_log_loss(far, discrepancy=False)) for f in pair]
    assert abs(own[0] - own[1]) > 0.05  # the laws disagree far out
    only_first = mixture_predictive(pair, [1.0, 0.0], far, discrepancy=False)
    assert np.median(only_first) == pytest.approx(own[0], abs=0.01)
    half = mixture_predictive(pair, [0.5, 0.5], far, draws=8000, discrepancy=False)[:, 0]
    assert min(own) < np.median(half) < max(own)
    assert np.mean(np.abs(half - own[0]) < np.abs(half - own[1])) == pytest.approx(0.5, abs=0.08)
    with pytest.raises(BayesMoeError, match="one non-negative weight per fit"):
        mixture_predictive(pair, [1.0], far)


def test_mixture_discrepancy_of_identical_members_is_the_members():
    from bayesmoe.decide.compare import mixture_discrepancy
    from bayesmoe.inference.discrepancy import learn

    rng = np.random.default_rng(0)
    distance = rng.uniform(0, 2, 60)
    table = pd.DataFrame({"step": np.arange(60) // 10, "ahead": 1, "run_id": [f"r{i}" for i in range(60)],
                          "score": 0.0, "error": rng.normal(0, 0.002 + 0.02 * distance), "law_sd": 0.003,
                          "distance": distance})
    term = mixture_discrepancy([table, table], [0.3, 0.7], scale_column="n_active", reference=1e9)
    alone = learn(table["error"], table["law_sd"], distance, table["step"])
    assert (term.s0, term.s1, term.t) == pytest.approx(tuple(alone.mean), abs=1e-9)
    assert np.asarray(term.draws) == pytest.approx(alone.kept, abs=1e-6)
    assert term.s1 > 0.01 and term.reference == 1e9 and term.scale_column == "n_active"
    assert term.max_distance == pytest.approx(distance.max())
