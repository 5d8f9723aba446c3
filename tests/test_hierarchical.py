"""Partial pooling: a group with 5 runs borrows strength from the others."""
import numpy as np
import pandas as pd
from conftest import FAST

import bayesmoe
from bayesmoe.model.simulate import DESIGNS, law_loss

BASE = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}
# Each group shifts the level terms (irreducible loss and coefficients); exponents are shared.
SHIFTS = {"g0": (1.00, 1.0, 1.0), "g1": (1.06, 1.3, 0.8), "g2": (0.95, 0.8, 1.2), "small": (1.03, 1.15, 0.9)}


def group_values(name):
    e, a, b = SHIFTS[name]
    return {**BASE, "E": BASE["E"] * e, "A": BASE["A"] * a, "B": BASE["B"] * b}


def simulate(rng):
    frames = []
    for name, n in (("g0", 40), ("g1", 40), ("g2", 40), ("small", 5)):
        design = DESIGNS["chinchilla"](rng, n)
        loss = law_loss("chinchilla", group_values(name), design) * np.exp(rng.normal(0, 0.01, n))
        frames.append(design.assign(group=name, loss=loss, run_id=[f"{name}-{i}" for i in range(n)]))
    return pd.concat(frames, ignore_index=True)


def test_pooling_beats_a_separate_fit_for_a_small_group():
    rng = np.random.default_rng(5)
    runs = simulate(rng)
    test = DESIGNS["chinchilla"](rng, 50).assign(group="small")
    truth = np.log(law_loss("chinchilla", group_values("small"), test))

    pooled = bayesmoe.fit(runs, "chinchilla", group="group", seed=0, **FAST)
    separate = bayesmoe.fit(runs[runs.group == "small"], "chinchilla", seed=0, **FAST)

    error_pooled = np.abs(np.median(pooled.log_mean(test), axis=0) - truth).mean()
    error_separate = np.abs(np.median(separate.log_mean(test), axis=0) - truth).mean()
    assert error_pooled < 0.5 * error_separate, (error_pooled, error_separate)

    # The small group's own irreducible loss is estimated, not just the population's.
    e_small = pooled.draws("small")["E"]
    assert np.quantile(e_small, 0.05) <= group_values("small")["E"] <= np.quantile(e_small, 0.95)
    assert {"E[small]", "log_E_tau", "E"} <= set(pooled.summary().index)


def test_new_group_prediction_is_wider_than_a_known_group():
    rng = np.random.default_rng(6)
    runs = simulate(rng)
    fit = bayesmoe.fit(runs, "chinchilla", group="group", seed=0, **FAST)
    test = DESIGNS["chinchilla"](rng, 5)
    known = fit.predict(test.assign(group="g0"))
    new = fit.predict(test.assign(group="unseen"))
    assert ((new["q95"] - new["q05"]) > (known["q95"] - known["q05"])).all()


def test_groups_from_a_combination_of_columns():
    """``group="corpus+recipe"`` pools across each combination of the two columns, as one column would."""
    rng = np.random.default_rng(7)
    runs = simulate(rng)
    parts = {"g0": ("a", "x"), "g1": ("a", "y"), "g2": ("b", "x"), "small": ("b", "y")}
    runs["corpus"] = runs["group"].map(lambda g: parts[g][0])
    runs["recipe"] = runs["group"].map(lambda g: parts[g][1])
    fit = bayesmoe.fit(runs.drop(columns="group"), "chinchilla", group="corpus+recipe", seed=0, **FAST)
    assert fit.groups == ("a/x", "a/y", "b/x", "b/y")
    e_small = fit.draws("b/y")["E"]
    assert np.quantile(e_small, 0.05) <= group_values("small")["E"] <= np.quantile(e_small, 0.95)
    test = DESIGNS["chinchilla"](rng, 5)
    known = fit.predict(test.assign(corpus="b", recipe="y"))
    new = fit.predict(test.assign(corpus="c", recipe="y"))
    assert ((new["q95"] - new["q05"]) > (known["q95"] - known["q05"])).all()
