"""``bayesmoe optimum``: bands of the optimal configuration per budget, with recommendations.

One FIT, several FITs (stacking-weighted mixture of their bands, weights from PSIS-LOO stacking), or a
published coefficient set (``--law LAW --coefficients SET``: one draw, q05 = q50 = q95).
"""
from __future__ import annotations

import argparse

NAME = "optimum"
HELP = "optimal configuration (with posterior bands) at compute budgets, plus recommendations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "fits", nargs="*", metavar="FIT", help="posterior file(s); several give a stacking-weighted mixture"
    )
    parser.add_argument("--law", help="law id, with --coefficients (instead of FIT)")
    parser.add_argument(
        "--coefficients", metavar="SET", help="published coefficient set, e.g. granularity:krajewski2024"
    )
    parser.add_argument("--compute", nargs="+", type=float, required=True, metavar="C", help="training-FLOP budgets")
    parser.add_argument("--objective", default="compute", choices=["compute", "memory", "inference"])
    parser.add_argument(
        "--memory", type=float, metavar="BYTES", help="memory budget in bytes (weights + KV cache, bf16)"
    )
    parser.add_argument(
        "--inference-tokens",
        type=float,
        metavar="D",
        help="tokens served over the model's life (--objective inference)",
    )
    parser.add_argument(
        "--kv-tokens", type=float, metavar="T", help="tokens of KV cache counted in --memory (joint law; default 0)"
    )
    parser.add_argument("--d-model", type=float, nargs="+", metavar="D", help="hidden sizes to assess (holistic law)")
    parser.add_argument(
        "--experts-max", type=float, metavar="E", help="largest expert count considered (joint law; default 64)"
    )
    parser.add_argument(
        "--granularity-max",
        type=float,
        metavar="G",
        help="largest granularity considered (granularity law; default 256)",
    )
    parser.add_argument("--expansion", type=float, metavar="E", help="expansion rate (granularity law; default 64)")
    parser.add_argument(
        "--epsilon", type=float, default=0.005, help="relative loss tolerance of 'near-optimal' (default 0.005)"
    )
    parser.add_argument("--prob", type=float, default=0.9, help="central interval probability (default 0.9)")
    parser.add_argument("--group", help="group of a hierarchical fit (default: population)")
    parser.add_argument("--no-recommend", action="store_true", help="skip the recommendations")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


_OPTIONS = {"memory": "memory", "inference_tokens": "inference_tokens", "kv_tokens": "kv_tokens", "d_model": "d_model",
            "experts_max": "experts_max", "granularity_max": "granularity_max", "expansion": "expansion"}


def run(args: argparse.Namespace) -> int:
    from ..decide.optimum import PointPosterior, mixture, optimum
    from ..decide.recommend import recommend
    from ..errors import BayesMoeError
    from ..inference import load_fit
    from .output import print_json

    if not 0 < args.prob < 1:
        raise BayesMoeError(f"--prob must be between 0 and 1, got {args.prob}")
    if bool(args.fits) == bool(args.coefficients):
        raise BayesMoeError("give either FIT [FIT ...] or --law LAW --coefficients SET")
    options = {key: getattr(args, attr) for attr, key in _OPTIONS.items() if getattr(args, attr) is not None}
    weights = None
    if args.coefficients:
        law = args.law or args.coefficients.split(":")[0]
        posteriors = [PointPosterior.from_set(law, args.coefficients)]
    else:
        if args.law:
            raise BayesMoeError("--law goes with --coefficients; a FIT already names its law")
        posteriors = [load_fit(path) for path in args.fits]
    results = [optimum(p, args.compute, objective=args.objective, group=args.group, **options) for p in posteriors]
    if len(posteriors) > 1:
        from ..decide.compare import stacking_weights

        weights = stacking_weights(posteriors)
        result = mixture(results, weights)
    else:
        result = results[0]
    out = {"law": result.law, "prob": args.prob, "objective": args.objective, "budgets": result.quantiles(args.prob)}
    if args.coefficients:
        out["coefficients"] = posteriors[0].name
    if weights is not None:
        out["weights"] = {str(p.path): float(w) for p, w in zip(posteriors, weights)}
    if not args.no_recommend and len(posteriors) == 1:
        recs = recommend(posteriors[0], args.compute, objective=args.objective, group=args.group, epsilon=args.epsilon,
                         prob=args.prob, result=result, **options)
        if recs is not None:
            out["recommendations"] = recs
    if args.json:
        print_json(out)
        return 0
    _print_text(out)
    return 0


def _print_text(out):
    print(f"law {out['law']}, objective {out['objective']}, central {out['prob']:.0%} bands")
    if "weights" in out:
        print("stacking weights: " + ", ".join(f"{k} {v:.3f}" for k, v in out["weights"].items()))
    recs = out.get("recommendations") or [None] * len(out["budgets"])
    for budget, rec in zip(out["budgets"], recs):
        print(f"\ncompute {budget['compute']:.3g} FLOPs")
        for name, q in budget["optimal"].items():
            if name == "d_model_near_optimal":
                print(f"  {name:<22} lo {_fmt(q['lo'])} | hi {_fmt(q['hi'])}")
            elif name == "p_near_optimal_d":
                print(f"  {name:<22} " + ", ".join(f"d={d}: {p:.2f}" for d, p in q.items()))
            else:
                print(f"  {name:<22} {_fmt(q)}")
        if rec and rec.get("bayes"):
            b = rec["bayes"]
            keys = [k for k in b if k not in ("expected_loss", "expected_regret", "p_near_optimal")]
            print("  recommended: " + ", ".join(f"{k} {b[k]:.4g}" for k in keys)
                  + f" (P within {rec['epsilon']:.1%} of optimal: {b['p_near_optimal']:.2f})")
            for rule, s in rec["snapped"].items():
                print(
                    f"  snapped ({rule}): d_model {s['d_model']:.0f}, expected regret {s['expected_regret']:.4g} nats, "
                    f"P near-optimal {s['p_near_optimal']:.2f}"
                )
            m = rec["moe_vs_dense"]
            print(f"  MoE vs dense: P(MoE better) {m['p_moe_better']:.2f}; dense needs "
                  f"{_fmt(m['compute_multiplier'])} x the compute to match")


def _fmt(q):
    return "  ".join(f"{k} {v:.4g}" if v is not None and v == v else f"{k} -" for k, v in q.items())
