"""``bayesmoe demo``: the main job on the shipped data, as the commands a user would type.

1. Our own runs (``datasets/trainer_cpu_sweep.csv``, the trainer's CPU sweep): fit the granularity
   and joint laws, compare them by PSIS-LOO, print the optimum bands at a few budgets, and write a
   report to ``<out>/demo/``.
2. Real MoE runs nobody here made (Clark et al. 2022, shipped): the routing law pooled by router,
   its optimum and effective-parameter bands, and a report to ``<out>/clark2022/``.

Each step is run through the command line (:func:`.runner.run` with :data:`.commands.COMMANDS`) and
echoed as the command it is, so the demo doubles as a tutorial. Posterior files go beside the reports (``*.nc``, not
committed).
"""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from ..errors import BayesMoeError
from .commands import COMMANDS
from .runner import run as run_argv

NAME = "demo"
HELP = "fit the shipped runs (our CPU sweep, Clark et al. 2022), print optimum bands, write reports"
#: Draws per chain: half the fit default, to keep the demo short with a cold JAX
#: cache (the committed reports were written with ``--draws 1000``).
DEMO_DRAWS = 500
#: Budgets (training FLOPs) at which the demo prints optimum bands for our CPU-scale runs.
OWN_BUDGETS = ("1e12", "1e13", "1e14")
#: Budgets for the Clark et al. routing law (their runs: 1e19-1e21 FLOPs).
CLARK_BUDGETS = ("1e20", "1e21", "1e22")


def steps(out: Path, draws: int, warmup: int) -> list[tuple[str, list[str]]]:
    """The demo as (title, bayesmoe argv) pairs."""
    own, clark = out / "demo", out / "clark2022"
    mcmc = ["--chains", "4", "--warmup", str(warmup), "--draws", str(draws)]
    gran, joint, routing = str(own / "granularity.nc"), str(own / "joint.nc"), str(clark / "routing.nc")
    return [
        ("Our own runs: the trainer's CPU sweep", ["datasets"]),
        (
            "Fit the granularity law (Krajewski et al. 2024)",
            ["fit", "dataset:trainer_cpu_sweep", "--law", "granularity", "--out", gran, *mcmc],
        ),
        (
            "Fit the joint MoE law (Ludziejewski et al. 2025)",
            ["fit", "dataset:trainer_cpu_sweep", "--law", "joint", "--out", joint, *mcmc],
        ),
        ("Which law predicts held-out runs better (PSIS-LOO, stacking weights)", ["compare", gran, joint]),
        ("Compute-optimal configuration, joint law (90% bands)", ["optimum", joint, "--compute", *OWN_BUDGETS]),
        ("Compute-optimal configuration, granularity law (90% bands)", ["optimum", gran, "--compute", *OWN_BUDGETS]),
        ("Report on our runs", ["report", gran, joint, "--out", str(own)]),
        (
            "Real MoE runs: Clark et al. 2022, routing law pooled by router",
            [
                "fit",
                "dataset:clark2022_routing",
                "--law",
                "routing",
                "--group",
                "group",
                "--where",
                "routing_frequency == 0.5 and top_k == 1",
                "--out",
                routing,
                *mcmc,
            ],
        ),
        (
            "Best expert count and effective parameter count at larger budgets",
            ["optimum", routing, "--compute", *CLARK_BUDGETS],
        ),
        ("Report on the Clark runs", ["report", routing, "--out", str(clark)]),
    ]


def run_demo(out: str | Path = "reports", *, draws: int = DEMO_DRAWS, warmup: int = 500) -> int:
    """Run every step; stop at the first that fails (its error is already printed). Returns the exit status."""
    out = Path(out)
    for folder in (out / "demo", out / "clark2022"):
        folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for number, (title, argv) in enumerate(steps(out, draws, warmup), 1):
        print(f"\n== {number}. {title}\n$ bayesmoe {shlex.join(argv)}", flush=True)
        step_start = time.perf_counter()
        status = run_argv(argv, COMMANDS)
        if status:
            raise BayesMoeError(f"demo step {number} ({title}) failed with status {status}")
        print(f"({time.perf_counter() - step_start:.0f} s)", flush=True)
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s; reports in {out / 'demo'} and {out / 'clark2022'}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="reports", help="folder for the reports and posterior files (default reports)")
    parser.add_argument("--draws", type=int, default=DEMO_DRAWS, help=f"draws per chain (default {DEMO_DRAWS})")
    parser.add_argument("--warmup", type=int, default=500, help="warmup steps per chain (default 500)")


def run(args: argparse.Namespace) -> int:
    return run_demo(args.out, draws=args.draws, warmup=args.warmup)
