"""``bayesmoe datasets``: the real runs tables shipped with bayesmoe, with source and licence."""
from __future__ import annotations

import argparse

NAME = "datasets"
HELP = "list the real runs tables shipped with bayesmoe (source, licence), or write one out as CSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--export", nargs=2, metavar=("NAME", "CSV"), help="write dataset NAME to the file CSV")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from ..errors import BayesMoeError
    from ..runs.datasets import attribution, list_datasets, load
    from .output import print_json

    if args.export:
        name, out = args.export
        frame = load(name)
        target = Path(out)
        if not (target.parent if str(target.parent) else Path(".")).is_dir():
            raise BayesMoeError(f"--export '{out}': folder '{target.parent}' does not exist")
        frame.to_csv(target, index=False)
        target.with_suffix(".md").write_text(attribution(name))
        print(f"wrote {len(frame)} runs to {target} (attribution in {target.with_suffix('.md')})")
        return 0
    infos = list_datasets()
    if args.json:
        print_json({"datasets": {name: asdict(info) for name, info in infos.items()}})
        return 0
    for name, info in infos.items():
        print(f"{name}: {info.title}")
        print(f"  runs: {info.n_runs}; {info.groups}")
        print(f"  source: {info.source}")
        print(f"  licence: {info.licence}")
        print(f"  laws: {info.laws}")
        print(f"  load: bayesmoe.datasets.load({name!r})")
        print()
    return 0
