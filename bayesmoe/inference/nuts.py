"""NUTS chains as two compiled programs whose data are arguments (NumPyro's functional ``hmc`` kernel).

``numpyro.infer.MCMC`` traces and lowers its sampling loop again on every ``run``/``warmup`` call and
closes over the data. Here the potential is generated from arguments (mode, whitening factor, coordinates
and data), so the two programs, warmup and sampling, are traced once per model and table size, reused by
every chain, and found in the persistent compilation cache by any later fit of a table of that size.
:func:`run_nuts` samples in coordinates whitened by the Laplace factor at the mode (re-whitened by a pilot
warmup for a hierarchical model), with the chains started over-dispersed and spread over the modes the
search found (:func:`chain_starts`); ``docs/sampling.md`` says why.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc import hmc
from scipy import linalg

from .draws import Draws, Settings
from .mode import Mode, ModeFinder, _cholesky

#: per-draw sampler statistics kept: ChainDraws field -> ArviZ name (``tree_depth`` is derived from ``n_steps``).
SAMPLE_STATS = {"diverging": "diverging", "energy": "energy", "num_steps": "n_steps", "accept_prob": "acceptance_rate",
                "step_size": "step_size"}
#: chains start at a mode plus Normal(0, INIT_JITTER^2) times the whitening covariance ``L L^T``
#: (over-dispersed, as R-hat assumes; held pooling scales: INIT_JITTER on their log scale).
INIT_JITTER = 2.0


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


def describe_modes(finder: ModeFinder, mode: Mode, model_kwargs: dict, chain_modes: list[int]) -> tuple[dict, ...]:
    """The modes as JSON-ready records: ``location`` (every site on the natural scale, nested lists),
    ``log_density`` (``-potential``, nats, unnormalised, in the sampling coordinates), ``log_mass``
    (log Laplace mass relative to the largest), ``starts`` (end points in it), ``sampled`` and ``chains``
    (the chains started in it)."""
    out = []
    top = mode.modes[0].log_mass
    for i, local in enumerate((*mode.modes, *mode.minor_modes)):
        sites = finder.constrain(jnp.asarray(local.flat), model_kwargs, mode.coordinates)
        out.append({
            "location": {k: np.asarray(v).tolist() for k, v in sites.items()},
            "log_density": -float(local.potential),
            "log_mass": float(local.log_mass - top),
            "starts": int(local.starts),
            "sampled": i < len(mode.modes),
            "chains": [c for c, m in enumerate(chain_modes) if m == i],
        })
    return tuple(out)


def chain_starts(mode: Mode, key: jax.Array, chains: int) -> tuple[np.ndarray, list[int]]:
    """Initial points in whitened coordinates ``u`` (chains, k), and the mode each chain starts in.

    Chain ``c`` starts in mode ``c mod M`` of the ``M`` modes with enough mass (``Mode.modes``; the best
    alone when the posterior is unimodal), ``INIT_JITTER`` Laplace sds away from it in a random
    direction per coordinate (held coordinates: ``INIT_JITTER`` on their log scale).
    """
    centres = [m.flat for m in mode.modes] or [np.asarray(mode.flat)]
    scale = np.asarray(mode.scale)
    offsets = [linalg.solve_triangular(scale, np.asarray(c) - np.asarray(mode.flat), lower=True) for c in centres]
    jitter = INIT_JITTER * np.asarray(jax.random.normal(key, (chains, scale.shape[0])))
    which = [c % len(centres) for c in range(chains)]
    return np.stack([offsets[m] + j for m, j in zip(which, jitter)]), which


def _pilot_scale(programs: ChainPrograms, mode: Mode, model_kwargs: dict, key: jax.Array) -> jnp.ndarray:
    """A whitening factor for a hierarchical model from one pilot warmup: ``L chol(M^-1)``.

    The held-scale Laplace factor ``L`` of such a model is only a rough whitening (its curvature is
    that of one value of each ``tau``): on the pooled Clark fit the posterior in ``u`` spanned sds from
    0.2 to 300, where NumPyro's shrinkage of its dense mass-matrix estimate towards a small multiple of
    the identity distorts the narrow directions. One warmup from the mode estimates the posterior
    covariance ``M^-1`` in ``u``; the chains then warm up and sample in coordinates whitened by it.
    """
    start, _ = chain_starts(mode, key, 1)
    pilot = programs.warmup(jax.random.fold_in(key, 1), jnp.asarray(start[0]), (mode.flat, mode.scale, mode.coordinates,
                                                                                   model_kwargs))
    covariance = np.asarray(pilot.adapt_state.inverse_mass_matrix)
    factor = _cholesky(covariance) if covariance.ndim == 2 else np.diag(np.sqrt(covariance))
    return mode.scale if factor is None else jnp.asarray(np.asarray(mode.scale) @ factor)


def run_nuts(model: Callable, model_kwargs: dict, settings: Settings, finder: ModeFinder | None = None) -> Draws:
    """NUTS in whitened coordinates around the posterior modes (see the module doc).

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
    scale = mode.scale
    if mode.held.any():
        scale = _pilot_scale(programs, mode, model_kwargs, key_jitter)
    args = (mode.flat, scale, mode.coordinates, model_kwargs)
    progress = sys.stderr.isatty() if settings.progress_bar is None else settings.progress_bar
    init, chain_modes = chain_starts(replace(mode, scale=scale), key_jitter, settings.chains)
    warmed = []
    for chain, (key, start) in enumerate(zip(jax.random.split(key_run, settings.chains), init)):
        warmed.append(programs.warmup(key, jnp.asarray(start), args))
        if progress:
            print(f"warmup: chain {chain + 1}/{settings.chains} done", file=sys.stderr, flush=True)
    step_size = jnp.asarray(min(float(state.adapt_state.step_size) for state in warmed))
    chains = []
    for chain, state in enumerate(warmed):
        chains.append(programs.sample(state, step_size, args))
        if progress:
            print(f"sampling: chain {chain + 1}/{settings.chains} done", file=sys.stderr, flush=True)
    u = jnp.stack([c.u for c in chains])
    w = mode.flat + jnp.einsum("cdj,ij->cdi", u, scale)
    sites = finder.constrain(w, model_kwargs, mode.coordinates)
    stats = {name: np.stack([np.asarray(getattr(c, field)) for c in chains]) for field, name in SAMPLE_STATS.items()}
    stats["tree_depth"] = np.floor(np.log2(stats["n_steps"])).astype(np.int64) + 1
    modes = describe_modes(finder, mode, model_kwargs, chain_modes) if mode.modes else ()
    return Draws({k: np.asarray(v) for k, v in sites.items()}, stats, modes)
