"""``bayesmoe compare``: rank fits by PSIS-LOO with stacking weights (Pareto-k reported and warned).

``--weights chaining`` adds stacking weights from forward-chaining log scores (each fit refitted on the
smaller runs and scored on the next scale levels, :func:`bayesmoe.decide.compare.chaining_scores`).
"""
from __future__ import annotations

import argparse
import sys

NAME = "compare"
HELP = "compare fits of the same runs by PSIS-LOO (elpd, se, stacking weights, Pareto k)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fits", nargs="+", metavar="FIT", help="two or more posterior files fitted to the same runs")
    parser.add_argument("--weights", choices=("auto", "loo", "holdout", "chaining"), default="auto",
                        help="mixing weights: auto (held-out top-compute scores when every fit held out the same "
                             "runs, else loo), loo (PSIS-LOO stacking), holdout, or chaining (stacking on "
                             "forward-chaining log scores: refits each law on the smaller runs, slow)")
    parser.add_argument("--steps", type=int, default=3,
                        help="with --weights chaining: how many top scale levels are predicted (one refit each)")
    parser.add_argument("--seed", type=int, default=0, help="with --weights chaining: seed of the refits")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from ..decide.compare import WEIGHTS_FROM, compare
    from .output import print_json

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    models = compare(args.fits, weights=args.weights, steps=args.steps, seed=args.seed,
                     log=None if args.json else progress)
    used = models[0]["weights_from"]
    if args.json:
        print_json({"models": models, "weights_from": used, "weights_description": WEIGHTS_FROM[used]})
        return 0
    print(f"{'fit':<40} {'law':<12} {'elpd_loo':>10} {'se':>8} {'elpd_diff':>10} {'dse':>8} {'weight':>7} {'k_max':>6}")
    for m in models:
        print(f"{m['fit']:<40} {m['law']:<12} {m['elpd_loo']:>10.2f} {m['se']:>8.2f} {m['elpd_diff']:>10.2f} "
              f"{m['dse']:>8.2f} {m['weight']:>7.3f} {m['pareto_k_max']:>6.2f}")
    if "elpd_holdout" in models[0]:
        print("\nheld-out top-compute runs (what extrapolation needs): summed log score, stacking weight")
        for m in models:
            print(f"{m['fit']:<40} {m['elpd_holdout']:>10.2f} {m['holdout_weight']:>7.3f}")
    if "elpd_chaining" in models[0]:
        print("\nforward chaining (refits on the smaller runs, scored on the next levels): summed log score, "
              "stacking weight")
        for m in models:
            print(f"{m['fit']:<40} {m['elpd_chaining']:>10.2f} {m['chaining_weight']:>7.3f}")
    print(f"\nweight: PSIS-LOO stacking on the fitted runs; mixing weights used: {used} ({WEIGHTS_FROM[used]})")
    if used != "chaining":
        print("`bayesmoe optimum FIT FIT ...` mixes with the held-out weights when every fit held out the same runs "
              "(fit --holdout-top-compute K); `--weights chaining` scores each law past its own fitted runs")
    return 0
