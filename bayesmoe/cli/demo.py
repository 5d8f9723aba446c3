"""``bayesmoe demo``: fit the shipped runs, print optimum bands, write reports (see :mod:`bayesmoe.demo`)."""
from ..demo import DEMO_DRAWS, run_demo

NAME = "demo"
HELP = "fit the shipped runs (our CPU sweep, Clark et al. 2022), print optimum bands, write reports"
ORDER = 90


def add_arguments(parser):
    parser.add_argument("--out", default="reports", help="folder for the reports and posterior files (default reports)")
    parser.add_argument("--draws", type=int, default=DEMO_DRAWS, help=f"draws per chain (default {DEMO_DRAWS})")
    parser.add_argument("--warmup", type=int, default=500, help="warmup steps per chain (default 500)")


def run(args):
    return run_demo(args.out, draws=args.draws, warmup=args.warmup)
