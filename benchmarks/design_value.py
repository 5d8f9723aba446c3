"""Is a design's pick worth more than an isoFLOP grid's or a random run's? (issue 10)

For each law (chinchilla, granularity, joint) and each replication:

1. truth: the published set (``<law>:<source>`` below) with every log-coefficient shifted by N(0, 0.1) and
   every exponent scaled by exp(N(0, 0.03)); runs are simulated from it with Normal noise of sd 0.01 on
   log loss;
2. a small initial sweep: budgets 1e18, 3e18, 1e19 FLOPs x 4 sizes (tokens per active parameter 5, 15,
   45, 135) x the law's architecture families;
3. a pool of candidates: budgets 1e19, 3e19, 1e20 x 7 sizes (tokens per parameter 2 to 500) x families;
4. the same extra FLOPs X = 3e20 spent three ways: (a) the design's picks (``design(..., spend=X)``,
   greedy by expected sd reduction per FLOP), (b) a standard isoFLOP grid (3 runs at 1e20, tokens per
   parameter 5 / 20 / 80, middle family), (c) random pool candidates until X is spent;
5. refit after each arm and measure the target (``n_active`` at 1e22 FLOPs, 100x the largest candidate):
   the 90% band width relative to the truth, and |log(median / truth)|. "FLOPs to grid's band": the
   design's picks are added one at a time (refit after each) until the band is no wider than the
   grid's; the ratio to X is reported (inf when X is not enough).

Fits are Laplace approximations (:func:`bayesmoe.inference.laplace_fit`, 1,000 draws, priors centred
on the published set) so that 20 replications x 3 laws x ~10 refits run in minutes on 2 cores; the design
reweights those draws (32 simulated outcomes per candidate).

    python benchmarks/design_value.py [--reps 20] [--laws chinchilla granularity joint] [--write]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import bayesmoe
from bayesmoe.decide.design import design
from bayesmoe.decide.optimum import PointPosterior, optimum
from bayesmoe.errors import BayesMoeError
from bayesmoe.inference import laplace_fit
from bayesmoe.laws import get_law

bayesmoe.configure()  # float64 and the compilation cache, as the bayesmoe command sets them

INITIAL_BUDGETS = (1e18, 3e18, 1e19)
INITIAL_TPP = (5.0, 15.0, 45.0, 135.0)
POOL_BUDGETS = (1e19, 3e19, 1e20)
POOL_TPP = tuple(np.geomspace(2.0, 500.0, 7))
GRID_BUDGET, GRID_TPP = 1e20, (5.0, 20.0, 80.0)
EXTRA = 3e20
TARGET, AT_COMPUTE = "n_active", 1e22
NOISE_SD = 0.01
DRAWS, OUTCOMES = 1000, 32


@dataclass(frozen=True)
class Scenario:
    law: str
    coefficients: str
    families: tuple[dict, ...]
    total_ratio: float = 1.0


SCENARIOS = {
    "chinchilla": Scenario("chinchilla", "chinchilla:hoffmann2022", ({},)),
    # Krajewski's accounting with expansion 64 (the optimiser's default): N = (8 * 64 + 4) / 12 N_act.
    "granularity": Scenario(
        "granularity",
        "granularity:krajewski2024",
        tuple({"granularity": g, "n_experts": 64 * g, "top_k": g} for g in (2, 8, 32)),
        (8 * 64 + 4) / 12,
    ),
    "joint": Scenario("joint", "joint:ludziejewski2025", tuple({"n_experts": e, "top_k": 1} for e in (1, 8, 32))),
}


def rows(scenario: Scenario, budgets, tpps, families=None) -> pd.DataFrame:
    """Runs at each budget x tokens-per-parameter x family, C = 6 N_act D."""
    out = []
    for c in budgets:
        for tpp in tpps:
            for fam in families or scenario.families:
                na = np.sqrt(c / (6 * tpp))
                out.append(
                    {**fam, "n_active": na, "n_total": na * scenario.total_ratio, "tokens": tpp * na, "compute": c}
                )
    frame = pd.DataFrame(out)
    frame.insert(
        0, "run_id", [f"c{r.compute:.0e}-t{r.tokens / r.n_active:.0f}-{i}" for i, r in enumerate(frame.itertuples())]
    )
    return frame


def truth_of(scenario: Scenario, rng) -> PointPosterior:
    law = get_law(scenario.law)
    values = dict(law.coefficient_set(scenario.coefficients).values)
    for p in law.params:
        if p.scale == "log":
            values[p.name] *= float(np.exp(rng.normal(0, 0.1)))
        else:
            values[p.name] *= float(np.exp(rng.normal(0, 0.03)))
    return PointPosterior(law, values)


def observe(truth: PointPosterior, frame: pd.DataFrame, rng) -> pd.DataFrame:
    law = truth.law
    theta = {k: v[:, None] for k, v in truth.draws().items()}
    x = law.covariates(bayesmoe.runs.validate_runs(frame, require_loss=False))
    mean = np.asarray(law.mean_log_loss(theta, x))[0]
    return frame.assign(loss=np.exp(mean + NOISE_SD * rng.standard_normal(len(frame))))


def measure(scenario, runs, truth_value, seed) -> tuple[float, float]:
    """(90% band width / truth, |log(median / truth)|) of the target after a refit; NaN when the refit fails."""
    try:
        fit = laplace_fit(runs, scenario.law, draws=DRAWS, seed=seed, prior=scenario.coefficients)
    except BayesMoeError:
        return np.nan, np.nan
    draws = optimum(fit, [AT_COMPUTE]).draws[TARGET][:, 0]
    q05, q50, q95 = np.nanquantile(draws, [0.05, 0.5, 0.95])
    return (q95 - q05) / truth_value, abs(np.log(q50 / truth_value))


def replicate(scenario: Scenario, rep: int) -> dict:
    rng = np.random.default_rng(1000 * rep + 7)
    truth = truth_of(scenario, rng)
    truth_value = float(optimum(truth, [AT_COMPUTE]).draws[TARGET][0, 0])
    initial = observe(truth, rows(scenario, INITIAL_BUDGETS, INITIAL_TPP), rng)
    pool = rows(scenario, POOL_BUDGETS, POOL_TPP)
    outcomes = observe(truth, pool, rng).set_index("run_id")["loss"]
    fit0 = laplace_fit(initial, scenario.law, draws=DRAWS, seed=rep, prior=scenario.coefficients)
    t0 = time.perf_counter()
    picked = design(fit0, pool, target=TARGET, at_compute=AT_COMPUTE, spend=EXTRA, outcomes=OUTCOMES, seed=rep).selected
    design_seconds = time.perf_counter() - t0

    def with_runs(ids):
        extra = pool.set_index("run_id").loc[list(ids)].reset_index()
        return pd.concat([initial, extra.assign(loss=outcomes.loc[list(ids)].to_numpy())], ignore_index=True)

    middle = scenario.families[len(scenario.families) // 2]
    grid = observe(
        truth, rows(scenario, [GRID_BUDGET], GRID_TPP, [middle]).assign(run_id=lambda f: "grid-" + f["run_id"]), rng
    )
    order = rng.permutation(len(pool))
    random_ids, spent = [], 0.0
    for j in order:
        if spent + pool["compute"].iloc[j] <= EXTRA:
            random_ids.append(pool["run_id"].iloc[j])
            spent += pool["compute"].iloc[j]
    out = {"initial": measure(scenario, initial, truth_value, rep),
           "design": measure(scenario, with_runs(picked), truth_value, rep),
           "grid": measure(scenario, pd.concat([initial, grid], ignore_index=True), truth_value, rep),
           "random": measure(scenario, with_runs(random_ids), truth_value, rep)}
    need = np.inf
    compute = pool.set_index("run_id")["compute"]
    for i in range(1, len(picked) + 1):
        if measure(scenario, with_runs(picked[:i]), truth_value, rep)[0] <= out["grid"][0]:
            need = float(compute.loc[picked[:i]].sum()) / EXTRA
            break
    return {"arms": out, "flops_ratio": need, "n_picked": len(picked), "design_seconds": design_seconds}


def run(laws, reps) -> pd.DataFrame:
    records = []
    for name in laws:
        scenario = SCENARIOS[name]
        start = time.perf_counter()
        results, skipped, rep = [], 0, 0
        while len(results) < reps and rep < 2 * reps:
            try:
                results.append(replicate(scenario, rep))
            except BayesMoeError:  # the initial Laplace fit found no positive-definite mode
                skipped += 1
            rep += 1
        ratios = np.array([r["flops_ratio"] for r in results])
        row = {"law": name, "reps": len(results), "skipped": skipped}
        for arm in ("initial", "design", "grid", "random"):
            row[f"{arm}_band"] = float(np.nanmedian([r["arms"][arm][0] for r in results]))
            row[f"{arm}_err"] = float(np.nanmedian([r["arms"][arm][1] for r in results]))
        row["flops_ratio_median"] = float(np.median(ratios))
        row["reached_share"] = float(np.isfinite(ratios).mean())
        row["failed_refits"] = int(sum(np.isnan(r["arms"][a][0]) for r in results for a in r["arms"]))
        row["picks_mean"] = float(np.mean([r["n_picked"] for r in results]))
        row["design_seconds"] = float(np.mean([r["design_seconds"] for r in results]))
        row["wall_seconds"] = time.perf_counter() - start
        records.append(row)
        print(
            pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:.3g}"), file=sys.stderr, flush=True
        )
    return pd.DataFrame(records)


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "## Experimental design",
        "",
        f"`python benchmarks/design_value.py --reps {int(table['reps'].iloc[0])} --write`. Target: optimal "
        "`n_active` at "
        f"{AT_COMPUTE:.0e} FLOPs. Initial sweep 1e18-1e19 FLOPs; each arm adds the same {EXTRA:.0e} FLOPs: "
        "**design** (greedy by expected sd reduction per FLOP from a pool of isoFLOP candidates at 1e19-1e20), "
        "**grid** (3 runs at 1e20, D/N 5/20/80), **random** (pool runs until the FLOPs are spent). Band: 90% band "
        "width / truth (median over replications); err: |log(median / truth)| (median). FLOPs ratio: share of "
        "the extra FLOPs the design's picks (refit after each) need to match the grid's band (median; inf = not "
        "reached with the same FLOPs). Failed refits (no positive-definite mode) are left out of the medians; "
        "a replication whose initial fit fails is skipped and replaced. Laplace refits, priors centred on the "
        "published set, truth = published set "
        "perturbed per replication.",
        "",
        "| law | reps | band initial | band design | band grid | band random | err design | err grid | err random "
        "| FLOPs ratio design/grid | reached | picks | design s | failed refits | skipped reps |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.law} | {r.reps} | {r.initial_band:.3f} | {r.design_band:.3f} | {r.grid_band:.3f} | "
            f"{r.random_band:.3f} "
            f"| {r.design_err:.3f} | {r.grid_err:.3f} | {r.random_err:.3f} | {r.flops_ratio_median:.2f} "
            f"| {r.reached_share:.0%} | {r.picks_mean:.1f} | {r.design_seconds:.1f} | {r.failed_refits} | {r.skipped} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--laws", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument(
        "--write", action="store_true", help="replace its section in benchmarks/RESULTS.md (the old one: HISTORY.md)"
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    table = run(args.laws, args.reps)
    text = markdown(table)
    print(text)
    if args.write:
        replace_section(Path(__file__).with_name("RESULTS.md"), text, Path(__file__).with_name("HISTORY.md"))
    return 0


def replace_section(results: Path, text: str, history: Path) -> None:
    """Put ``text`` (a ``## `` section) in place of its namesake in ``results``; append the old one to ``history``."""
    heading = text.splitlines()[0]
    lines = results.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        results.write_text("".join(lines).rstrip() + "\n\n" + text)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    with history.open("a") as f:
        f.write("\n#" + "".join(lines[start:end]).rstrip() + "\n")
    results.write_text("".join(lines[:start]) + text + ("\n" if end < len(lines) else "") + "".join(lines[end:]))


if __name__ == "__main__":
    sys.exit(main())
