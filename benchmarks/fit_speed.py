"""Fit speed (issue 7, item 1): ``bayesmoe fit`` against the papers' point-fit method, same run.

Baseline ("papers' method", Hoffmann et al. 2022 / Besiroglu et al. 2024): Huber loss (delta 1e-3) on
log loss with the law in log-sum-exp form, SciPy L-BFGS-B from every point of a grid of starts:
log-coefficients in 0..25 step 5, log irreducible loss in -1..1 step 0.5, exponents in 0..2 step 0.5
(magnitudes; negative for the joint law's sign convention), 4,500 starts. For the granularity and joint
laws their extra parameters start at fixed values (log g = 0, gamma = 0.5; delta = gamma = omega =
zeta = 0), keeping 4,500 starts. The objective and its gradient are one compiled JAX function (no
finite differences), which makes the baseline faster than the papers' code, not slower; and BLAS runs
single-threaded during L-BFGS-B, as in bayesmoe (a multi-threaded OpenBLAS costs milliseconds per
iteration on these tiny vectors, which would slow the baseline ~10x on a busy machine).

To keep the benchmark to minutes, the baseline runs every ``--grid-stride``-th start of the grid and its
time is scaled to the full grid (the grid cost is linear in starts; the subset's best point is printed
next to the full-grid value to show it finds the same optimum).

Ours: ``bayesmoe fit`` (the CLI, default settings) in a fresh process, compile included, once with an
empty JAX compilation cache ("cold", a first fit) and once with the cache that run left ("warm", any
later fit of the same law and number of runs). Wall time and CPU time (user + sys of the child) are
both reported, because the machine is shared; ratios use medians over ``--repeats``.

    python benchmarks/fit_speed.py                       # all three laws, 3 repeats
    python benchmarks/fit_speed.py --laws chinchilla --repeats 1
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import optimize
from threadpoolctl import threadpool_limits

import bayesmoe
from bayesmoe.model.simulate import simulate_runs

bayesmoe.configure()  # float64 and the compilation cache, as the bayesmoe command sets them

EPOCH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chinchilla-epoch" / "svg_extracted_data.csv"
HUBER_DELTA = 1e-3
SIM_RUNS, SIM_NOISE = 200, 0.01
SIM_SETS = {"granularity": "krajewski2024", "joint": "ludziejewski2025"}
#: extra parameters of the MoE laws: fixed start values (latent scale).
EXTRA_STARTS = {
    "granularity": {"g": 0.0, "gamma": 0.5},
    "joint": {"delta": 0.0, "gamma": 0.0, "omega": 0.0, "zeta": 0.0},
}
#: (coefficient A-like, coefficient B-like, irreducible, exponent N, exponent D) per law.
GRID_NAMES = {"chinchilla": ("A", "B", "E", "alpha", "beta"), "granularity": ("a", "b", "c", "alpha", "beta"),
              "joint": ("a", "b", "c", "alpha", "beta")}


def runs_table(law: str) -> pd.DataFrame:
    """Epoch Chinchilla data (5 highest-loss points dropped) or 200 simulated runs from the published set."""
    if law == "chinchilla":
        raw = pd.read_csv(EPOCH)
        runs = pd.DataFrame({"n_active": raw["Model Size"], "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]),
                             "loss": raw["loss"]})
        return bayesmoe.load_runs(runs, exclude_top_loss=5)
    values = bayesmoe.get_law(law).coefficient_set(SIM_SETS[law]).values
    return simulate_runs(law, values, SIM_RUNS, noise=SIM_NOISE, seed=0)


def grid_starts(law: str) -> tuple[tuple[str, ...], np.ndarray]:
    """The 4,500-point start grid on the latent scale: parameter names and an array (4500, k)."""
    spec = bayesmoe.get_law(law)
    sign = -1.0 if law == "joint" else 1.0
    axes = [np.arange(0, 26, 5.0), np.arange(0, 26, 5.0), np.arange(-1, 1.01, 0.5),
            sign * np.arange(0, 2.01, 0.5), sign * np.arange(0, 2.01, 0.5)]
    names = tuple(spec.param(n).latent for n in GRID_NAMES[law]) + tuple(
        spec.param(n).latent for n in EXTRA_STARTS.get(law, {}))
    rows = [list(p) + list(EXTRA_STARTS.get(law, {}).values()) for p in itertools.product(*axes)]
    return names, np.array(rows)


def papers_fit(law: str, runs: pd.DataFrame, stride: int) -> dict:
    """Huber + L-BFGS-B from every ``stride``-th grid start; seconds (wall, cpu) scaled to the full grid."""
    spec = bayesmoe.get_law(law)
    names, starts = grid_starts(law)
    x = {k: jnp.asarray(v) for k, v in spec.covariates(runs).items()}
    y = jnp.asarray(np.log(runs["loss"].to_numpy(float)))

    def huber(v):
        theta = {p.name: p.to_natural(v[names.index(p.latent)]) for p in spec.params}
        r = spec.mean_log_loss(theta, x) - y
        a = jnp.abs(r)
        return jnp.sum(jnp.where(a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA)))

    value_and_grad = jax.jit(jax.value_and_grad(huber))

    def objective(v):
        f, g = value_and_grad(v)
        return float(f), np.asarray(g, dtype=float)

    wall, cpu = time.perf_counter(), time.process_time()
    best = None
    subset = starts[::stride]
    with threadpool_limits(limits=1, user_api="blas"):  # as bayesmoe's own L-BFGS-B: no BLAS thread overhead
        for z0 in subset:
            result = optimize.minimize(objective, z0, jac=True, method="L-BFGS-B")
            if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                best = result
    scale = len(starts) / len(subset)
    return {"wall": (time.perf_counter() - wall) * scale, "cpu": (time.process_time() - cpu) * scale,
            "starts": len(subset), "best": dict(zip(names, np.round(best.x, 4).tolist())), "huber": float(best.fun)}


def bayesmoe_fit(law: str, csv: Path, cache: Path, out: Path, extra: list[str]) -> dict:
    """``bayesmoe fit`` in a fresh process: wall and child CPU seconds, and the fit's diagnostics."""
    env = {**os.environ, "BAYESMOE_JAX_CACHE": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    command = [sys.executable, "-m", "bayesmoe.cli.main", "fit", str(csv), "--law", law, "--out", str(out), *extra]
    subprocess.run(command, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    fit = bayesmoe.load_fit(out)
    table = fit.summary()
    return {"wall": wall, "cpu": cpu, "min_ess_bulk": float(table["ess_bulk"].min()),
            "max_rhat": float(table["r_hat"].max()), "divergences": fit.divergences}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--laws", nargs="+", default=["chinchilla", "granularity", "joint"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grid-stride", type=int, default=15, help="run every k-th grid start (time scaled up)")
    parser.add_argument("--fit-args", default="", help="extra `bayesmoe fit` flags, e.g. '--warmup 1000'")
    args = parser.parse_args(argv)
    print(
        f"nproc {os.cpu_count()}  jax {jax.__version__}  bayesmoe {bayesmoe.__version__}  fit args: "
        f"{args.fit_args or 'defaults'}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for law in args.laws:
            csv = tmp / f"{law}.csv"
            runs_table(law).to_csv(csv, index=False)
            runs = pd.read_csv(csv)
            for rep in range(args.repeats):
                base = papers_fit(law, runs, args.grid_stride)
                cache = tmp / f"cache-{law}-{rep}"
                cold = bayesmoe_fit(law, csv, cache, tmp / "fit.nc", args.fit_args.split())
                warm = bayesmoe_fit(law, csv, cache, tmp / "fit.nc", args.fit_args.split())
                row = {"law": law, "rep": rep, "papers_wall": base["wall"], "papers_cpu": base["cpu"],
                       **{f"cold_{k}": v for k, v in cold.items()}, **{f"warm_{k}": v for k, v in warm.items()}}
                rows.append(row)
                print(
                    json.dumps({**row, "papers_best": base["best"], "papers_starts": base["starts"]}, default=float),
                    flush=True,
                )
    table = pd.DataFrame(rows).groupby("law", sort=False).median(numeric_only=True).drop(columns="rep")
    for kind in ("cold", "warm"):
        for clock in ("wall", "cpu"):
            table[f"ratio_{kind}_{clock}"] = table[f"{kind}_{clock}"] / table[f"papers_{clock}"]
    pd.set_option("display.width", 200)
    print(f"\nmedians over {args.repeats} repeats (seconds; ratio = bayesmoe / papers' method, target <= 0.2)")
    print(table.round(3).T.to_string())


if __name__ == "__main__":
    main()
