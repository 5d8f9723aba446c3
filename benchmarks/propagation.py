"""Propagation benchmark: optimum of 4,000 posterior draws over 100 budgets, per law.

Draws are the published coefficient sets jittered by 2% (a stand-in posterior; the cost does not
depend on where the draws come from). Prints, per law and objective, the first call (includes JAX
compilation) and the median of ``--repeats`` later calls, in seconds: wall clock, and the process's
CPU time (the better guide on a shared, loaded machine, where wall time mostly measures waiting). Usage::

    python benchmarks/propagation.py [--draws 4000] [--budgets 100] [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import bayesmoe  # noqa: F401  (float64)
from bayesmoe.laws import get_law
from bayesmoe.optimum import PointPosterior, optimum

CASES = [
    ("chinchilla", "chinchilla:besiroglu2024", {}),
    ("granularity", "granularity:krajewski2024", {}),
    ("joint", "joint:ludziejewski2025", {}),
    ("joint", "joint:ludziejewski2025", {"objective": "memory", "memory": 80e9}),
]


class JitteredSet:
    """A published set with every parameter multiplied by (1 + 0.02 z), z ~ N(0, 1): S draws."""

    def __init__(self, law: str, coefficients: str, draws: int, seed: int = 0):
        self.law = get_law(law)
        base = PointPosterior.from_set(law, coefficients).draws()
        rng = np.random.default_rng(seed)
        self.values = {k: v[0] * (1 + (0.02 if k in self.law.param_names else 0.0) * rng.standard_normal(draws))
                       for k, v in base.items()}

    def draws(self, group=None, seed=0):
        return self.values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--budgets", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    budgets = np.geomspace(1e18, 1e25, args.budgets)
    print(f"{args.draws} draws x {args.budgets} budgets; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'law':<12} {'objective':<10} {'first call (s)':>15} {'median wall (s)':>16} {'median CPU (s)':>15}")
    for law, coefficients, options in CASES:
        post = JitteredSet(law, coefficients, args.draws)
        start = time.perf_counter()
        optimum(post, budgets, **options)
        first = time.perf_counter() - start
        wall, cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = optimum(post, budgets, **options)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        assert np.isfinite(result.draws["loss"]).mean() > 0.99
        print(f"{law:<12} {options.get('objective', 'compute'):<10} {first:>15.3f} {statistics.median(wall):>16.3f} "
              f"{statistics.median(cpu):>15.3f}")


if __name__ == "__main__":
    main()
