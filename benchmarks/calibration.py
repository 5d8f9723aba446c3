"""Calibration of predictive intervals at the top of scale, with and without the discrepancy term.

For each dataset: fit the law on the runs below its top scale (default NUTS settings), learn the
model-discrepancy term by forward chaining within those runs (``bayesmoe validate``; refits on the
smaller runs predict the larger ones, :mod:`bayesmoe.decide.validate`), then predict the held-out top
runs, which neither the fit nor the chaining saw. Reported per dataset: 90% coverage, median
|relative error| and R^2 of the held-out losses, law-only and with the discrepancy term.

    python benchmarks/calibration.py                        # every case; results appended to --out
    python benchmarks/calibration.py --only epoch gadre     # some cases
    python benchmarks/calibration.py --table                # print the markdown table of --out

Cases (held-out top of scale):
    epoch   Hoffmann et al.'s runs as extracted by Epoch AI (../shared/data, skipped when absent), chinchilla,
            5 highest-loss runs dropped, the 24 largest-compute runs (10%) held out
    gadre   Gadre et al. 2024, chinchilla pooled by corpus, the 1.4B and 6.9B runs held out
    clark   Clark et al. 2022, routing pooled by router, the 28 runs at 1.3B held out
    sweep   our CPU sweep, joint law, the top compute budget held out
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import pandas as pd

import bayesmoe
from bayesmoe.decide.validate import calibration, validate
from bayesmoe.runs import load_runs

EPOCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "chinchilla-epoch" / "svg_extracted_data.csv"


def _top_budget(frame: pd.DataFrame) -> pd.Series:
    return frame["compute"] >= 0.5 * frame["compute"].max()


CASES = {
    "epoch": dict(runs=str(EPOCH), law="chinchilla", load={"exclude_top_loss": 5},
                  heldout=lambda f: f["compute"].rank(ascending=False, method="first") <= 24),
    "gadre": dict(runs="dataset:gadre2024_overtraining", law="chinchilla", group="group",
                  heldout=lambda f: f["n_active"] >= 1e9),
    "clark": dict(runs="dataset:clark2022_routing", law="routing", group="group",
                  heldout=lambda f: f["n_active"] >= 1.2e9),
    "sweep": dict(runs="dataset:trainer_cpu_sweep", law="joint", heldout=_top_budget),
}


def run_case(name: str, case: dict, steps: int) -> dict:
    frame = load_runs(case["runs"], law=case["law"], **case.get("load", {}))
    held = case["heldout"](frame).to_numpy()
    train, heldout = frame[~held], frame[held]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = bayesmoe.fit(train, law=case["law"], group=case.get("group"), progress_bar=False)
        fit_warnings = sorted({str(w.message) for w in caught if w.category.__name__ == "FitWarning"})
        result = validate(fitted, steps=steps)
    scores = calibration(fitted, heldout)
    term = result.discrepancy
    return {
        "case": name, "law": case["law"], "n_train": len(train), "n_heldout": len(heldout),
        "heldout_distance": scores.get("median_distance"), "law_only": scores["law_only"],
        "with_discrepancy": scores.get("with_discrepancy"), "discrepancy": None if term is None else term.as_meta(),
        "chaining": result.summary().reset_index().to_dict(orient="records"), "fit_warnings": fit_warnings,
        "refit_warnings": sum(len(r["warnings"]) for r in result.refits), "seconds": round(time.perf_counter() - start),
    }


def table(results: list[dict]) -> str:
    lines = ["| dataset (law) | fitted / held-out runs | held-out distance (ln) | discrepancy s0, s1 | "
             "90% coverage law-only / with | median abs rel error law-only / with | R^2 law-only / with |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lo, wd, d = r["law_only"], r["with_discrepancy"] or {}, r["discrepancy"] or {}
        lines.append(
            f"| {r['case']} ({r['law']}) | {r['n_train']} / {r['n_heldout']} | {r['heldout_distance'] or 0:.2f} | "
            f"{d.get('s0', 0):.4f}, {d.get('s1', 0):.4f} | "
            f"{lo['coverage']:.0%} / {wd.get('coverage', float('nan')):.0%} "
            f"| {lo['median_abs_rel_error']:.2%} / {wd.get('median_abs_rel_error', float('nan')):.2%} "
            f"| {lo['r2']:.3f} / {wd.get('r2', float('nan')):.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/calibration_results.json")
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = parser.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else []
    if not args.table:
        bayesmoe.configure()
        for name in args.only:
            if name == "epoch" and not EPOCH.exists():
                print(f"skip epoch: {EPOCH} is absent")
                continue
            record = run_case(name, CASES[name], args.steps)
            results = [r for r in results if r["case"] != name] + [record]
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1))
            tmp.replace(out)
            print(json.dumps(record), flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
