"""Propagation benchmark: optimum of 4,000 posterior draws over 100 budgets, per law.

Draws are the published coefficient sets jittered by 2% (a stand-in posterior; the cost does not
depend on where the draws come from). Prints, per law and objective, the first call (includes JAX
compilation) and the median of ``--repeats`` later calls, in seconds: wall clock, and the process's
CPU time (the better guide on a shared, loaded machine, where wall time mostly measures waiting).
Baseline, same run: the granularity solve as it was before its float32 search (float64, three Newton
steps for every G, then the argmin), timed on the same draws; the ratio is ours / baseline. Usage::

    python benchmarks/propagation.py [--draws 4000] [--budgets 100] [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import bayesmoe
from bayesmoe.decide.optimum import PointPosterior, optimum
from bayesmoe.decide.optimum import granularity as granularity_optimum
from bayesmoe.decide.optimum.search import broadcast_theta
from bayesmoe.laws import get_law

bayesmoe.configure()  # float64 and the compilation cache, as the bayesmoe command sets them

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


@jax.jit
def _granularity_float64_every_g(theta, log_f, G):
    """Baseline: float64 Newton (NEWTON_STEPS) for every (draw, budget, G), then the argmin over G."""
    x, L, log_d = granularity_optimum._best(
        broadcast_theta(theta, 3), log_f[None, :, None], G[None, None, :], 64.0, False
    )
    pick = jnp.argmin(jnp.where(jnp.isfinite(L), L, jnp.inf), axis=-1)[..., None]
    return tuple(jnp.take_along_axis(v, pick, axis=-1)[..., 0] for v in (x, L, log_d))


def _median_seconds(call, repeats: int) -> tuple[float, float]:
    jax.block_until_ready(call())
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(call())
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def granularity_versus_baseline(budgets: np.ndarray, draws: int, repeats: int) -> None:
    """The granularity solve (float32 search + float64 polish) against the float64 every-G baseline."""
    post = JitteredSet("granularity", "granularity:krajewski2024", draws)
    theta = {k: jnp.asarray(post.values[k]) for k in granularity_optimum._THETA}
    log_f, G = jnp.log(jnp.asarray(budgets)), jnp.asarray(2.0 ** np.arange(0, 9))
    ours = _median_seconds(lambda: granularity_optimum._solve(theta, log_f, G, jnp.asarray(64.0)), repeats)
    base = _median_seconds(lambda: _granularity_float64_every_g(theta, log_f, G), repeats)
    print(f"granularity solve only: ours {ours[0]:.3f} s wall ({ours[1]:.3f} CPU), float64 every-G baseline "
          f"{base[0]:.3f} s wall ({base[1]:.3f} CPU); ratio ours / baseline {ours[0] / base[0]:.2f} wall, "
          f"{ours[1] / base[1]:.2f} CPU")


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
    granularity_versus_baseline(budgets, args.draws, args.repeats)


if __name__ == "__main__":
    main()
