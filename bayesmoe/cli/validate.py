"""``bayesmoe validate``: forward-chaining validation of a fit, and the model-discrepancy term it learns."""
from __future__ import annotations

import argparse

NAME = "validate"
HELP = "refit on smaller runs, predict the larger ones, learn how the law's error grows past the data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fit", metavar="FIT", help="posterior file written by `bayesmoe fit` (updated in place)")
    parser.add_argument("--steps", type=int, default=3, help="top scale levels to predict, one refit each (default 3)")
    parser.add_argument("--ahead", type=int, default=2,
                        help="levels past the data each refit predicts (default 2); more reach longer distances")
    parser.add_argument("--prob", type=float, default=0.9, help="central interval probability (default 0.9)")
    parser.add_argument("--prior-scale", choices=("fixed", "learned"), default="fixed",
                        help="the discrepancy term's prior scale: fixed HalfNormal(0.02) (default, conservative) or "
                             "learned from the chaining errors (a hierarchical prior; better centred, narrower)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-save", action="store_true", help="report only; leave FIT unchanged")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..decide.validate import calibration, validate
    from ..errors import BayesMoeError
    from ..inference import load_fit
    from .output import print_json, warn

    if not 0 < args.prob < 1:
        raise BayesMoeError(f"--prob must be between 0 and 1, got {args.prob}")
    fitted = load_fit(args.fit)
    result = validate(fitted, steps=args.steps, prob=args.prob, seed=args.seed, ahead=args.ahead,
                      prior_scale=args.prior_scale,
                      log=None if args.json else lambda line: print(line, file=sys.stderr, flush=True))
    for refit in result.refits:
        for message in refit["warnings"]:
            warn(f"refit on {refit['n_train']} runs: {message}")
    heldout = calibration(fitted, prob=args.prob, seed=args.seed)
    if result.discrepancy is not None and not args.no_save:
        fitted.save(args.fit)
    term = result.discrepancy
    if args.json:
        print_json({
            "law": fitted.law.name, "prob": args.prob, "scale": result.scale_column,
            "discrepancy": None if term is None else term.as_meta(),
            "ahead": result.summary().reset_index().to_dict(orient="records"),
            "errors": result.errors.to_dict(orient="records"),
            "refits": result.refits, "heldout": heldout, "saved": term is not None and not args.no_save,
        })
        return 0
    print(f"forward chaining by {result.scale_column}: {len(result.refits)} refits, "
          f"{len(result.errors)} predicted runs")
    print(result.summary().to_string(float_format=lambda v: f"{v:.4g}"))
    if term is None:
        print("no errors to learn a discrepancy term from")
        return 0
    print(f"discrepancy on log loss: {term.formula()} past the fitted runs (learned from {term.n_errors} errors "
          f"at distances up to {term.max_distance:.2f})")
    if heldout is not None:
        for name in ("law_only", "with_discrepancy"):
            h = heldout[name]
            inside = round(h["coverage"] * heldout["n_runs"])
            print(f"held-out runs ({heldout['n_runs']}), {name.replace('_', ' ')}: {args.prob:.0%} coverage "
                  f"{h['coverage']:.0%} ({inside} of {heldout['n_runs']}), median |rel error| "
                  f"{h['median_abs_rel_error']:.2%}, R^2 {h['r2']:.3f}")
            count = h["count"]
            print(f"  its joint predictive expects {count['range'][0]}-{count['range'][1]} of {count['n_runs']} "
                  f"covered (all of them in {count['p_all']:.0%} of draws): {inside} is "
                  + ("consistent with it" if count["consistent"] else "not consistent with it"))
    print(f"saved the term in {args.fit}" if not args.no_save else "not saved (--no-save)")
    return 0
