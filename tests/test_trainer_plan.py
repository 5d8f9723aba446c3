"""The planner brackets the optimum: ladder, profiles, centring by a fit of finished runs, staged sweeps.

Pure Python (no torch): staged sweeps run with a stand-in trainer that writes losses from a known valley,
loss = A + c (ln n_active - ln n_opt(C))^2 with n_opt(C) = K C^0.5, so the planner's centring can be
checked against the true optimum.
"""
import math

import pytest

from trainer.centre import edge_side, fit_centres, interior_share, profile_minimum, profiles
from trainer.plan import FAMILIES, SHAPES, PlanError, chinchilla_centre, isoflop_design, profile_shapes, row_at_budget
from trainer.staged import staged_sweep
from trainer.sweep import RUNS_COLUMNS, append_run, read_csv

K = 0.3           # n_opt = K sqrt(C): 3e4 at 1e10 (the Chinchilla rule says about 8e3), 3e5 at 1e12


def valley_loss(row: dict) -> float:
    n_opt = K * math.sqrt(float(row["budget"]))
    return 2.0 + 0.05 * (math.log(float(row["n_active"])) - math.log(n_opt)) ** 2


def _by_profile(rows):
    out = {}
    for r in rows:
        out.setdefault((r["budget"], r["n_experts"], r["granularity"], r["shared_ratio"]), []).append(r)
    return out


@pytest.mark.parametrize("budget", [1e9, 1e11, 1e13, 1e15, 1e18, 1e21])
def test_every_budget_from_1e9_to_1e21_plans_profiles(budget):
    rows = isoflop_design([budget])
    assert rows
    for prof in _by_profile(rows).values():
        sizes = sorted({r["n_active"] for r in prof})
        assert all(r["compute"] == r["real_flops_per_token"] * r["tokens"] for r in prof)
        assert all(r["compute"] == pytest.approx(budget, rel=0.05) for r in prof)   # isoFLOP up to whole steps
        if budget >= 1e11:
            assert len(sizes) >= 5 and sizes[-1] / sizes[0] >= 8


def test_ladder_covers_1e3_to_1e10_with_d_up_to_4096_and_48_layers():
    n = [12 * L * d * d for d, L in SHAPES]
    assert min(n) < 2e3 and max(n) > 9e9                 # about 1e3 to 1e10 (12 L d^2 of the layers)
    assert max(d for d, _ in SHAPES) == 4096 and max(L for _, L in SHAPES) == 48


@pytest.mark.parametrize("budget", [1e5, 1e24])
def test_budget_off_the_ladder_is_a_plan_error(budget):
    with pytest.raises(PlanError, match="plannable budgets are about 1e9 to 1e21"):
        isoflop_design([budget])


def test_profiles_centre_on_the_given_estimate():
    for target in (2e4, 1e5):
        rows = isoflop_design([1e12], families=FAMILIES[:1], centre=lambda b, f, t=target: t)
        sizes = sorted(r["n_active"] for r in rows)
        assert sizes[0] < target < sizes[-1]
        assert math.sqrt(sizes[0] * sizes[-1]) == pytest.approx(target, rel=0.35)   # geometric middle


def test_chinchilla_centre_gives_20_tokens_per_parameter():
    centre = chinchilla_centre(1e12, (1, 1, 0.0), vocab_size=257, seq_len=128)
    shapes = profile_shapes(centre, sizes=1)
    row = isoflop_design([1e12], families=FAMILIES[:1], sizes=1)[0]
    assert (row["d_model"], row["n_layers"]) == shapes[0]
    assert 10 < row["tokens"] / row["n_active"] < 40


def test_caps_keep_whole_families_and_repeats_add_seeds():
    rows = isoflop_design([1e11, 1e12], runs_per_budget=[5, 10], repeat_at=(1e12,), repeats=3)
    first = [r for r in rows if r["budget"] == 1e11]
    assert len(first) == 5 and {r["n_experts"] for r in first} == {1}
    second = [r for r in rows if r["budget"] == 1e12]
    assert len(second) == 10                      # cap counts the repeats too
    full = isoflop_design([1e12], repeat_at=(1e12,), repeats=3)
    repeats = [r for r in full if r["design"] == "repeat"]
    assert sorted(r["seed"] for r in repeats) == [1, 1, 2, 2] and {r["n_experts"] for r in repeats} == {1, 16}
    assert all(r["gate"] == "renorm" for r in full)


def test_profile_minimum_and_edges():
    pts = [(n, (math.log(n) - math.log(3e4)) ** 2) for n in (1e4, 2e4, 4e4, 8e4)]
    assert profile_minimum(pts) == pytest.approx(3e4, rel=1e-6)
    assert edge_side(pts) is None
    rising = [(n, math.log(n)) for n in (1e4, 2e4, 4e4)]
    assert profile_minimum(rising) is None and edge_side(rising) == "low"
    assert edge_side([(n, -math.log(n)) for n in (1e4, 2e4, 4e4)]) == "high"


def test_fit_centres_recovers_the_optimum_law():
    rows = []
    for b in (1e10, 1e11, 1e12):
        for r in isoflop_design([b], families=FAMILIES[:2], centre=lambda b, f: 0.5 * K * math.sqrt(b)):
            r["loss"] = valley_loss(r)
            rows.append(r)
    centre = fit_centres(rows)
    for fam in FAMILIES[:2]:
        assert centre(1e14, fam) == pytest.approx(K * 1e7, rel=0.05)
    assert interior_share(rows) == (6, 6)
    assert len(profiles(rows)) == 6


def _fake_trainer(out):
    def train(rows):
        done = {r["run_id"] for r in read_csv(out / "runs.csv")} if (out / "runs.csv").exists() else set()
        for r in rows:
            if r["run_id"] not in done:
                append_run(out, dict(r, loss=valley_loss(r)))
        return 0
    return train


def test_staged_sweep_recentres_and_extends_edges(tmp_path):
    out = tmp_path / "s"
    design = dict(vocab_size=257, seq_len=128, seed=0, group="g", families=FAMILIES[:2])
    assert staged_sweep([1e10, 1e12], out, _fake_trainer(out), extend=2, log=open("/dev/null", "w"), **design) == 0
    rows = read_csv(out / "runs.csv")
    assert set(RUNS_COLUMNS) - {"final_train_ce", "wall_s", "device", "dispatch"} <= set(rows[0])
    # the Chinchilla start (~20 tokens/param) misses the true optimum at 1e10: edges get extended there
    first = [r for r in rows if float(r["budget"]) == 1e10]
    assert any(r["design"] == "extend" for r in first)
    # 1e12 is centred on the fit of 1e10's runs: the true optimum inside, minimum interior, no extension
    second = [r for r in rows if float(r["budget"]) == 1e12]
    sizes = sorted({int(r["n_active"]) for r in second})
    assert sizes[0] < K * 1e6 < sizes[-1] and {r["design"] for r in second} == {"core"}
    assert interior_share(second) == (2, 2)
    # extend_at leaves the other budgets' edges alone
    other = tmp_path / "t"
    staged_sweep([1e10], other, _fake_trainer(other), extend=2, extend_at=(1e12,), log=open("/dev/null", "w"),
                 **design)
    assert {r["design"] for r in read_csv(other / "runs.csv")} == {"core"}
    # re-running resumes from plan.csv: nothing new is planned or trained
    before = (out / "plan.csv").read_text()
    assert staged_sweep([1e10, 1e12], out, _fake_trainer(out), extend=2, log=open("/dev/null", "w"), **design) == 0
    assert (out / "plan.csv").read_text() == before and len(read_csv(out / "runs.csv")) == len(rows)


def test_a_larger_budget_trained_first_never_steers_a_smaller_ones_plan(tmp_path):
    """A held-out top budget trained before a fit budget must not leak into where the fit budget is centred."""
    design = dict(vocab_size=257, seq_len=128, seed=0, group="g", families=FAMILIES[:1])
    alone, after = tmp_path / "alone", tmp_path / "after"
    staged_sweep([1e10], alone, _fake_trainer(alone), extend=0, log=open("/dev/null", "w"), **design)
    # 1e12's Chinchilla start misses the optimum; its extension gives it a vertex a fit could centre 1e10 on
    staged_sweep([1e12, 1e10], after, _fake_trainer(after), extend=2, extend_at=(1e12,), log=open("/dev/null", "w"),
                 **design)
    assert any(r["design"] == "extend" for r in read_csv(after / "plan.csv"))

    def sizes(out):
        return sorted(int(r["n_active"]) for r in read_csv(out / "plan.csv")
                      if float(r["budget"]) == 1e10 and r["design"] == "core")
    assert sizes(after) == sizes(alone)


def test_row_at_budget_records_the_real_flop_convention():
    from trainer.plan import family_config
    cfg = family_config((8, 2, 0.0), 64, 4, vocab_size=257, seq_len=128)
    row = row_at_budget(cfg, 1e12, seed=0, group="g")
    assert row["real_flops_per_token"] == row["flops_per_token"] + 6 * 257 * 64
    assert row["head_flop_share"] == pytest.approx(6 * 257 * 64 / row["real_flops_per_token"], abs=1e-4)
    assert row["embedding_share"] == pytest.approx(2 * 257 * 64 / (2 * 257 * 64 + row["n_active"]), abs=1e-4)
    assert "real" in row["flop_convention"] and row["gate"] == "renorm"


def test_summary_counts_valleys_and_shares(tmp_path, capsys):
    import json

    from trainer.__main__ import main
    rows = []
    for b in (1e11, 1e12):
        for r in isoflop_design([b], families=FAMILIES[:2], centre=lambda b, f: K * math.sqrt(b)):
            rows.append(dict(r, loss=valley_loss(r), wall_s=10.0))
    rows[0]["loss"] = 1.0            # 1e11 dense: the smallest size now holds the minimum
    from trainer.summary import summarize
    s = summarize(rows)
    assert s["valley"] == {"interior": 3, "profiles": 4, "share": 0.75, "min_sizes": 5}
    assert [p["minimum"] for p in s["profiles"]][:2] == ["low", "interior"]
    shares = sorted(r["embedding_share"] for r in rows)
    assert s["embedding_share"]["median"] == pytest.approx((shares[9] + shares[10]) / 2)
    assert s["real_flops_per_s"]["median"] == pytest.approx(statistics_median([r["compute"] / 10 for r in rows]))
    # the optimum fitted to a runs table centres a new plan (--centre-from)
    from trainer.sweep import to_csv
    path = tmp_path / "runs.csv"
    path.write_bytes(to_csv(rows, RUNS_COLUMNS))
    assert main(["plan", "--budgets", "1e14", "--families", "1,1,0", "--centre-from", str(path), "--json"]) == 0
    sizes = sorted(r["n_active"] for r in json.loads(capsys.readouterr().out)["runs"])
    assert sizes[0] < K * 1e7 < sizes[-1]


def statistics_median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
