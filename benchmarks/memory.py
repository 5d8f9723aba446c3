"""Peak memory of a fit of 1,000 runs (issue 7, item 6; target < 2 GB peak RSS).

Simulates 1,000 runs of ``--law`` (default chinchilla) from its published set with 1% noise, fits them
with default settings in this process and prints the peak resident set size (``ru_maxrss``) before
and after the fit.

    python benchmarks/memory.py [--law chinchilla] [--runs 1000]
"""
from __future__ import annotations

import argparse
import resource
import time

import bayesmoe
from bayesmoe.model.simulate import simulate_runs

bayesmoe.configure()  # float64 and the compilation cache, as the bayesmoe command sets them

SETS = {"chinchilla": "besiroglu2024", "granularity": "krajewski2024", "joint": "ludziejewski2025"}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--law", default="chinchilla")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--method", default="nuts")
    args = parser.parse_args(argv)
    values = bayesmoe.get_law(args.law).coefficient_set(SETS[args.law]).values
    runs = simulate_runs(args.law, values, args.runs, noise=0.01, seed=0)
    before = peak_mib()
    start = time.perf_counter()
    result = bayesmoe.fit(runs, args.law, method=args.method, progress_bar=False)
    seconds = time.perf_counter() - start
    after = peak_mib()
    print(f"law {args.law}  runs {args.runs}  method {args.method}  fit {seconds:.1f} s  "
          f"peak RSS before fit {before:.0f} MiB, after {after:.0f} MiB (target < 2048)  "
          f"min bulk ESS {result.summary()['ess_bulk'].min():.0f}")


if __name__ == "__main__":
    main()
