"""NUTS chains as two compiled programs whose data are arguments (NumPyro's functional ``hmc`` kernel).

``numpyro.infer.MCMC`` traces and lowers its sampling loop again on every ``run``/``warmup`` call and
closes over the data, so each chain of each fit paid the lowering (6.4 of the 15.8 s of a warm-cache
Chinchilla fit) and JAX's persistent cache only helped a refit of the very same table. Here the
potential is generated from arguments (mode, whitening factor, coordinates and data), so the two
programs, warmup and sampling, are traced once per model and table size, reused by every chain, and
found in the persistent cache by any later fit of a table of that size.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.hmc import hmc


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
            :class:`~bayesmoe.coordinates.Coordinates` (a pure function; see ``ModeFinder``).
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
