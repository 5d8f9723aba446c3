"""Simulation-based calibration (Talts et al. 2018, arXiv 1804.06788) of the fits bayesmoe ships.

Each replicate draws a truth and a runs table from the prior predictive of the very model ``bayesmoe.fit``
samples (:func:`bayesmoe.model.simulate.prior_predictive`, NumPyro ``Predictive``), fits the table through
``bayesmoe.fit`` (small MCMC settings), thins each chain evenly to ``L`` = 100 draws in all and records
the rank of the truth among them (0..L) for every law parameter, the noise scale ``sigma``, the pooling
scales ``*_tau`` (pooled model) and a decision quantity: the optimal ``n_active`` at a budget of 1e21
FLOPs (``opt_n_active``; routing, whose ``n_active`` is fixed by the budget, ranks the optimal loss,
``opt_loss``). If the fits are calibrated every rank is uniform on 0..L.

Models: ``chinchilla`` (30 runs), ``granularity`` (40), ``joint`` (40), ``routing`` (30) on the laws'
default designs (:data:`bayesmoe.model.simulate.DESIGNS`), and ``routing_pooled``: 40 routing runs, 10
dense and 10 for each of 3 routers, pooled by router (``--group group``, as the demo's Clark fit).
A run keeps the same table size per model, so one set of compiled programs serves every replicate
(JAX's persistent cache; run ``bayesmoe.configure()`` first, as here).

Results are appended per replicate to ``benchmarks/sbc/<model>.jsonl`` (resumable: replicates already
there are skipped). ``--report`` tests each quantity's ranks for uniformity (chi-square on 10 equal
bins) and draws ECDF-difference plots with a 95% simultaneous band (``benchmarks/sbc/<model>.png``).

    python benchmarks/sbc.py --models chinchilla granularity joint routing routing_pooled --replicates 100
    python benchmarks/sbc.py --report
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

import bayesmoe
from bayesmoe.decide.optimum import optimizer_for
from bayesmoe.model import Prior
from bayesmoe.model.simulate import DESIGNS, prior_predictive
from bayesmoe.report.sbc import ecdf_figure, read_sbc, sbc_table

OUT = Path(__file__).resolve().parent / "sbc"
#: thinned posterior draws per replicate: ranks run 0..L.
L = 100
#: budget (FLOPs) of the decision quantity.
BUDGET = 1e21
ROUTERS = 3


def _pooled_routing(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Routing runs pooled by router: n / 4 dense runs (shared by every router) and n / 4 per router."""
    per = n // (ROUTERS + 1)
    design = DESIGNS["routing"](rng, per * (ROUTERS + 1))
    experts = rng.choice([2, 4, 8, 16, 32, 64, 128, 256, 512], per * ROUTERS)
    design["n_experts"] = np.concatenate([np.ones(per, dtype=int), experts])
    design["group"] = ["dense"] * per + [f"router{r}" for r in range(ROUTERS) for _ in range(per)]
    return design


#: model -> (law, design of n runs, runs, group column).
MODELS: dict[str, tuple[str, Callable[[np.random.Generator, int], pd.DataFrame], int, str | None]] = {
    "chinchilla": ("chinchilla", DESIGNS["chinchilla"], 30, None),
    "granularity": ("granularity", DESIGNS["granularity"], 40, None),
    "joint": ("joint", DESIGNS["joint"], 40, None),
    "routing": ("routing", DESIGNS["routing"], 30, None),
    "routing_pooled": ("routing", _pooled_routing, 40, "group"),
}


def quantities(fit: bayesmoe.Fit, truth: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Posterior draws (chains, draws) and the true value of every ranked quantity of one replicate.

    Args:
        fit: the replicate's fit.
        truth: the prior-predictive draw it was simulated from (site -> array with a leading axis of 1).
    """
    post = fit.idata.posterior
    names = [p.name for p in fit.law.params] + [f"{fit.law.param(n).latent}_tau" for n in fit.pooled] + ["sigma"]
    draws = {n: post[n].values for n in names}
    true = {n: float(np.ravel(truth[n])[0]) for n in names}
    key = "loss" if fit.law.name == "routing" else "n_active"
    solve = optimizer_for(fit.law)
    chains, n = post.sizes["chain"], post.sizes["draw"]
    draws[f"opt_{key}"] = np.asarray(solve(fit.draws(), np.array([BUDGET]))[key])[:, 0].reshape(chains, n)
    theta = {k: np.array([float(v)]) for k, v in fit.meta["constants"].items()}
    theta.update({k: np.ravel(v)[:1] for k, v in truth.items() if np.size(v) == 1})
    true[f"opt_{key}"] = float(np.asarray(solve(theta, np.array([BUDGET]))[key])[0, 0])
    return draws, true


def rank(draws: np.ndarray, truth: float, rng: np.random.Generator) -> int:
    """Rank of ``truth`` among ``L`` draws thinned evenly from each chain of ``draws`` (chains, n); ties at random."""
    chains, n = draws.shape
    index = np.linspace(0, n - 1, L // chains).round().astype(int)
    thinned = draws[:, index].ravel()
    below, ties = int(np.sum(thinned < truth)), int(np.sum(thinned == truth))
    return below + int(rng.integers(0, ties + 1))


def replicate(model: str, seed: int, *, chains: int, warmup: int, draws: int,
              fit_prior: Mapping[str, Prior] | None = None) -> dict:
    """One SBC replicate of ``model``: prior-predictive draw, fit, ranks (a JSON-ready record).

    ``fit_prior`` replaces some of the fit's priors while the truth still comes from the defaults: a
    deliberately mis-specified prior, for the test that SBC can fail. None for the real check.
    """
    law, design, n_runs, group = MODELS[model]
    rng = np.random.default_rng(10_000 + seed)
    sites, runs = prior_predictive(law, design(rng, n_runs), group=group, seed=seed)
    runs["loss"] = np.exp(sites["log_loss"][0])
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bayesmoe.fit(runs, law=law, group=group, prior=fit_prior, chains=chains, warmup=warmup, draws=draws,
                           seed=seed, progress_bar=False)
    seconds = time.perf_counter() - start
    posterior, true = quantities(fit, sites)
    table = fit.summary()
    ranks = {q: rank(posterior[q], true[q], rng) for q in posterior}
    return {"replicate": seed, "model": model, "L": L, "ranks": ranks,
            "r_hat_max": float(table["r_hat"].max()), "ess_bulk_min": float(table["ess_bulk"].min()),
            "divergences": fit.divergences, "seconds": round(seconds, 2),
            "settings": {"chains": chains, "warmup": warmup, "draws": draws}, "code": _commit()}


def _commit() -> str:
    """The repository's commit (short hash, ``+`` when the working tree has changes), or ``unknown``."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=OUT.parent, capture_output=True, text=True).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        return (head + ("+" if git("status", "--porcelain", "--", "../bayesmoe") else "")) or "unknown"
    except OSError:
        return "unknown"


def run(model: str, replicates: int, *, chains: int, warmup: int, draws: int, out: Path = OUT) -> None:
    """Append replicates 0..replicates-1 of ``model`` not yet in ``out/<model>.jsonl``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{model}.jsonl"
    done = {json.loads(line)["replicate"] for line in path.read_text().splitlines()} if path.exists() else set()
    for seed in range(replicates):
        if seed in done:
            continue
        record = replicate(model, seed, chains=chains, warmup=warmup, draws=draws)
        with path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(f"{model} replicate {seed}: {record['seconds']:.1f} s, r_hat max {record['r_hat_max']:.3f}", flush=True)


def report(out: Path = OUT) -> pd.DataFrame:
    """Uniformity p-value per model and quantity (:func:`bayesmoe.report.sbc.sbc_table`), and one
    ECDF-difference figure per model, ``out/<model>.png``."""
    results = read_sbc(out)
    for model, records in results.items():
        ecdf_figure(model, records).savefig(out / f"{model}.png", dpi=80)
    return sbc_table(results)


def markdown(table: pd.DataFrame) -> str:
    """The report table as Markdown: model, quantity, replicates, p-value (chi-square, 10 bins), commit."""
    lines = ["| model | quantity | replicates | uniformity p (chi-square, 10 bins) | code |", "|---|---|---|---|---|"]
    lines += [f"| {r.model} | `{r.quantity}` | {r.replicates} | {r.p_value:.3f} | {r.code} |"
              for r in table.itertuples()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--report", action="store_true", help="summarise the results in --out")
    args = parser.parse_args(argv)
    if args.report:
        print(markdown(report(args.out)))
        return 0
    bayesmoe.configure()
    for model in args.models:
        run(model, args.replicates, chains=args.chains, warmup=args.warmup, draws=args.draws, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
