"""``bayesmoe demo``: the main job on the shipped data, as the commands a user would type.

1. Our own runs (``datasets/trainer_cpu_sweep.csv``, the trainer's CPU sweep): fit the granularity
   and joint laws on the runs below the top budget (its runs are held out), learn how each law's
   error grows past the data and check it on the held-out runs (``bayesmoe validate``), compare the laws
   by PSIS-LOO, print what to train (trainable configurations) at 10x and 30x the largest run, and write
   a report to ``<out>/demo/`` (with, from a checkout, the calibration table across datasets and the
   simulation-based calibration of the models).
2. Real MoE runs nobody here made (Clark et al. 2022, shipped): the routing law pooled by router, the
   best expert count by active size and where experts stop paying, and a report to ``<out>/clark2022/``.
3. Dense runs at scale (Gadre et al. 2024, shipped): the Chinchilla law pooled by training corpus, and
   what to train on C4 at 1e21-1e23 FLOPs (posterior in ``<out>/gadre2024/``).

Every fit runs in the fit's default NUTS settings (4 chains x 1000 draws), the settings in which each of
them passes its diagnostics (``tests/test_convergence.py``, ``make test-slow``), except that the granularity
fit of our sweep adapts for :data:`GRANULARITY_WARMUP` steps: with 500, its weakly identified ``alpha`` ends
at R-hat 1.011 on the 70 runs below the top budget (seed 0); with 1000, 1.0024 and ESS above 1000.

Each step is run through the command line (:func:`.runner.run` with :data:`.commands.COMMANDS`) and
echoed as the command it is, so the demo doubles as a tutorial. Posterior files go beside the reports (``*.nc``, not
committed).
"""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from ..decide.decisions import common_expansion, search_bounds
from ..decide.family import runs_expansions
from ..errors import BayesMoeError
from ..runs import load_runs
from .commands import COMMANDS
from .runner import run as run_argv

NAME = "demo"
HELP = "fit the shipped runs (our CPU sweep, Clark et al. 2022, Gadre et al. 2024), say what to train, write reports"
#: Draws per chain: the fit default, the setting in which the demo's fits pass their diagnostics.
DEMO_DRAWS = 1000
#: warmup of the granularity fit of our sweep (module docstring).
GRANULARITY_WARMUP = 1000
#: Multiples of our sweep's largest run at which the demo says what to train (within reach of the data).
OWN_MULTIPLES = (10, 30)
#: Budgets for Gadre et al.'s dense runs (theirs reach 6.8e21 FLOPs).
GADRE_BUDGETS = ("1e21", "1e22", "1e23")
#: The corpus (a fitted group of the pooled Gadre fit) the demo says what to train on.
GADRE_CORPUS = "c4_original"
#: Active sizes for Clark et al.'s routing law (their runs: 1.6e7-1.3e9 active parameters) and beyond.
CLARK_SIZES = ("1.5e7", "1.3e8", "1.3e9", "1e10", "1e11")
#: Simulation-based calibration results of a repository checkout (benchmarks/sbc.py writes them).
SBC_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "sbc"
#: The router whose best expert counts the demo prints (a fitted group of the pooled fit).
CLARK_ROUTER = "S-Base"


def own_decisions() -> tuple[list[str], list[str], list[str]]:
    """Command-line words for our sweep's decisions: budgets (10x and 30x its largest run); for the
    granularity law, ``--expansion`` with the most common rate where the MoE runs mix rates (the output
    states the mix) and ``--granularity-max`` at the runs' largest granularity; for the joint law,
    ``--experts-max`` at the runs' largest expert count (recommendations stay inside the architectures
    the runs support; without the bounds ``optimum`` searches further and warns)."""
    runs = load_runs("dataset:trainer_cpu_sweep")
    budgets = [f"{m * float(runs['compute'].max()):.2g}".replace("e+", "e") for m in OWN_MULTIPLES]
    rates = runs_expansions(runs)
    expansion = ["--expansion", f"{common_expansion(runs):g}"] if rates.size > 1 else []
    granularity = expansion + _bound_words(search_bounds(runs, "granularity"))
    return budgets, granularity, _bound_words(search_bounds(runs, "joint"))


def _bound_words(bounds: dict[str, float]) -> list[str]:
    """``{"experts_max": 32}`` -> ``["--experts-max", "32"]``."""
    return [word for name, value in bounds.items() for word in (f"--{name.replace('_', '-')}", f"{value:g}")]


def top_budget_runs() -> int:
    """How many runs of our sweep lie at its top isoFLOP budget (the ``budget`` column; runs are isoFLOP
    only up to whole steps, so compute alone cannot separate 1e12 from 2e12): the runs the demo's fits hold
    out and predict."""
    runs = load_runs("dataset:trainer_cpu_sweep")
    return int((runs["budget"] == runs["budget"].max()).sum())


#: Calibration results of a repository checkout (benchmarks/calibration.py writes them).
CALIBRATION_RESULTS = SBC_RESULTS.parent / "calibration_results.json"


def calibration_results() -> list[str]:
    """``--calibration <file>`` with the repository's calibration table across datasets
    (``benchmarks/calibration_results.json``) when this is a checkout that has it."""
    return ["--calibration", str(CALIBRATION_RESULTS)] if CALIBRATION_RESULTS.is_file() else []


def sbc_results() -> list[str]:
    """``--sbc <folder>`` with the repository's simulation-based calibration results
    (``benchmarks/sbc``, written by ``benchmarks/sbc.py``) when this is a checkout that has them."""
    folder = SBC_RESULTS
    return ["--sbc", str(folder)] if folder.is_dir() and any(folder.glob("*.jsonl")) else []


def steps(out: Path, draws: int, warmup: int) -> list[tuple[str, list[str]]]:
    """The demo as (title, bayesmoe argv) pairs."""
    own, clark = out / "demo", out / "clark2022"
    def settings(warmup_steps: int) -> list[str]:
        return ["--chains", "4", "--warmup", str(warmup_steps), "--draws", str(draws)]

    mcmc = settings(warmup)
    gran, joint, routing = str(own / "granularity.nc"), str(own / "joint.nc"), str(clark / "routing.nc")
    gadre = str(out / "gadre2024" / "chinchilla.nc")
    budgets, granularity_options, joint_options = own_decisions()
    heldout = top_budget_runs()
    return [
        ("Our own runs: the trainer's CPU sweep", ["datasets"]),
        (
            "Fit the granularity law (Krajewski et al. 2024)",
            ["fit", "dataset:trainer_cpu_sweep", "--law", "granularity", "--holdout-top-compute", str(heldout),
             "--out", gran, *settings(max(warmup, GRANULARITY_WARMUP))],
        ),
        (
            f"Fit the joint MoE law (Ludziejewski et al. 2025), holding out the {heldout} runs of the top budget",
            ["fit", "dataset:trainer_cpu_sweep", "--law", "joint", "--holdout-top-compute", str(heldout),
             "--out", joint, *mcmc],
        ),
        (
            "How the law's error grows past the data: forward chaining, the discrepancy term, the held-out runs",
            ["validate", joint],
        ),
        ("The same for the granularity law", ["validate", gran]),
        ("Which law predicts held-out runs better (PSIS-LOO, stacking weights)", ["compare", gran, joint]),
        (
            "What to train at 10x and 30x our largest run, which the fits held out (each budget's factor past the "
            "fitted runs is printed): joint law (trainable configurations, 90% bands)",
            ["optimum", joint, "--compute", *budgets, *joint_options],
        ),
        (
            "The same with the granularity law",
            ["optimum", gran, "--compute", *budgets, *granularity_options],
        ),
        ("Report on our runs (with the calibration across datasets and the simulation-based calibration of the models)",
         ["report", gran, joint, "--out", str(own), *calibration_results(), *sbc_results()]),
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
            f"Best expert count by active size for the {CLARK_ROUTER} router, and where experts stop paying",
            ["optimum", routing, "--n-active", *CLARK_SIZES, "--group", CLARK_ROUTER],
        ),
        ("Report on the Clark runs", ["report", routing, "--out", str(clark)]),
        (
            "Dense runs at scale: Gadre et al. 2024 (three training corpora), Chinchilla law pooled by corpus",
            ["fit", "dataset:gadre2024_overtraining", "--law", "chinchilla", "--group", "group", "--out", gadre,
             *mcmc],
        ),
        (
            "What to train on C4 at 1e21-1e23 FLOPs (trainable dense configurations)",
            ["optimum", gadre, "--compute", *GADRE_BUDGETS, "--group", GADRE_CORPUS],
        ),
    ]


def run_demo(out: str | Path = "reports", *, draws: int = DEMO_DRAWS, warmup: int = 500) -> int:
    """Run every step; stop at the first that fails (its error is already printed). Returns the exit status."""
    out = Path(out)
    for folder in (out / "demo", out / "clark2022", out / "gadre2024"):
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
