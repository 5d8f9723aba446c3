"""``bayesmoe predict``: predictive loss intervals for runs (the ``loss`` column is not needed)."""
from __future__ import annotations

import argparse

NAME = "predict"
HELP = "predict the loss of runs (with intervals) from a fit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fit", metavar="FIT", help="posterior file written by `bayesmoe fit`")
    parser.add_argument("runs", metavar="RUNS", help="runs table; `loss` optional (compared when present)")
    parser.add_argument("--prob", type=float, default=0.9, help="central interval probability (default 0.9)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-discrepancy", action="store_true",
                        help="law-only intervals: leave out the model-discrepancy term learned by `bayesmoe validate`")
    parser.add_argument(
        "--effective-params",
        action="store_true",
        help="routing law: add each run's effective parameter count (the dense N with the same loss) with its interval",
    )


def run(args: argparse.Namespace) -> int:
    from ..inference import load_fit
    from .output import print_json, warn

    fit = load_fit(args.fit)
    table = fit.predict(args.runs, prob=args.prob, discrepancy=not args.no_discrepancy)
    qcols = [c for c in table.columns if c.startswith("q")]
    warnings = []
    if "past_term_reach" in table.columns and table["past_term_reach"].any():
        far = table[table["past_term_reach"]]
        warnings.append(f"{len(far)} of {len(table)} runs: "
                        + fit.discrepancy.reach_warning(far["distance"].max(), subject="the farthest"))
    table = table.drop(columns="past_term_reach", errors="ignore")
    epc = None
    if args.effective_params:
        from ..decide.optimum.routing import effective_params

        epc = effective_params(fit, args.runs, prob=args.prob)
    if args.json:
        runs = []
        for i, row in table.iterrows():
            entry = {"run_id": row["run_id"], "loss": {c: row[c] for c in qcols}}
            if "observed" in table.columns:
                entry["observed"] = row["observed"]
            if "distance" in table.columns:
                entry["distance"] = row["distance"]
            if epc is not None:
                entry["effective_params"] = {c: epc.at[i, c] for c in qcols}
            runs.append(entry)
        print_json({"law": fit.law.name, "prob": args.prob, "runs": runs, "warnings": warnings})
        return 0
    if epc is not None:
        table = table.join(epc[qcols].add_prefix("epc_"))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for message in warnings:
        warn(message)
    return 0
