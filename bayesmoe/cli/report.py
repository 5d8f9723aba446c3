"""``bayesmoe report``: a self-contained HTML report (with PNG figures) of one or more fits."""
from __future__ import annotations

import argparse

NAME = "report"
HELP = "write an HTML report of one or more fits: data, diagnostics, fit, scaling picture, decisions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fits", nargs="+", metavar="FIT", help="posterior file(s) written by `bayesmoe fit`")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for report.html and the figures (created if missing)"
    )
    parser.add_argument("--title", help="page title")
    parser.add_argument(
        "--budgets",
        nargs="+",
        type=float,
        metavar="C",
        help="training-FLOP budgets of the recommendation table (default: the decade above the largest run and 3 more)",
    )
    parser.add_argument(
        "--sbc", metavar="DIR",
        help="add the simulation-based calibration section from DIR/<model>.jsonl (benchmarks/sbc.py writes them)",
    )
    parser.add_argument(
        "--calibration", metavar="FILE",
        help="add the calibration table across datasets from FILE (benchmarks/calibration.py writes "
             "benchmarks/calibration_results.json)",
    )
    parser.add_argument(
        "--json", action="store_true", help='print {"report": path, "figures": [paths]} as one JSON object'
    )


def run(args: argparse.Namespace) -> int:
    from ..report import report
    from .output import print_json

    path = report(args.fits, args.out, title=args.title, budgets=args.budgets, sbc=args.sbc,
                  calibration=args.calibration)
    figures = sorted(str(p) for p in path.parent.glob("*.png"))
    if args.json:
        print_json({"report": str(path), "figures": figures})
    else:
        print(f"wrote {path} ({len(figures)} figures beside it)")
    return 0
