"""``bayesmoe optimum``: bands of the optimal configuration per budget, with recommendations.

One FIT, several FITs (a weighted mixture of their bands: weights from stacking on held-out top-compute log
scores when every fit held out the same runs, else PSIS-LOO stacking; the output says which), or a
published coefficient set (``--law LAW --coefficients SET``: one draw, q05 = q50 = q95).
"""

from __future__ import annotations

import argparse
import math

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
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--compute", nargs="+", type=float, metavar="C", help="training-FLOP budgets")
    target.add_argument(
        "--n-active",
        nargs="+",
        type=float,
        metavar="N",
        help="active sizes (routing law, fixed training length): best expert count per N",
    )
    parser.add_argument(
        "--family",
        choices=["runs", "paper"],
        help="architecture family of the trainable configurations: runs (inferred from the fitted runs; default "
        "when they have d_model and n_layers) or paper (the law's published architecture)",
    )
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
    parser.add_argument(
        "--expansion",
        type=float,
        metavar="E",
        help="expansion rate n_experts / granularity (granularity law; default: the fitted MoE runs' rate)",
    )
    parser.add_argument(
        "--epsilon", type=float, default=0.005, help="relative loss tolerance of 'near-optimal' (default 0.005)"
    )
    parser.add_argument("--prob", type=float, default=0.9, help="central interval probability (default 0.9)")
    parser.add_argument("--group", help="group of a hierarchical fit (default: population)")
    parser.add_argument("--no-recommend", action="store_true", help="skip the recommendations")
    parser.add_argument(
        "--no-discrepancy",
        action="store_true",
        help="leave the fit's model-discrepancy term out of the configurations' loss bands (law and noise only)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


_OPTIONS = {
    "memory": "memory",
    "inference_tokens": "inference_tokens",
    "kv_tokens": "kv_tokens",
    "d_model": "d_model",
    "experts_max": "experts_max",
    "granularity_max": "granularity_max",
    "expansion": "expansion",
}


def run(args: argparse.Namespace) -> int:
    from ..decide.decisions import decide, merge, resolve_expansion
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
    routing = [p.law.name == "routing" for p in posteriors]
    failed = _failed_diagnostics(posteriors)
    if args.n_active is not None:
        return _by_size(args, posteriors, routing, failed)
    if any(routing):
        raise BayesMoeError(
            "law 'routing' has no data term (every run trains on the same tokens), so a compute budget does not fix "
            "a configuration: ask --n-active N [N ...] for the best expert count per active size"
        )
    if len(posteriors) == 1:
        expansion, _ = resolve_expansion(posteriors[0], options.get("expansion"))
        if expansion is not None:
            options["expansion"] = expansion
    results = [optimum(p, args.compute, objective=args.objective, group=args.group, **options) for p in posteriors]
    if len(posteriors) > 1:
        from ..decide.compare import WEIGHTS_FROM, mixing_weights

        weights, weights_from = mixing_weights(posteriors)
        result = mixture(results, weights)
    else:
        result = results[0]
    out = {"law": result.law, "prob": args.prob, "objective": args.objective, "budgets": result.quantiles(args.prob)}
    if failed:
        out["fit_warnings"] = failed
    if args.coefficients:
        out["coefficients"] = posteriors[0].name
    if weights is not None:
        out["weights"] = {str(p.path): float(w) for p, w in zip(posteriors, weights)}
        out["weights_from"] = weights_from
        out["weights_method"] = WEIGHTS_FROM[weights_from]

    if not args.no_recommend and len(posteriors) == 1:
        recs = recommend(
            posteriors[0],
            args.compute,
            objective=args.objective,
            group=args.group,
            epsilon=args.epsilon,
            prob=args.prob,
            result=result,
            **options,
        )
        conventions, decisions = decide(
            posteriors[0],
            args.compute,
            family=args.family,
            group=args.group,
            expansion=args.expansion,
            objective=args.objective,
            options=options,
            prob=args.prob,
            epsilon=args.epsilon,
            discrepancy=not args.no_discrepancy,
        )
        out["conventions"] = conventions
        out["recommendations"] = [merge(rec, d) for rec, d in zip(recs or [None] * len(decisions), decisions)]
    if args.json:
        print_json(out)
        return 0
    _print_text(out)
    return 0


def _failed_diagnostics(posteriors: list) -> list[str]:
    """One line per fit whose sampler diagnostics failed (R-hat, ESS, divergences, tree depth): the
    numbers printed from it must say so (added to the JSON as ``fit_warnings`` only when there are any)."""
    out = []
    for posterior in posteriors:
        problems = posterior.problems() if hasattr(posterior, "problems") else []
        if problems:
            name = str(getattr(posterior, "path", None) or posterior.law.name)
            out.append(f"{name} failed its diagnostics, so these bands come from chains that may not have "
                       f"converged: {'; '.join(problems)}")
    return out


def _by_size(args: argparse.Namespace, posteriors: list, routing: list[bool], failed: list[str]) -> int:
    """``--n-active``: the routing law's best expert count per active size (SPEC §3)."""
    from ..decide.decisions import EXTRAPOLATION_WARN, parameters_note
    from ..decide.experts_by_size import experts_by_size
    from ..errors import BayesMoeError
    from .output import print_json

    if not all(routing) or len(posteriors) != 1:
        raise BayesMoeError(
            "--n-active N asks the routing law (fixed training length) for the best expert count; "
            "give one routing FIT or --law routing --coefficients SET, or use --compute C for laws with a data term"
        )
    posterior = posteriors[0]
    out = {
        "law": "routing",
        "prob": args.prob,
        **experts_by_size(posterior.draws(args.group), args.n_active, prob=args.prob),
        "conventions": {
            "n_counts": posterior.law.n_counts,
            "parameters": parameters_note(posterior, args.group),
            "tokens": "the law has no D term: every configuration trains on the fitted runs' token count",
            "discrepancy": _routing_discrepancy_note(posterior),
        },
    }
    if failed:
        out["fit_warnings"] = failed
    runs = getattr(posterior, "runs", None)
    largest = None if runs is None else float(runs["n_active"].max())
    top = max(out["candidates_n_experts"])
    for row in out["n_active"]:
        row["extrapolation"] = None if largest is None else row["n_active"] / largest
        row["warnings"] = []
        if row["extrapolation"] is not None and row["extrapolation"] > EXTRAPOLATION_WARN:
            row["warnings"].append(
                f"extrapolation: N = {row['n_active']:.3g} is {row['extrapolation']:.3g}x the largest "
                f"fitted active size, past {EXTRAPOLATION_WARN:g}x"
            )
        if row["best_n_experts"]["q95"] >= top:
            row["warnings"].append(
                f"best n_experts reaches the search's largest candidate ({top}"
                + (f"; the runs' largest: {runs['n_experts'].max():g}" if runs is not None and "n_experts" in runs
                   else "")
                + "): read it as 'at least' that many; the law's optimum may lie beyond, where no run was trained")
    crossover = out["crossover_n_active"]["q50"]
    out["crossover_extrapolation"] = None if largest is None or not math.isfinite(crossover) else crossover / largest
    out["crossover_warnings"] = []
    if out["crossover_extrapolation"] is not None and out["crossover_extrapolation"] > EXTRAPOLATION_WARN:
        out["crossover_warnings"].append(
            f"extrapolation: the crossover's median is {out['crossover_extrapolation']:.3g}x the largest fitted "
            f"active size, past {EXTRAPOLATION_WARN:g}x; it extrapolates the law's N x E interaction, not the runs")
    if args.json:
        print_json(out)
        return 0
    print(f"law routing, central {args.prob:.0%} bands; {out['conventions']['parameters']}")
    print(f"expert counts searched: {', '.join(map(str, out['candidates_n_experts']))}; "
          f"model discrepancy: {out['conventions']['discrepancy']}")
    for warning in failed:
        print(f"WARNING: {warning}")
    for row in out["n_active"]:
        print(
            f"\nN (active) {row['n_active']:.3g}: best n_experts {_fmt(row['best_n_experts'])}"
            + (f" ({row['extrapolation']:.3g}x the largest fitted N)" if row["extrapolation"] else "")
        )
        for warning in row["warnings"]:
            print(f"  WARNING: {warning}")
        print(
            f"  effective parameter multiplier {_fmt(row['effective_multiplier'])}; "
            f"P(experts help) {row['p_experts_help']:.2f}"
        )
        print(f"  loss {_fmt(row['loss'])} vs dense {_fmt(row['loss_dense'])}")
    factor = out["crossover_extrapolation"]
    print(
        f"\nexperts stop paying beyond N = {_fmt(out['crossover_n_active'])} "
        f"(P(a crossover exists) {out['p_crossover']:.2f}"
        + (f"; median {factor:.3g}x the largest fitted N)" if factor is not None else ")")
    )
    for warning in out["crossover_warnings"]:
        print(f"  WARNING: {warning}")
    return 0


def _routing_discrepancy_note(posterior) -> str:
    """Whether ``--n-active``'s loss bands carry the law's form error (they never do: say so, and why it matters)."""
    term = getattr(posterior, "discrepancy", None)
    if term is None:
        return "none learned for this fit (bayesmoe validate FIT learns one): the bands assume the law's form holds"
    return (f"not added to these loss bands (the fit's term, {term.formula(3)}, applies to `bayesmoe predict`): "
            "they assume the law's form holds")


def _print_text(out: dict) -> None:
    print(f"law {out['law']}, objective {out['objective']}, central {out['prob']:.0%} bands")
    for warning in out.get("fit_warnings", []):
        print(f"WARNING: {warning}")
    if "weights" in out:
        weights = ", ".join(f"{k} {v:.3f}" for k, v in out["weights"].items())
        print(f"mixing weights ({out['weights_method']}): {weights}")
    conv = out.get("conventions")
    fam = (conv or {}).get("family")
    if fam:
        print(
            f"family '{fam['name']}': d_model/n_layers {fam['aspect_ratio'][0]:g}-{fam['aspect_ratio'][1]:g} "
            f"(preferred {fam['preferred_aspect_ratio']:g}), head dim {fam['head_dim']}, vocab {fam['vocab_size']}, "
            f"seq_len {fam['seq_len'] or 'unknown'}, FFN {fam['ffn_mult']:g} d_model, "
            f"FLOPs {fam['flop_model'].split(':')[0]}"
        )
    if conv:
        print(f"N counts: {conv['n_counts']}; parameters: {conv['parameters']}")
        if "expansion_rate" in conv:
            print(f"expansion rate {conv['expansion_rate']['value']:g} ({conv['expansion_rate']['source']})")
        print(f"dense means: {conv['dense']}; model discrepancy: {conv['discrepancy']}")
        for note in conv["notes"]:
            print(f"note: {note}")
    recs = out.get("recommendations") or [None] * len(out["budgets"])
    for budget, rec in zip(out["budgets"], recs):
        print(
            f"\ncompute {budget['compute']:.3g} FLOPs"
            + (f" ({rec['extrapolation']:.3g}x the largest fitted run)" if rec and rec.get("extrapolation") else "")
        )
        for warning in (rec or {}).get("warnings", []):
            print(f"  WARNING: {warning}")
        if rec and "config" in rec:
            for key, label in (("config", "recommended"), ("dense_config", "best dense"), ("moe_config", "best MoE")):
                if key in rec and (key == "config" or rec[key] != rec["config"]):  # same candidate: same draws
                    print(f"  {label}: {_config(rec[key])}")
            if "moe_vs_dense" in rec:
                m = rec["moe_vs_dense"]
                p = m.get("p_moe_beats_dense")
                print(
                    "  P(best MoE run beats best dense run) "
                    + (f"{p:.2f}" if p is not None else f"- ({m['no_posterior']})")
                )
        if rec and "optimal_config_bands" in rec:
            b = rec["optimal_config_bands"]
            shown = ("n_layers", "d_model", "n_experts", "granularity", "ratio_total_active", "tokens")
            print("  each draw's own best, 90% of draws: " + "; ".join(f"{k} {_range(b[k])}" for k in shown))
        if rec and "heldout_check" in rec:
            h = rec["heldout_check"]
            print(f"  held-out check: {h['n_runs']} held-out run(s) at {h['distance']:.3g}x: median error "
                  f"{h['median_abs_error']:.3g} nats, largest {h['max_abs_error']:.3g} ({h['max_run_id']})")
        note = _continuous_mismatch(budget["optimal"], rec)
        if note:   # its sizes describe another architecture: printing them would invite acting on them
            print(f"  continuous optimum not shown: {note} (it stays in --json under 'optimal')")
            continue
        print("  continuous optimum (the law's published architecture, real-valued sizes; not trainable):")
        for name, q in budget["optimal"].items():
            if name not in _TEXT_QUANTITIES:
                continue
            if name == "d_model_near_optimal":
                print(f"    {name:<22} lo {_fmt(q['lo'])} | hi {_fmt(q['hi'])}")
            elif name == "p_near_optimal_d":
                print(f"    {name:<22} " + ", ".join(f"d={d}: {p:.2f}" for d, p in q.items()))
            else:
                print(f"    {name:<22} {_fmt(q)}")


def _continuous_mismatch(optimal: dict, rec: dict | None) -> str | None:
    """A note when the continuous optimum's n_active differs from the recommended run's by more than 10x:
    the paper's architecture does not describe the runs' family, so its real-valued sizes mean little here."""
    from ..decide.decisions import continuous_mismatch

    if not rec or "config" not in rec or "n_active" not in optimal:
        return None
    median = sorted(optimal["n_active"].values())[1]  # the quantile keys follow --prob; q50 is the middle one
    ratio = continuous_mismatch(median, rec["config"]["n_active"])
    if ratio is None:
        return None
    return (f"its n_active is {ratio:.2g}x the recommended run's: the law's published architecture does not fit "
            "this family; act on the recommended configuration")


#: Continuous-optimum quantities in the text output (``--json`` has every one).
_TEXT_QUANTITIES = (
    "n_active",
    "n_total",
    "tokens",
    "tokens_per_param",
    "granularity",
    "n_experts",
    "top_k",
    "activated_experts",
    "shared_ratio",
    "d_model",
    "flops_per_token",
    "ratio_flops_active",
    "ratio_total_active",
    "effective_params",
    "loss",
    "d_model_near_optimal",
    "p_near_optimal_d",
)


def _config(c: dict) -> str:
    """One line: the trainable configuration, its tokens and predictive loss band."""
    moe = (
        f", {c['n_experts']} experts top-{c['top_k']} (G {c['granularity']}, expert width {c['d_expert']})"
        if c["n_experts"] > 1
        else ""
    )
    return (
        f"d_model {c['d_model']}, {c['n_layers']} layers, {c['n_heads']} heads{moe}, {c['tokens']:.3g} tokens; "
        f"N active {c['n_active']:.3g}, total {c['n_total']:.3g}; loss {_fmt(c['loss'])}; "
        f"expected regret {c['expected_regret']:.3g} nats"
    )


def _range(q: dict) -> str:
    """``lo-hi`` of a band (``lo`` alone when it is one value)."""
    lo, _, hi = q.values()
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g}-{hi:.3g}"


def _fmt(q: dict) -> str:
    return "  ".join(f"{k} {v:.4g}" if v is not None and v == v else f"{k} -" for k, v in q.items())
