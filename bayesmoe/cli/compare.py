"""``bayesmoe compare``: rank fits by PSIS-LOO with stacking weights (Pareto-k reported and warned)."""
from __future__ import annotations

import argparse

NAME = "compare"
HELP = "compare fits of the same runs by PSIS-LOO (elpd, se, stacking weights, Pareto k)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fits", nargs="+", metavar="FIT", help="two or more posterior files fitted to the same runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from ..decide.compare import compare
    from .output import print_json

    models = compare(args.fits)
    if args.json:
        print_json({"models": models})
        return 0
    print(f"{'fit':<40} {'law':<12} {'elpd_loo':>10} {'se':>8} {'elpd_diff':>10} {'dse':>8} {'weight':>7} {'k_max':>6}")
    for m in models:
        print(f"{m['fit']:<40} {m['law']:<12} {m['elpd_loo']:>10.2f} {m['se']:>8.2f} {m['elpd_diff']:>10.2f} "
              f"{m['dse']:>8.2f} {m['weight']:>7.3f} {m['pareto_k_max']:>6.2f}")
    if "elpd_holdout" in models[0]:
        print("\nheld-out top-compute runs (what extrapolation needs): summed log score, stacking weight")
        for m in models:
            print(f"{m['fit']:<40} {m['elpd_holdout']:>10.2f} {m['holdout_weight']:>7.3f}")
    print("\nweight: PSIS-LOO stacking on the fitted runs; `bayesmoe optimum FIT FIT ...` mixes with the held-out "
          "weights when every fit held out the same runs (fit --holdout-top-compute K)")
    return 0
