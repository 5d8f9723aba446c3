"""``bayesmoe summary``: posterior table and diagnostics of a fit file."""
from __future__ import annotations

import argparse

from ..inference import Fit

NAME = "summary"
HELP = "posterior summary and diagnostics (R-hat, ESS, divergences) of a fit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fit", metavar="FIT", help="posterior file written by `bayesmoe fit`")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def summary_dict(fit: Fit) -> dict:
    """``summary --json`` object (docs/cli.md) (plus priors, warnings, timing and, with held-out runs, ``holdout``)."""
    from ..decide.holdout import check

    table = fit.summary()
    info = {
        "law": fit.law.name,
        "n_runs": fit.meta["n_runs"],
        "draws": fit.n_draws,
        "chains": fit.chains,
        "divergences": fit.divergences,
        "parameters": {name: row.to_dict() for name, row in table.iterrows()},
        "priors": fit.meta["prior_text"],
        "groups": list(fit.groups),
        "warnings": fit.problems(),
        "sampling_seconds": fit.meta.get("sampling_seconds"),
        "data_hash": fit.meta["data_hash"],
    }
    holdout = check(fit)
    if holdout is not None:
        info["holdout"] = holdout
    return info


def print_summary(fit: Fit, as_json: bool, prior_predictive: bool = False) -> None:
    """Print the summary (with ``prior_predictive``, also what the priors predict for the runs)."""
    from ..inference.draws import prior_predictive_summary
    from .output import print_json, warn

    info = summary_dict(fit)
    if prior_predictive:
        info["prior_predictive"] = prior_predictive_summary(fit.idata)
    if as_json:
        print_json(info)
        return
    print(
        f"law {info['law']}: {info['n_runs']} runs, {info['chains']} chains x {info['draws'] // info['chains']} draws, "
        f"{info['divergences']} divergences"
    )
    table = fit.summary()
    print(table.to_string(float_format=lambda v: f"{v:.5g}"))
    if "holdout" in info:
        from ..decide.holdout import describe

        print(describe(info["holdout"]))
    if prior_predictive:
        p = info["prior_predictive"]
        print(f"prior predictive at these runs: {p['share_in_range']:.1%} of the loss in [{p['range'][0]:g}, "
              f"{p['range'][1]:g}] nats; 90% in [{p['q05']:.3g}, {p['q95']:.3g}], median {p['q50']:.3g} "
              f"(observed {p['observed_min']:.3g}-{p['observed_max']:.3g})")
    for message in info["warnings"]:
        warn(message)


def run(args: argparse.Namespace) -> int:
    from ..inference import load_fit

    print_summary(load_fit(args.fit), as_json=args.json)
    return 0
