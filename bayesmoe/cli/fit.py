"""``bayesmoe fit``: fit a law to a runs table and write the posterior to a netCDF file."""
from __future__ import annotations

import argparse

NAME = "fit"
HELP = "fit a law to a runs table with NUTS and write the posterior file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", metavar="RUNS", help="runs table (CSV or Parquet, docs/runs-table.md)")
    parser.add_argument("--law", required=True, help="law id (see `bayesmoe laws`)")
    parser.add_argument("--out", required=True, metavar="FIT", help="posterior file to write (netCDF)")
    parser.add_argument("--group", metavar="COLUMN",
                        help="pool the level terms across the groups in COLUMN (A+B: each combination of A and B)")
    parser.add_argument(
        "--pool", nargs="+", default=[], metavar="PARAM", help="also pool these parameters (with --group)"
    )
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--target-accept",
        type=float,
        default=0.95,
        help="NUTS target acceptance probability in (0, 1); raise it (e.g. 0.99) if a fit reports divergences",
    )
    parser.add_argument(
        "--prior", metavar="SET", help="centre priors on a published set, e.g. chinchilla:besiroglu2024"
    )
    parser.add_argument("--likelihood", choices=["student_t", "normal"], default="student_t")
    parser.add_argument("--exclude-top-loss", type=int, default=0, metavar="K", help="drop the K highest-loss runs")
    parser.add_argument("--holdout-top-compute", type=int, default=0, metavar="K",
                        help="leave the K largest-compute runs out of the fit and report how well they are predicted")
    parser.add_argument("--where", metavar="EXPR", help='keep only runs matching a pandas query, e.g. "top_k == 1"')
    parser.add_argument(
        "--method",
        choices=["nuts", "laplace"],
        default="nuts",
        help="nuts (default), or laplace: a fast Gaussian approximation at the mode, for interactive use",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--prior-predictive", action="store_true",
                        help="also show what the priors predict for these runs (share of loss in 0.5-15 nats)")


def run(args: argparse.Namespace) -> int:
    import warnings
    from pathlib import Path

    from ..errors import BayesMoeError
    from ..inference import FitWarning
    from .summary import print_summary

    out = Path(args.out)
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise BayesMoeError(f"--out '{out}': folder '{out.parent}' does not exist")
    with warnings.catch_warnings():  # the summary below prints the diagnostic warnings once
        warnings.simplefilter("ignore", FitWarning)
        result = _fit(args)
    result.save(out)
    print_summary(result, as_json=args.json, prior_predictive=args.prior_predictive)
    return 0


def _fit(args):
    from ..inference import fit

    return fit(
        args.runs,
        args.law,
        group=args.group,
        pool=args.pool,
        prior=args.prior,
        likelihood=args.likelihood,
        chains=args.chains,
        warmup=args.warmup,
        draws=args.draws,
        seed=args.seed,
        target_accept=args.target_accept,
        where=args.where,
        exclude_top_loss=args.exclude_top_loss,
        holdout_top_compute=args.holdout_top_compute,
        method=args.method,
    )
