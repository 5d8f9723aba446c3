"""``bayesmoe laws``: the laws, their formulas, parameters, priors, columns and published sets."""
from __future__ import annotations

import argparse

NAME = "laws"
HELP = "list the scaling laws with formulas, parameters, priors and published coefficient sets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from ..laws import all_laws
    from .output import print_json

    laws = all_laws()
    if args.json:
        print_json({"laws": {name: law.describe() for name, law in laws.items()}})
        return 0
    for name, law in laws.items():
        info = law.describe()
        print(f"{name}: {info['title']}")
        print(f"  {info['formula']}")
        print(f"  source: {info['citation']}")
        print(f"  counts: {info['n_counts']}")
        print(f"  needs columns: {', '.join(info['required_columns'])}")
        print("  default priors: " + "; ".join(info["priors"].values()))
        if info["constants"]:
            print("  fixed: " + ", ".join(f"{k} = {v:g}" for k, v in info["constants"].items()))
        for set_name, entry in info["coefficient_sets"].items():
            values = ", ".join(f"{k} {v:g}" for k, v in entry["values"].items())
            print(f"  {set_name}: {values}  [{entry['source']}]")
        if info["notes"]:
            print(f"  note: {info['notes']}")
        print()
    return 0
