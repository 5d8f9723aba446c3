"""Simulated runs tables: draw run configurations, then losses from a law with known parameters.

Used by the tests (recovery of known parameters), the benchmarks and, until real runs exist, by
the demo (labelled as simulated). Noise is multiplicative log-normal: ``loss = L_law * exp(eps)``,
``eps ~ Normal(0, noise)``.
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..config import float64
from ..errors import BayesMoeError
from ..laws import Law, get_law


def _log_uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def _dense_design(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Dense runs, N in [1e7, 1e10] and D in [1e9, 1e12] (log-uniform)."""
    return pd.DataFrame({"n_active": _log_uniform(rng, 1e7, 1e10, n), "tokens": _log_uniform(rng, 1e9, 1e12, n)})


def _granular_design(rng: np.random.Generator, n: int, expansion: int = 64) -> pd.DataFrame:
    """Fine-grained MoE runs at expansion rate 64: N_act in [1e6, 3e8], G in {1..16}, D in [1e9, 1e12]."""
    g = rng.choice([1, 2, 4, 8, 16], n)
    n_active = _log_uniform(rng, 1e6, 3e8, n)
    return pd.DataFrame({
        "n_active": n_active,
        "n_total": n_active * (8 * expansion + 4) / 12,
        "n_experts": expansion * g,
        "top_k": g,
        "granularity": g.astype(float),
        "tokens": _log_uniform(rng, 1e9, 1e12, n),
    })


def _expert_design(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Top-1 MoE runs: N_act in [1e7, 3e9], E in {1, 2, ..., 64}, D in [1e9, 1e12]."""
    e = rng.choice([1, 2, 4, 8, 16, 32, 64], n)
    n_active = _log_uniform(rng, 1e7, 3e9, n)
    return pd.DataFrame({
        "n_active": n_active,
        "n_total": n_active * (1 + (e - 1) * 2 / 3),
        "n_experts": e,
        "top_k": np.ones(n, dtype=int),
        "tokens": _log_uniform(rng, 1e9, 1e12, n),
    })


#: Run-configuration designs per law id: (rng, n_runs) -> runs table without loss.
DESIGNS: dict[str, Callable[[np.random.Generator, int], pd.DataFrame]] = {
    "chinchilla": _dense_design,
    "granularity": _granular_design,
    "joint": _expert_design,
}


@float64
def law_loss(law: str | Law, values: Mapping[str, float], runs: pd.DataFrame) -> np.ndarray:
    """The law's mean loss (nats) at each run of ``runs`` for parameters ``values``; shape (n,)."""
    law = get_law(law)
    x = {k: jnp.asarray(v) for k, v in law.covariates(runs).items()}
    theta = {k: jnp.asarray(float(v)) for k, v in values.items()}
    return np.exp(np.asarray(law.mean_log_loss(theta, x)))


def simulate_runs(
    law: str | Law,
    values: Mapping[str, float],
    n_runs: int,
    *,
    noise: float = 0.01,
    seed: int = 0,
    design: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A runs table with losses drawn from ``law`` at ``values``.

    Args:
        law: law id or :class:`Law`.
        values: natural-scale parameters (e.g. a published set's ``values``).
        n_runs: number of runs (ignored when ``design`` is given).
        noise: sd of the log-normal noise on loss (0.01 is about 1%).
        seed: random seed for configurations and noise.
        design: run configurations to use instead of the law's default design (docs/runs-table.md columns).
    """
    law = get_law(law)
    rng = np.random.default_rng(seed)
    if design is None:
        if law.name not in DESIGNS:
            raise BayesMoeError(f"no default run design for law '{law.name}'; pass design= (a runs table without loss)")
        design = DESIGNS[law.name](rng, n_runs)
    runs = design.reset_index(drop=True).copy()
    runs.insert(0, "run_id", [f"sim{i}" for i in range(len(runs))])
    runs["loss"] = law_loss(law, values, runs) * np.exp(rng.normal(0.0, noise, len(runs)))
    return runs
