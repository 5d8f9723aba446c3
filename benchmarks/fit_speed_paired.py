"""Fit-speed regression check: the same fits timed under two commits on one machine, in one session.

Ratios against the papers' baseline (``fit_speed.py``) move with the machine from day to day; a regression
check needs the old and the new code timed side by side. This script has two steps:

    python benchmarks/fit_speed_paired.py export --tables /tmp/fsp          # the three runs tables, as CSV
    git worktree add /tmp/old <old-commit>
    PYTHONPATH=/tmp/old python benchmarks/fit_speed_paired.py time --tables /tmp/fsp --label old
    PYTHONPATH=.        python benchmarks/fit_speed_paired.py time --tables /tmp/fsp --label new
    (repeat the two ``time`` lines, alternating, to average out load)

``export`` writes ``fit_speed.runs_table(law)`` for chinchilla, granularity and joint. ``time`` fits each
table three times in one process with ``bayesmoe.fit`` in default settings and prints one JSON line of wall
times (s); the second and third fits are warm (compiled programs cached). Compare the medians of the warm
fits. It uses only ``bayesmoe.fit(path, law=...)``, which every version has.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

LAWS = ("chinchilla", "granularity", "joint")


def export(tables: Path) -> None:
    import fit_speed  # this directory's benchmark: the runs tables it times

    tables.mkdir(parents=True, exist_ok=True)
    for law in LAWS:
        fit_speed.runs_table(law).to_csv(tables / f"{law}.csv", index=False)


def time_fits(tables: Path, label: str, repeats: int = 3) -> dict:
    import bayesmoe

    if hasattr(bayesmoe, "configure"):
        bayesmoe.configure()
    warnings.simplefilter("ignore")
    out: dict = {"label": label}
    for law in LAWS:
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            bayesmoe.fit(str(tables / f"{law}.csv"), law=law, progress_bar=False)
            seconds.append(time.perf_counter() - start)
        out[law] = seconds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("export", "time"))
    parser.add_argument("--tables", type=Path, required=True, help="folder of the exported runs tables")
    parser.add_argument("--label", default="this checkout", help="name of the code being timed")
    args = parser.parse_args()
    if args.step == "export":
        export(args.tables)
    else:
        print(json.dumps(time_fits(args.tables, args.label)), flush=True)


if __name__ == "__main__":
    main()
