"""Clark's 1.3B split: choose the smallest model size the law is fitted on by forward chaining (issue 20).

Laws with an irreducible loss fitted from 17M up carry the bending of the small models' curve past 368M and
over-predict Clark's 1.3B runs (RESULTS.md, "why both goals are still missed"). Scaling-law fits often leave the
smallest models out; here the cut is chosen from the fitted runs alone. For each lower cut on ``n_active``, the
clark_config fit (``routing_irreducible`` pooled by router and routing configuration, 1000 warmup steps) is
forward-chained (3 refits, one and two levels ahead). Every cut leaves the refits' levels (132M and up) and so
the chained predictions the same, so their summed law-only log scores compare like with like; the cut with
the highest is the choice. The held-out 1.3B runs are scored for every cut (R^2, 90% coverage law-only and
with the discrepancy term, median |relative error|), but only the chosen cut's figures are the result.

    python benchmarks/clark_fit_range.py                         # three cuts, ~15 min on 2 cores
    python benchmarks/clark_fit_range.py --cuts 0 2.5e7
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import bayesmoe
from bayesmoe.decide.compare import log_score
from bayesmoe.decide.validate import calibration, validate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import CASES, CONFIGURATION, load_case, split, write_json  # noqa: E402  (the calibration cases)

CASE = CASES["clark"] | {"law": "routing_irreducible", "group": CONFIGURATION}
#: Lower cuts on n_active: none; without the 17M level; without 17M-52M (the last keeps 57M and up).
DEFAULT_CUTS = (0.0, 2.5e7, 5.5e7)


def run_cut(cut: float) -> dict:
    frame = load_case(CASE, CASE["law"])
    train, parts = split(CASE, frame, two_step=False)
    train = train[train["n_active"] >= cut]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = bayesmoe.fit(train, law=CASE["law"], group=CASE["group"], progress_bar=False, warmup=1000)
        result = validate(fitted, steps=3, score=log_score)
    errors = result.errors
    return {"cut": cut, "n_train": len(train), "n_chained": len(errors),
            "chained_runs": sorted(errors["run_id"].astype(str)),
            "elpd_chaining": float(errors["score"].sum()),
            "refit_max_scales": [r["max_scale"] for r in result.refits],
            "heldout": calibration(fitted, parts["top"]),
            "fit_warnings": sorted({str(w.message) for w in caught if w.category.__name__ == "FitWarning"}),
            "seconds": round(time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", nargs="+", type=float, default=list(DEFAULT_CUTS))
    parser.add_argument("--out", default="benchmarks/clark_fit_range_results.json")
    args = parser.parse_args()
    bayesmoe.configure()
    records = []
    for cut in args.cuts:
        records.append(run_cut(cut))
        print(json.dumps({k: v for k, v in records[-1].items() if k != "chained_runs"}), flush=True)
    same = all(r["chained_runs"] == records[0]["chained_runs"] for r in records)
    chosen = max(records, key=lambda r: r["elpd_chaining"]) if same else None
    output = {"same_chained_predictions": same, "chosen_cut": None if chosen is None else chosen["cut"],
              "records": records}
    write_json(args.out, output)
    print("| cut (n_active >=) | fitted runs | chaining elpd | R^2 | covered law-only / with the term | median error |")
    for r in records:
        h = r["heldout"]
        print(f"| {r['cut']:.2g}{' (chosen)' if r is chosen else ''} | {r['n_train']} | {r['elpd_chaining']:.1f} | "
              f"{h['law_only']['r2']:.3f} | {round(h['law_only']['coverage'] * h['n_runs'])} / "
              f"{round(h['with_discrepancy']['coverage'] * h['n_runs'])} of {h['n_runs']} | "
              f"{h['law_only']['median_abs_rel_error']:.2%} |")
    if not same:
        print("the cuts chained different runs: their scores do not compare")


if __name__ == "__main__":
    main()
