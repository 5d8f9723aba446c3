"""Trainable recommendations: the trainer's accounting, families inferred from runs, the integer search,
stated conventions, labelled extrapolation, decision probabilities and the routing law's question by N."""

import numpy as np
import pandas as pd
import pytest

from bayesmoe.decide.configs import TIE, Choice, Evaluator, configurations, law_choices, recommend_configs
from bayesmoe.decide.decisions import EXTRAPOLATION_WARN, decide, resolve_expansion
from bayesmoe.decide.experts_by_size import experts_by_size
from bayesmoe.decide.family import account, family_from_runs, paper_family
from bayesmoe.decide.optimum import PointPosterior
from bayesmoe.errors import BayesMoeError
from bayesmoe.laws import get_law
from bayesmoe.runs import read_table, validate_runs

SWEEP = validate_runs(read_table("dataset:trainer_cpu_sweep"))
GADRE = validate_runs(read_table("dataset:gadre2024_overtraining"))
JOINT = PointPosterior.from_set("joint", "joint:ludziejewski2025")
GRANULARITY = PointPosterior.from_set("granularity", "granularity:krajewski2024")


class JitteredFit:
    """A stand-in for a Fit: a published set's values times (1 + 1% noise) per draw, with a runs table."""

    def __init__(self, point: PointPosterior, runs: pd.DataFrame, draws: int = 300, sigma: float = 0.01):
        rng = np.random.default_rng(3)
        self.law, self.runs, self.heldout, self.pooled, self.meta = point.law, runs, None, (), {"likelihood": "normal"}
        base = point.draws()
        self.values = {
            k: v[0] * (1 + (0.01 if k in self.law.param_names else 0.0) * rng.standard_normal(draws))
            for k, v in base.items()
        }
        self.values["sigma"] = np.full(draws, sigma)

    def draws(self, group=None, *, seed=0):
        return self.values


@pytest.mark.parametrize(
    "kw",
    [
        dict(expansion=1),
        dict(expansion=8),
        dict(expansion=4, granularity=4),
        dict(expansion=4, granularity=4, shared_ratio=0.25),
    ],
)
def test_account_matches_trainer_flops(kw):
    moe_config = pytest.importorskip("trainer.config").moe_config  # numpy-only modules of the trainer
    trainer_account = pytest.importorskip("trainer.flops").account

    cfg = moe_config(vocab_size=257, seq_len=128, d_model=96, n_layers=5, **kw)
    mine = account(
        cfg.d_model,
        cfg.n_layers,
        cfg.n_experts,
        cfg.top_k,
        cfg.n_shared,
        cfg.d_expert,
        cfg.d_ff,
        vocab_size=cfg.vocab_size,
        seq_len=cfg.seq_len,
    )
    theirs = trainer_account(cfg)
    for key in ("n_total", "n_active", "n_embedding", "n_router", "flops_per_token", "head_flops_per_token"):
        assert float(mine[key]) == getattr(theirs, key), key


def test_family_from_the_sweep_runs():
    fam = family_from_runs(SWEEP)
    aspect = SWEEP["d_model"] / SWEEP["n_layers"]
    assert fam.aspect_ratio == (aspect.min(), aspect.max())
    top = SWEEP[SWEEP["budget"] == SWEEP["budget"].max()]   # the top isoFLOP profile (1e13: head dims 16, 24, 32)
    assert fam.head_dim == int((top["d_model"] / top["n_heads"]).value_counts().idxmax())   # its most common
    assert fam.vocab_size == SWEEP["vocab_size"].iloc[0] and fam.seq_len == SWEEP["seq_len"].iloc[0]
    ratio = SWEEP["compute"] / (SWEEP["flops_per_token"] * SWEEP["tokens"])
    assert fam.flops == ("M" if np.allclose(ratio, 1, rtol=0.02) else "M+head")


def test_family_from_gadre_runs_infers_vocabulary_ffn_and_flops():
    fam = family_from_runs(GADRE)
    assert fam.vocab_size == 50432  # n_embedding / (2 d_model), the dataset card's 2 x 50,432 x d_model
    assert fam.flops == "6Na"  # the table's compute is 6 N D
    d, L = GADRE["d_model"].iloc[0], GADRE["n_layers"].iloc[0]
    d_ff = ((GADRE["n_active"].iloc[0] - d) / L - 4 * d * d - 2 * d) / (3 * d)
    assert fam.ffn_mult == pytest.approx(d_ff / d, rel=0.05)


def test_runs_family_needs_shape_columns():
    with pytest.raises(BayesMoeError, match="d_model"):
        family_from_runs(SWEEP.drop(columns="d_model"))


def _check_trainable(c: dict, fam):
    for key in ("d_model", "n_layers", "n_heads", "n_experts", "top_k", "granularity", "d_expert", "tokens"):
        assert isinstance(c[key], int) and c[key] >= 1, key
    assert c["d_model"] % c["n_heads"] == 0 and c["d_model"] // c["n_heads"] == fam.head_dim
    assert (
        fam.aspect_ratio[0] - 1e-9 <= c["d_model"] / c["n_layers"] <= fam.aspect_ratio[1] + 1e-9 or c["n_layers"] == 1
    )
    assert c["d_expert"] * c["granularity"] == c["d_ff"] and c["top_k"] <= c["n_experts"]


def test_point_posterior_pick_is_the_brute_force_minimum():
    """Every (layers, width multiple of the head dim) near the optimum, priced by the law directly."""
    fam = paper_family("joint")
    rec = recommend_configs(Evaluator(JOINT.law, JOINT.draws(), with_embedding=True), fam, law_choices("joint"), 1e21)
    best = rec["config"]
    _check_trainable(best, fam)
    theta = {k: v[0] for k, v in JOINT.draws().items()}
    losses = []
    for E in 2 ** np.arange(7):
        for L in range(1, 200):
            d = 64 * L  # aspect ratio 64 exactly, head dim 64
            n_act = L * (4 * d * d + 2 * d + 3 * d * 4 * d) + d + 2 * 50257 * d
            x = {"log_N": np.log([n_act]), "log_D": np.log([1e21 / (6 * n_act)]), "E": np.array([float(E)])}
            losses.append((float(np.exp(get_law("joint").mean_log_loss(theta, x))[0]), L, E))
    loss, L, E = min(losses)
    assert best["n_experts"] == E and abs(best["n_layers"] - L) <= 1
    assert loss <= best["loss_law"]["q50"] <= loss * (1 + TIE)
    assert best["tokens"] == pytest.approx(1e21 / (6 * (best["n_active"] + best["n_embedding"])), rel=1e-6)
    assert best["expected_regret"] >= 0


def test_published_set_has_no_probability():
    rec = recommend_configs(
        Evaluator(JOINT.law, JOINT.draws(), with_embedding=True), paper_family("joint"), law_choices("joint"), 1e21
    )
    m = rec["moe_vs_dense"]
    assert m["p_moe_beats_dense"] is None and "no posterior" in m["no_posterior"]


def test_decide_on_sweep_runs_is_trainable_with_labelled_extrapolation():
    fit = JitteredFit(JOINT, SWEEP)
    largest = SWEEP["compute"].max()
    budgets = [5 * largest, 1000 * largest]
    conv, out = decide(fit, budgets)
    assert conv["family"]["name"] == "runs" and conv["n_embedding_in_law"] is True
    fam = family_from_runs(SWEEP)
    for budget, entry in zip(budgets, out):
        _check_trainable(entry["config"], fam)
        assert entry["extrapolation"] == pytest.approx(budget / largest)
        per_token = entry["config"]["flops_per_token"] if fam.flops == "M" else None
        if per_token is not None:
            assert entry["config"]["tokens"] == pytest.approx(budget / per_token, rel=1e-6)
        assert 0 <= entry["moe_vs_dense"]["p_moe_beats_dense"] <= 1
    assert not any(f"past {EXTRAPOLATION_WARN:g}x" in w for w in out[0]["warnings"])
    assert any(f"{EXTRAPOLATION_WARN:g}x" in w for w in out[1]["warnings"])


def test_granularity_expansion_from_runs_or_flag():
    moe = SWEEP[SWEEP["n_experts"] > 1]
    rate = float((moe["n_experts"] / moe["granularity"]).mode().iloc[0])
    single = SWEEP[(SWEEP["n_experts"] == 1) | (SWEEP["n_experts"] == rate * SWEEP["granularity"])]
    assert resolve_expansion(JitteredFit(GRANULARITY, single), None)[0] == rate
    mixed = single.copy()
    mixed.loc[mixed.index[mixed["n_experts"] > 1][0], "n_experts"] *= 2
    fit = JitteredFit(GRANULARITY, mixed)
    with pytest.raises(BayesMoeError, match="--expansion"):
        resolve_expansion(fit, None)
    conv, out = decide(fit, [1e14], expansion=3 * rate)
    assert conv["expansion_rate"]["value"] == 3 * rate and f"{rate:g}" in conv["expansion_rate"]["source"]
    c = out[0]["config"]
    _check_trainable(c, family_from_runs(mixed))
    assert c["n_experts"] in (1, 3 * rate * c["granularity"])


def test_routing_best_experts_by_size_and_crossover():
    point = PointPosterior.from_set("routing", "routing:clark2022-sbase")
    t = {k: float(v[0]) for k, v in point.draws().items()}
    crossover = 10 ** (-t["b"] / t["c"])
    out = experts_by_size(point.draws(), [crossover / 100, crossover * 100])
    small, large = out["n_active"]
    assert small["best_n_experts"]["q50"] == 512 and small["p_experts_help"] == 1
    assert large["best_n_experts"]["q50"] == 1 and large["p_experts_help"] == 0
    assert out["crossover_n_active"]["q50"] == pytest.approx(crossover, rel=1e-9)
    assert small["effective_multiplier"]["q50"] > 1
    with pytest.raises(BayesMoeError, match="--n-active"):
        experts_by_size(point.draws(), [-5])


def test_configurations_drop_budgets_too_small_for_one_token():
    fam = paper_family("chinchilla")
    frame = configurations(fam, Choice(1, 1, 1), np.array([1.0, 100.0]), np.array([128.0, 12800.0]), 1e9)
    assert list(frame["n_layers"]) == [1.0]


def test_memory_objective_keeps_configs_within_the_budget():
    fit = JitteredFit(JOINT, SWEEP)
    free = decide(fit, [1e15])[1][0]["config"]
    cap = free["memory_bytes"] / 3
    capped = decide(fit, [1e15], objective="memory", options={"memory": cap})[1][0]["config"]
    assert capped["memory_bytes"] <= cap < free["memory_bytes"]


class HierarchicalFit(JitteredFit):
    """Pooled ``a``: a new group's draws spread 20% around the population mean's."""

    def __init__(self, point, runs):
        super().__init__(point, runs)
        self.pooled, self.groups = ("a",), ("seen",)

    def draws(self, group=None, *, seed=0):
        if group is None or group in self.groups:
            return self.values
        spread = np.random.default_rng(seed).lognormal(0, 0.2, len(self.values["a"]))
        return {**self.values, "a": self.values["a"] * spread}


def test_new_group_bands_include_the_between_group_spread():
    fit = HierarchicalFit(JOINT, SWEEP)
    conv_mu, (mu,) = decide(fit, [1e15])
    conv_new, (new,) = decide(fit, [1e15], group="unseen-lab")
    assert "population mean" in conv_mu["parameters"] and "new group" in conv_new["parameters"]
    width = {k: r["config"]["loss_law"]["q95"] - r["config"]["loss_law"]["q05"] for k, r in (("mu", mu), ("new", new))}
    assert width["new"] > 1.5 * width["mu"]


class HeldOutFit(JitteredFit):
    """One run of each of the two largest budgets held out (the rest of them dropped); predictions miss
    the held-out runs by 0.01 and 0.02 nats."""

    def __init__(self, point, runs):
        level = np.log10(runs["compute"]).round(1)
        budgets = np.sort(level.unique())
        top = runs[level >= budgets[-2]]
        super().__init__(point, runs[level < budgets[-2]])
        self.heldout = top.sort_values("compute").iloc[[0, -1]]

    def predict(self, runs):
        observed = runs["loss"].to_numpy(float)
        return pd.DataFrame({"q50": observed + 0.01 * np.arange(1, len(runs) + 1), "observed": observed})


def test_heldout_check_reports_the_nearest_held_out_distance():
    fit = HeldOutFit(JOINT, SWEEP)
    largest = fit.runs["compute"].max()
    distances = fit.heldout["compute"].to_numpy(float) / largest
    assert distances[1] > 2 * distances[0] > 2
    _, (entry,) = decide(fit, [distances[1] * largest * 0.9])
    check = entry["heldout_check"]
    assert check["distance"] == pytest.approx(distances[1]) and check["abs_error"] == pytest.approx(0.02)
    assert check["run_id"] == fit.heldout["run_id"].iloc[1]
    assert check["n_runs"] == 1 and check["median_abs_error"] == pytest.approx(0.02)


def test_heldout_check_summarises_the_whole_level():
    from bayesmoe.decide.decisions import _heldout_check

    level = [(5.0, 0.01, "a"), (5.02, 0.03, "b"), (4.98, 0.2, "c"), (1.5, 0.5, "far")]
    check = _heldout_check(level, 4.0)
    assert check["run_id"] == "c" and check["abs_error"] == 0.2   # the nearest run, as before
    assert check["n_runs"] == 3 and check["median_abs_error"] == pytest.approx(0.03)
    assert check["max_abs_error"] == 0.2 and check["max_run_id"] == "c"


def test_discrepancy_widens_the_loss_band_of_a_far_budget():
    from bayesmoe.inference.discrepancy import Discrepancy

    fit = JitteredFit(JOINT, SWEEP)
    largest = SWEEP["compute"].max()
    fit.discrepancy = Discrepancy(s0=0.01, s1=0.05, scale_column="compute", reference=largest, n_errors=6)
    conv, (wide,) = decide(fit, [100 * largest])
    conv_off, (narrow,) = decide(fit, [100 * largest], discrepancy=False)
    assert "included" in conv["discrepancy"] and "left out" in conv_off["discrepancy"]
    spread = {k: r["config"]["loss"]["q95"] - r["config"]["loss"]["q05"] for k, r in (("on", wide), ("off", narrow))}
    sd = 0.01 + 0.05 * np.log(100.0)  # on log loss, against sigma = 0.01
    assert spread["on"] > 3 * spread["off"]
    assert spread["on"] == pytest.approx(2 * 1.645 * sd * wide["config"]["loss"]["q50"], rel=0.25)
    assert wide["config"]["loss_law"] == narrow["config"]["loss_law"]


def test_budgets_past_the_terms_reach_are_flagged():
    from bayesmoe.inference.discrepancy import Discrepancy

    fit = JitteredFit(JOINT, SWEEP)
    largest = SWEEP["compute"].max()
    fit.discrepancy = Discrepancy(s0=0.0, s1=0.02, scale_column="compute", reference=largest, n_errors=6,
                                  max_distance=float(np.log(5.0)))
    _, (near, far) = decide(fit, [3 * largest, 30 * largest])
    reach = "learned from forward-chaining errors up to 1.61"
    assert not any(reach in w for w in near["warnings"])
    assert any(reach in w and "this budget is at 3.40" in w for w in far["warnings"])
    _, (off,) = decide(fit, [30 * largest], discrepancy=False)
    assert not any(reach in w for w in off["warnings"])


def test_chinchilla_priors_centred_on_an_embedding_counting_set_are_flagged():
    fit = JitteredFit(PointPosterior.from_set("chinchilla", "chinchilla:hoffmann2022"), GADRE)
    assert not decide(fit, [1e21])[0]["notes"]
    fit.meta = {"likelihood": "normal", "prior_set": "chinchilla:hoffmann2022"}
    conv, (entry,) = decide(fit, [1e21])
    assert any("includes embeddings" in note for note in conv["notes"])
    assert entry["config"]["n_experts"] == 1 and "moe_vs_dense" not in entry


def test_bands_of_each_draws_best_configuration():
    fit = JitteredFit(JOINT, SWEEP)
    _, (entry,) = decide(fit, [30 * SWEEP["compute"].max()])
    bands = entry["optimal_config_bands"]
    for key in ("d_model", "n_layers", "n_experts", "granularity", "tokens", "ratio_total_active"):
        assert bands[key]["q05"] <= bands[key]["q50"] <= bands[key]["q95"], key
    assert bands["d_model"]["q05"] % family_from_runs(SWEEP).head_dim == 0
    assert bands["n_layers"]["q05"] <= entry["config"]["n_layers"] <= bands["n_layers"]["q95"]


def test_the_terms_tilt_widens_the_bands_of_the_best_size_only():
    """A discrepancy term with a learned tilt moves each draw's best configuration (the size bands widen with
    the budget's distance past the runs); the recommended configuration and its loss band stay."""
    from bayesmoe.inference.discrepancy import Discrepancy

    fit = JitteredFit(JOINT, SWEEP)
    budget = 30 * SWEEP["compute"].max()
    common = dict(s0=0.003, s1=0.002, scale_column="compute", reference=float(SWEEP["compute"].max()), n_errors=50,
                  max_distance=5.0, t=0.003)
    spans = {}
    for name, tilt in (("none", {}), ("tilt", {"u": 0.01, "tilts": [0.01] * 8})):
        fit.discrepancy = Discrepancy(**common, **tilt)
        _, (entry,) = decide(fit, [budget])
        n = entry["optimal_config_bands"]["n_active"]
        spans[name] = (n["q95"] / n["q05"], entry["config"]["n_active"], entry["config"]["loss"])
    assert spans["tilt"][0] > 1.5 * spans["none"][0]
    assert spans["tilt"][1:] == spans["none"][1:]


def test_expert_counts_past_the_fitted_runs_are_flagged():
    fit = JitteredFit(JOINT, SWEEP)
    _, (entry,) = decide(fit, [10 * SWEEP["compute"].max()])
    assert entry["config"]["n_experts"] > SWEEP["n_experts"].max()  # the joint law favours the most experts
    assert any("extrapolation in expert count" in w for w in entry["warnings"])
    _, (capped,) = decide(fit, [10 * SWEEP["compute"].max()], options={"experts_max": SWEEP["n_experts"].max()})
    assert capped["config"]["n_experts"] <= SWEEP["n_experts"].max()
    assert not any("expert count" in w for w in capped["warnings"])
    # the capped recommendation sits on the search's bound, so it says 'at least'; with a wider bound it warns
    # exactly when the pick reaches that bound
    assert capped["config"]["n_experts"] == SWEEP["n_experts"].max()
    assert any("n_experts 32 is the largest the search tried" in w for w in capped["warnings"])
    _, (wide,) = decide(fit, [10 * SWEEP["compute"].max()], options={"experts_max": 256})
    assert any("largest the search tried" in w for w in wide["warnings"]) == (wide["config"]["n_experts"] == 256)

    # the granularity law: the expert count follows G, so a pick at the largest G gets one warning, about G
    _, (gran,) = decide(JitteredFit(GRANULARITY, SWEEP), [1e14], expansion=8, options={"granularity_max": 4})
    assert gran["config"]["granularity"] == 4 and gran["config"]["n_experts"] == 32  # the law favours finer experts
    (edge,) = [w for w in gran["warnings"] if "largest the search tried" in w]
    assert edge.startswith("granularity 4 ")


def test_tokens_per_parameter_outside_the_runs_are_flagged():
    from bayesmoe.decide.decisions import _beyond_runs

    runs = pd.DataFrame({"tokens": [1e9, 2e10], "n_active": [1e8, 1e8]})   # 10 and 200 tokens per parameter
    inside = {"n_experts": 1, "granularity": 1, "tokens": 5e9, "n_active": 1e8}
    assert _beyond_runs(inside, runs) == []
    (message,) = _beyond_runs(dict(inside, tokens=6e7), runs)             # 0.6 tokens per parameter
    assert "tokens per active parameter: 0.6 is outside the fitted runs' 10-200" in message
    assert _beyond_runs(dict(inside, tokens=3e10), runs)                   # 300: past the largest
