"""Laws: registry, formulas against the papers' own check values, coefficient sets."""
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayesmoe
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws._ehat import e_hat
from bayesmoe.model.simulate import law_loss


def test_registry_has_the_core_laws():
    assert {"chinchilla", "granularity", "joint"} <= set(bayesmoe.law_names())
    with pytest.raises(BayesMoeError, match="unknown law 'nope'"):
        bayesmoe.get_law("nope")


@pytest.mark.parametrize("law", ["chinchilla", "granularity", "joint"])
def test_every_law_is_described_with_priors_and_sets(law):
    info = bayesmoe.get_law(law).describe()
    assert info["coefficient_sets"], "each core law ships a published set"
    assert set(info["priors"]) == set(info["parameters"])
    for entry in info["coefficient_sets"].values():
        assert set(entry["values"]) == set(info["parameters"])


def test_chinchilla_matches_the_formula_by_hand():
    v = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    runs = pd.DataFrame({"n_active": [7e10], "tokens": [1.4e12]})
    expected = 1.69 + 406.4 / 7e10**0.34 + 410.7 / 1.4e12**0.28
    np.testing.assert_allclose(law_loss("chinchilla", v, runs), [expected], rtol=1e-12)


# Ludziejewski et al. 2025 Eq. 4 with Table 3's E_start/E_max (values listed in shared/LAWS.md §3).
@pytest.mark.parametrize(
    "experts, expected", [(1, 2.0732), (2, 3.0556), (4, 5.0005), (8, 8.8124), (16, 16.139), (32, 29.704)]
)
def test_e_hat_values(experts, expected):
    assert float(e_hat(experts, 2.0732, 290.4521)) == pytest.approx(expected, abs=2e-3)


# Check values of the joint law from Table 3's coefficients (shared/LAWS.md §3).
@pytest.mark.parametrize("n, d, e, expected", [(1e9, 2e10, 1, 2.5776), (1e9, 2e10, 8, 2.5088), (3e8, 1e10, 32, 2.6776)])
def test_joint_law_check_values(n, d, e, expected):
    law = bayesmoe.get_law("joint")
    runs = pd.DataFrame({"n_active": [n], "tokens": [d], "n_experts": [e], "n_embedding": [0.0]})
    got = law_loss(law, law.coefficient_set("ludziejewski2025").values, runs)[0]
    assert got == pytest.approx(expected, abs=5e-4)


def test_joint_law_adds_embeddings_to_n():
    law = bayesmoe.get_law("joint")
    values = law.coefficient_set("ludziejewski2025").values
    with_emb = pd.DataFrame({"n_active": [8e8], "tokens": [2e10], "n_experts": [1], "n_embedding": [2e8]})
    without = pd.DataFrame({"n_active": [1e9], "tokens": [2e10], "n_experts": [1]})
    assert law_loss(law, values, with_emb)[0] == pytest.approx(law_loss(law, values, without)[0], rel=1e-12)


def test_granularity_law_by_hand_and_dense_rows():
    law = bayesmoe.get_law("granularity")
    v = law.coefficient_set("krajewski2024").values
    runs = pd.DataFrame(
        {"n_total": [4.3e10, 1e9], "tokens": [2.9e10, 1e10], "granularity": [16, np.nan], "n_experts": [1024, 1]}
    )
    moe = 0.47 + (2.1 / 16**0.58 + 18.1) / 4.3e10**0.115 + 30.8 / 2.9e10**0.147
    dense = 0.47 + 18.1 / 1e9**0.115 + 30.8 / 1e10**0.147
    np.testing.assert_allclose(law_loss(law, v, runs), [moe, dense], rtol=1e-12)


def test_granularity_needs_g_for_moe_rows():
    runs = pd.DataFrame({"n_total": [1e9], "tokens": [1e10], "n_experts": [64]})
    with pytest.raises(BayesMoeError, match="'granularity'.*MoE rows 0"):
        bayesmoe.get_law("granularity").covariates(runs)


def test_mean_is_finite_for_extreme_inputs():
    law = bayesmoe.get_law("chinchilla")
    x = {"log_N": jnp.log(jnp.array([1e3, 1e15])), "log_D": jnp.log(jnp.array([1e3, 1e16]))}
    theta = {k: jnp.asarray(v) for k, v in law.coefficient_set("hoffmann2022").values.items()}
    assert np.all(np.isfinite(np.asarray(law.mean_log_loss(theta, x))))


def test_unknown_coefficient_set():
    with pytest.raises(BayesMoeError, match="unknown coefficient set 'x' for law 'joint'"):
        bayesmoe.get_law("joint").coefficient_set("x")
