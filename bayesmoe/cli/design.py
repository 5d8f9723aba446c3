"""``bayesmoe design``: which runs to train next, ranked by expected narrowing of a target per FLOP."""
from __future__ import annotations

import argparse

NAME = "design"
HELP = "rank candidate runs by how much they would narrow the band of an optimal quantity, per FLOP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fit", metavar="FIT", help="posterior file written by `bayesmoe fit`")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--candidates", metavar="CANDIDATES", help="runs table without loss (CSV or Parquet); cost = compute"
    )
    source.add_argument("--propose", type=int, metavar="N", help="build N candidates from the law's isoFLOP geometry")
    parser.add_argument("--target", default="n_active", metavar="QUANTITY",
                        help="optimal quantity (docs/cli.md): n_active (default), tokens, loss, granularity, ...")
    parser.add_argument("--at-compute", type=float, metavar="C", help="budget (FLOPs) of the target optimum")
    parser.add_argument("--at-config", metavar="RUNS",
                        help="one-row runs table: with --target loss, the loss at that configuration")
    pick = parser.add_mutually_exclusive_group()
    pick.add_argument("--select", type=int, metavar="K", help="pick K runs that together narrow the target most")
    pick.add_argument(
        "--spend", type=float, metavar="FLOPS", help="pick runs by narrowing per FLOP within FLOPS in total"
    )
    parser.add_argument("--max-compute", type=float, metavar="FLOPS", help="with --propose: cost cap of one run")
    parser.add_argument("--objective", choices=["compute", "memory", "inference"], default="compute")
    parser.add_argument("--group", help="for hierarchical fits: the group whose optimum is the target")
    parser.add_argument("--outcomes", type=int, default=64, help="simulated outcomes per candidate (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-discrepancy", action="store_true",
                        help="a loss target without the law's form error learned by `bayesmoe validate` (law-only)")
    parser.add_argument(
        "--out", metavar="DESIGN", help="write the selected runs (a runs table without loss) to this CSV"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..decide.design import design
    from ..errors import BayesMoeError
    from ..inference import load_fit
    from .output import print_json, warn

    if args.out and not (Path(args.out).parent if str(Path(args.out).parent) else Path(".")).is_dir():
        raise BayesMoeError(f"--out '{args.out}': folder '{Path(args.out).parent}' does not exist")
    fit = load_fit(args.fit)
    result = design(fit, args.candidates, target=args.target, at_compute=args.at_compute, at_config=args.at_config,
                    select=args.select, spend=args.spend, propose=args.propose, max_compute=args.max_compute,
                    objective=args.objective, group=args.group, outcomes=args.outcomes, seed=args.seed,
                    discrepancy=not args.no_discrepancy)
    if args.out:
        result.selected_runs().to_csv(args.out, index=False)
    unreliable = result.table.loc[~result.table["reliable"], "run_id"].tolist()
    if unreliable:
        warn(f"{len(unreliable)} candidates have Pareto k > 0.7 (e.g. {', '.join(unreliable[:3])}): their expected "
             "reductions rest on few draws and are optimistic; refit after adding one to check")
    if args.json:
        print_json(result.to_dict())
        return 0
    cur = result.current
    print(f"law {result.law}: target {result.target} at {result.at_compute:.3g} FLOPs: q50 {cur['q50']:.4g} "
          f"[{cur['q05']:.4g}, {cur['q95']:.4g}], sd(log) {cur['sd_log']:.4f}")
    form = result.settings["discrepancy"]
    if form["used"]:
        print(f"the target includes the law's form error at ln {form['target_distance']:.2f} past the data "
              "(`bayesmoe validate`); a run past the data's edge shrinks it (target_distance); "
              "--no-discrepancy leaves it out")
    elif args.target == "loss":
        print(f"law-only target: {form['note']}")
    columns = ["rank", "run_id", "compute", "expected_sd_log", "expected_reduction", "reduction_per_flop",
               "expected_band_width", "pareto_k"] + (["target_distance"] if form["used"] else [])
    print(result.table[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"selected: {', '.join(result.selected) if result.selected else '(none)'}")
    if args.out:
        print(f"wrote {args.out}: train it with `python -m trainer sweep --plan {args.out} --out DIR`")
    return 0
