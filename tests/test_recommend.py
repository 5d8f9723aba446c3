"""Recommendations: Bayes configuration, near-optimal band, snapping regret, MoE vs dense."""
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from bayesmoe.decide.optimum import PointPosterior, optimum
from bayesmoe.decide.recommend import recommend
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws import get_law

JOINT = PointPosterior.from_set("joint", "joint:ludziejewski2025")
V = 50257


def joint_loss(n_act, tokens, experts):
    theta = {k: v[0] for k, v in JOINT.draws().items()}
    x = {
        "log_N": np.log(np.atleast_1d(n_act)),
        "log_D": np.log(np.atleast_1d(tokens)),
        "E": np.atleast_1d(float(experts)),
    }
    return float(np.exp(get_law("joint").mean_log_loss(theta, x))[0])


def joint_config_loss(d, experts, compute):
    n = 2 * d * V + 13 * d**3 / 64  # the paper's architecture, embeddings included
    return joint_loss(n, compute / (6 * n), experts)


def joint_best(compute, experts):
    res = minimize_scalar(lambda y: joint_loss(np.exp(y), compute / (6 * np.exp(y)), experts),
                          bounds=(np.log(1e6), np.log(1e14)), method="bounded", options={"xatol": 1e-10})
    return res.fun


@pytest.fixture(scope="module")
def joint_rec():
    return recommend(JOINT, [1e21], candidates=[{"d_model": 2048, "n_experts": 8}])[0]


def test_bayes_choice_of_a_point_posterior_is_the_optimum(joint_rec):
    opt = optimum(JOINT, [1e21])
    assert joint_rec["bayes"]["d_model"] == pytest.approx(opt.draws["d_model"][0, 0], rel=2e-3)
    assert joint_rec["bayes"]["n_experts"] == opt.draws["n_experts"][0, 0]
    assert joint_rec["bayes"]["expected_regret"] == pytest.approx(0, abs=1e-8)
    assert joint_rec["bayes"]["p_near_optimal"] == 1.0


def test_snapping_regret_is_the_loss_difference(joint_rec):
    best = joint_rec["bayes"]["expected_loss"]
    s128 = joint_rec["snapped"]["d_multiple_of_128"]
    pow2 = joint_rec["snapped"]["d_power_of_2"]
    assert s128["d_model"] % 128 == 0
    assert np.log2(pow2["d_model"]) == int(np.log2(pow2["d_model"]))
    for snapped in (s128, pow2):
        direct = joint_config_loss(snapped["d_model"], snapped["n_experts"], 1e21) - best
        assert snapped["expected_regret"] == pytest.approx(direct, abs=1e-7)
    assert 0 <= s128["expected_regret"] <= pow2["expected_regret"]  # 128-multiples are the finer grid


def test_near_optimal_band_edges(joint_rec):
    eps, best = joint_rec["epsilon"], joint_rec["bayes"]["expected_loss"]
    band = {b["n_experts"]: b["d_model"] for b in joint_rec["near_optimal"]}
    chosen = band[joint_rec["bayes"]["n_experts"]]
    assert chosen["lo"] < joint_rec["bayes"]["d_model"] < chosen["hi"]
    for d in (chosen["lo"], chosen["hi"]):
        assert joint_config_loss(d, joint_rec["bayes"]["n_experts"], 1e21) - best <= eps * best
    for d in (chosen["lo"] / 1.06, chosen["hi"] * 1.06):  # one grid step (about 4.5%) beyond is outside
        assert joint_config_loss(d, joint_rec["bayes"]["n_experts"], 1e21) - best > eps * best


def test_candidate_scores(joint_rec):
    (cand,) = joint_rec["candidates"]
    direct = joint_config_loss(2048, 8, 1e21)
    assert cand["expected_loss"] == pytest.approx(direct, rel=1e-9)
    assert cand["expected_regret"] > joint_rec["bayes"]["expected_regret"]
    assert cand["p_near_optimal"] == 0.0  # 8 experts are ~0.08 nats worse than 64 at this budget


def test_moe_vs_dense_compute_multiplier(joint_rec):
    """Dense (E = 1) trained on multiplier x C reaches the best MoE loss at C (independent 1-D minimisation)."""
    m = joint_rec["moe_vs_dense"]
    assert m["p_moe_better"] is None  # a published set has one draw: no posterior, no probability
    multiplier = m["compute_multiplier"]["q50"]
    moe = min(joint_best(1e21, e) for e in (2, 4, 8, 16, 32, 64))
    assert joint_best(1e21 * multiplier, 1) == pytest.approx(moe, abs=1e-6)
    assert m["loss_dense_minus_moe"]["q50"] == pytest.approx(joint_best(1e21, 1) - moe, abs=1e-6)


def test_granularity_dense_limit_multiplier():
    post = PointPosterior.from_set("granularity", "granularity:krajewski2024")
    rec = recommend(post, [1e21])[0]
    t = {k: v[0] for k, v in post.draws().items()}

    def dense_best(compute):  # law without the g term, N = N_act, C = 6 N D
        def f(y):
            return t["c"] + t["a"] / np.exp(y) ** t["alpha"] + t["b"] / (compute / (6 * np.exp(y))) ** t["beta"]

        return minimize_scalar(f, bounds=(np.log(1e6), np.log(1e15)), method="bounded", options={"xatol": 1e-10}).fun

    moe = optimum(post, [1e21]).draws["loss"][0, 0]
    multiplier = rec["moe_vs_dense"]["compute_multiplier"]["q50"]
    assert dense_best(1e21 * multiplier) == pytest.approx(moe, abs=1e-6)
    assert multiplier > 1


def test_uncertain_posterior_gives_probabilities():
    class Draws:
        law = get_law("joint")

        def __init__(self):
            rng = np.random.default_rng(1)
            base = JOINT.draws()
            self.values = {k: v[0] * (1 + (0.01 if k in self.law.param_names else 0) * rng.standard_normal(300))
                           for k, v in base.items()}

        def draws(self, group=None, seed=0):
            return self.values

    rec = recommend(Draws(), [1e20, 1e22], epsilon=0.002)
    for r in rec:
        assert 0 < r["bayes"]["p_near_optimal"] <= 1
        q = r["moe_vs_dense"]["compute_multiplier"]
        assert q["q05"] < q["q50"] < q["q95"]
        assert 0 <= r["moe_vs_dense"]["p_moe_better"] <= 1


def test_laws_without_a_design_space_and_bad_candidates():
    assert recommend(PointPosterior.from_set("chinchilla", "hoffmann2022"), [1e21]) is None
    with pytest.raises(BayesMoeError, match="n_experts"):
        recommend(JOINT, [1e21], candidates=[{"d_model": 1024}])
    with pytest.raises(BayesMoeError, match="epsilon"):
        recommend(JOINT, [1e21], epsilon=2.0)
