"""NUTS chains as two compiled programs whose data are arguments (NumPyro's functional ``hmc`` kernel).

``numpyro.infer.MCMC`` traces and lowers its sampling loop again on every ``run``/``warmup`` call and
closes over the data. Here the potential is generated from arguments (mode, whitening factor, coordinates
and data), so the two programs, warmup and sampling, are traced once per model and table size, reused by
every chain, and found in the persistent compilation cache by any later fit of a table of that size.
:func:`run_nuts` samples in coordinates whitened by the Laplace factor at the mode; ``docs/sampling.md``
says why.
"""
from __future__ import annotations

import sys
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc import hmc

from .draws import Draws, Settings
from .mode import ModeFinder

#: per-draw sampler statistics kept: ChainDraws field -> ArviZ name (``tree_depth`` is derived from ``n_steps``).
SAMPLE_STATS = {"diverging": "diverging", "energy": "energy", "num_steps": "n_steps", "accept_prob": "acceptance_rate",
                "step_size": "step_size"}
#: chains start at the mode plus Normal(0, INIT_JITTER^2) times the Laplace covariance.
INIT_JITTER = 0.5


class ChainDraws(NamedTuple):
    """One chain's draws in whitened coordinates ``u`` (draws, k) and its per-draw statistics (draws,)."""

    u: jnp.ndarray
    diverging: jnp.ndarray
    energy: jnp.ndarray
    num_steps: jnp.ndarray
    accept_prob: jnp.ndarray
    step_size: jnp.ndarray


class ChainPrograms:
    """Compiled warmup and sampling for NUTS on ``potential(w, model_kwargs, coordinates)`` with ``w = mode + L u``.

    Args:
        potential: the potential of the flat sampling coordinates ``w`` (k,), given the data and the
            :class:`~bayesmoe.inference.coordinates.Coordinates` (a pure function; see ``ModeFinder``).
        warmup, draws: iterations of each phase.
        target_accept, dense_mass, max_tree_depth: NUTS settings.
    """

    def __init__(self, potential: Callable, *, warmup: int, draws: int, target_accept: float, dense_mass: bool,
                 max_tree_depth: int):
        def generate(mode, scale, coords, model_kwargs):
            return lambda u: potential(mode + scale @ u, model_kwargs, coords)

        init_kernel, sample_kernel = hmc(potential_fn_gen=generate, algo="NUTS")

        def run_warmup(key, u0, args):
            state = init_kernel(u0, warmup, dense_mass=dense_mass, target_accept_prob=target_accept,
                                max_tree_depth=max_tree_depth, model_args=args, rng_key=key)
            return jax.lax.fori_loop(0, warmup, lambda _, s: sample_kernel(s, model_args=args), state)

        def run_sampling(state, step_size, args):
            state = state._replace(adapt_state=state.adapt_state._replace(step_size=step_size))

            def step(s, _):
                s = sample_kernel(s, model_args=args)
                return s, ChainDraws(s.z, s.diverging, s.energy, s.num_steps, s.accept_prob, s.adapt_state.step_size)

            return jax.lax.scan(step, state, None, length=draws)[1]

        self.warmup = jax.jit(run_warmup)
        self.sample = jax.jit(run_sampling)


def run_nuts(model: Callable, model_kwargs: dict, settings: Settings, finder: ModeFinder | None = None) -> Draws:
    """NUTS in whitened coordinates around the posterior mode (see the module doc).

    Args:
        model, model_kwargs: the NumPyro model and its data.
        settings: sampler settings.
        finder: a :class:`ModeFinder` built for this model and data shape (built here when None).
    """
    key_map, key_jitter, key_run = jax.random.split(jax.random.PRNGKey(settings.seed), 3)
    finder = ModeFinder(model, model_kwargs, key_map) if finder is None else finder
    mode = finder(model_kwargs)
    programs = ChainPrograms(finder.potential_fn, warmup=settings.warmup, draws=settings.draws,
                             target_accept=settings.target_accept, dense_mass=settings.dense_mass,
                             max_tree_depth=settings.max_tree_depth)
    args = (mode.flat, mode.scale, mode.coordinates, model_kwargs)
    progress = sys.stderr.isatty() if settings.progress_bar is None else settings.progress_bar
    init = INIT_JITTER * jax.random.normal(key_jitter, (settings.chains, mode.flat.size))
    warmed = []
    for chain, (key, start) in enumerate(zip(jax.random.split(key_run, settings.chains), init)):
        warmed.append(programs.warmup(key, start, args))
        if progress:
            print(f"warmup: chain {chain + 1}/{settings.chains} done", file=sys.stderr, flush=True)
    step_size = jnp.asarray(min(float(state.adapt_state.step_size) for state in warmed))
    chains = []
    for chain, state in enumerate(warmed):
        chains.append(programs.sample(state, step_size, args))
        if progress:
            print(f"sampling: chain {chain + 1}/{settings.chains} done", file=sys.stderr, flush=True)
    u = jnp.stack([c.u for c in chains])
    w = mode.flat + jnp.einsum("cdj,ij->cdi", u, mode.scale)
    sites = finder.constrain(w, model_kwargs, mode.coordinates)
    stats = {name: np.stack([np.asarray(getattr(c, field)) for c in chains]) for field, name in SAMPLE_STATS.items()}
    stats["tree_depth"] = np.floor(np.log2(stats["n_steps"])).astype(np.int64) + 1
    return Draws({k: np.asarray(v) for k, v in sites.items()}, stats)
