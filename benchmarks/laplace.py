"""Laplace vs NUTS (issue 7, item 2): speed-up, and how far the Laplace 90% intervals are from NUTS's.

Both methods fit the same data in the same process (Epoch Chinchilla data, 5 highest-loss points
dropped; ``--law granularity|joint`` uses 200 simulated runs as in ``fit_speed.py``). Each is timed
in a fresh process-like state only for the first repeat; later repeats reuse compiled code in memory,
so both the first (compile included) and the median of the rest are printed. Interval distance per
parameter: |q05_laplace - q05_nuts| and |q95_laplace - q95_nuts| as a fraction of the NUTS 90% width.

    python benchmarks/laplace.py [--law chinchilla] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from fit_speed import runs_table

import bayesmoe

bayesmoe.configure()  # float64 and the compilation cache, as the bayesmoe command sets them


def timed_fit(runs: pd.DataFrame, law: str, method: str) -> tuple[float, bayesmoe.Fit]:
    start = time.perf_counter()
    result = bayesmoe.fit(runs, law, method=method, progress_bar=False)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--law", default="chinchilla")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    runs = runs_table(args.law)
    times = {"nuts": [], "laplace": []}
    fits = {}
    for _ in range(args.repeats):
        for method in ("laplace", "nuts"):
            seconds, fits[method] = timed_fit(runs, args.law, method)
            times[method].append(seconds)
    for method, values in times.items():
        rest = np.median(values[1:]) if len(values) > 1 else float("nan")
        print(f"{method:8s} first (compile included) {values[0]:7.2f} s   median of later repeats {rest:7.2f} s")
    print(f"speed-up (NUTS / Laplace): first {times['nuts'][0] / times['laplace'][0]:.1f}x, "
          f"later {np.median(times['nuts'][1:]) / np.median(times['laplace'][1:]):.1f}x" if args.repeats > 1 else "")
    nuts, lap = fits["nuts"].summary(), fits["laplace"].summary()
    width = nuts["q95"] - nuts["q05"]
    table = pd.DataFrame(
        {
            "nuts_q05": nuts["q05"],
            "nuts_q95": nuts["q95"],
            "laplace_q05": lap["q05"],
            "laplace_q95": lap["q95"],
            "lo_err_frac": (lap["q05"] - nuts["q05"]).abs() / width,
            "hi_err_frac": (lap["q95"] - nuts["q95"]).abs() / width,
            "width_ratio": (lap["q95"] - lap["q05"]) / width,
        }
    )
    pd.set_option("display.width", 200)
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"worst endpoint error: {table[['lo_err_frac', 'hi_err_frac']].max().max():.3f} of the NUTS 90% width")


if __name__ == "__main__":
    main()
