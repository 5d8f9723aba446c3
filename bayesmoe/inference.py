"""Running NUTS: start at the posterior mode with the Laplace covariance as the mass matrix.

One trace of the model gives the unconstrained potential ``U(z) = -log p(z, data)`` (data passed as
arguments, so the compiled programs are reused for any data set of the same size and, through JAX's
persistent compilation cache, by later processes). The mode is found from several starts by
SciPy L-BFGS-B on a compiled value-and-gradient (one small compile; the starts are the prior medians and jittered copies of them); the Hessian of ``U`` at
the best mode gives the Laplace covariance, which initialises NUTS's dense inverse mass matrix, so a
short warmup only has to refine it and tune the step size. Chains start at jittered copies of the
mode and run vectorised in one process.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer import MCMC, NUTS, init_to_median
from numpyro.infer.util import initialize_model
from scipy import optimize
from threadpoolctl import threadpool_limits

#: BFGS starts for the mode: the prior medians plus jittered copies (unconstrained scale).
MAP_STARTS = 16
MAP_START_SCALE = 1.0
MAP_MAXITER = 500
#: Newton steps that polish the best L-BFGS-B end point (see ``ModeFinder._polish``).
POLISH_STEPS = 8
#: starts whose optimum is within this many nats of the best count as agreeing.
MAP_AGREE_NATS = 0.05
#: per-draw sampler statistics kept (ArviZ names them diverging, energy, n_steps, acceptance_rate, step_size).
SAMPLE_STATS = ("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size")
#: chains start at the mode plus Normal(0, INIT_JITTER^2) times the Laplace covariance.
INIT_JITTER = 0.5


@dataclass(frozen=True)
class Settings:
    """Sampler settings (the CLI defaults follow SPEC §3)."""

    chains: int = 4
    warmup: int = 500
    draws: int = 1000
    seed: int = 0
    target_accept: float = 0.9
    dense_mass: bool = True
    max_tree_depth: int = 10
    progress_bar: bool | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "progress_bar"}


@dataclass(frozen=True)
class Mode:
    """The posterior mode in the unconstrained space and the curvature there.

    Attributes:
        z: unconstrained latent values by site name (the pytree NUTS works on).
        flat: the same, flattened (sorted site names), shape (k,).
        covariance: inverse Hessian of the potential at the mode, shape (k, k); None if the Hessian
            is not positive definite there.
        potential: ``-log p(z, data)`` at the mode (nats).
        agree: how many of the BFGS starts reached the best potential (within ``MAP_AGREE_NATS``).
        starts: how many starts were run.
        unravel: maps a flat vector (k,) back to a ``z`` dict.
        postprocess: maps a ``z`` dict to all sample and deterministic sites on the natural scale.
    """

    z: dict
    flat: jnp.ndarray
    covariance: jnp.ndarray | None
    potential: float
    agree: int
    starts: int
    unravel: Callable
    postprocess: Callable


def _minimize_many(value_and_grad: Callable, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L-BFGS-B from each row of ``starts`` (s, k); returns optima (s, k) and potentials (s,) (inf if not finite)."""
    xs, fs = np.array(starts, dtype=float), np.full(len(starts), np.inf)
    # L-BFGS-B's vector updates go through BLAS; on a few parameters a multi-threaded OpenBLAS spends
    # milliseconds per iteration synchronising its threads (10x the whole update when a core is busy).
    with threadpool_limits(limits=1, user_api="blas"):
        for i, z0 in enumerate(starts):
            result = optimize.minimize(value_and_grad, z0, jac=True, method="L-BFGS-B", options={"maxiter": MAP_MAXITER})
            if np.isfinite(result.fun):
                xs[i], fs[i] = result.x, result.fun
    return xs, fs


class ModeFinder:
    """The compiled mode search for one model and one data shape; call it with data of that shape.

    Tracing the model (``initialize_model``) and compiling its value-and-gradient and Hessian happen
    once, here; each call then costs only the L-BFGS-B iterations. So many refits of tables of the
    same size (experimental design, benchmarks) pay the compile once.

    Args:
        model: a NumPyro model taking keyword data.
        model_kwargs: example data (only shapes and dtypes matter after construction).
        key: PRNG key for the jittered starts.
        starts: number of L-BFGS-B starts: the prior medians and ``starts - 1`` copies jittered by
            Normal(0, ``MAP_START_SCALE``^2) on the unconstrained scale.
    """

    def __init__(self, model, model_kwargs: dict, key, starts: int = MAP_STARTS):
        key_init, key_starts = jax.random.split(key)
        info = initialize_model(key_init, model, model_kwargs=model_kwargs, init_strategy=init_to_median(),
                                dynamic_args=True)
        self.z_median = info.param_info.z
        flat0, unravel = ravel_pytree(self.z_median)
        self.unravel = unravel

        def potential(flat, kwargs):
            return info.potential_fn(**kwargs)(unravel(flat))

        jitter = MAP_START_SCALE * jax.random.normal(key_starts, (starts - 1, flat0.size))
        self.starts = np.asarray(jnp.concatenate([flat0[None], flat0[None] + jitter]))
        self._info = info
        self._value_and_grad = jax.jit(jax.value_and_grad(potential))
        self._hessian = jax.jit(jax.hessian(potential))

    def __call__(self, model_kwargs: dict, extra_starts: np.ndarray | None = None) -> Mode:
        """The mode for ``model_kwargs``: best of the starts (plus ``extra_starts``, shape (m, k), e.g. an
        earlier mode), with its Laplace covariance."""

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = self._value_and_grad(flat, model_kwargs)
            return float(value), np.asarray(grad, dtype=float)

        starts = self.starts if extra_starts is None else np.concatenate([np.atleast_2d(extra_starts), self.starts])
        xs, fs = _minimize_many(objective, starts)
        best = int(np.argmin(fs))
        postprocess = self._info.postprocess_fn(**model_kwargs)
        if not np.isfinite(float(fs[best])):
            flat0 = jnp.asarray(self.starts[0])
            return Mode(self.z_median, flat0, None, float("nan"), 0, len(starts), self.unravel, postprocess)
        flat, potential = self._polish(xs[best], float(fs[best]), model_kwargs)
        fs[best] = potential
        flat = jnp.asarray(flat)
        covariance = jnp.linalg.inv(self._hessian(flat, model_kwargs))
        if not bool(jnp.all(jnp.isfinite(jnp.linalg.cholesky(covariance)))):
            covariance = None
        agree = int(np.sum(fs <= fs[best] + MAP_AGREE_NATS))
        return Mode(self.unravel(flat), flat, covariance, float(fs[best]), agree, len(starts), self.unravel, postprocess)

    def _polish(self, flat: np.ndarray, potential: float, model_kwargs: dict) -> tuple[np.ndarray, float]:
        """Newton steps (with step halving) from L-BFGS-B's end point while the Hessian is positive definite.

        L-BFGS-B stops at a relative change of ~1e-9 in the potential; along flat directions that can
        leave the point visibly off the mode, and the Laplace covariance (the Hessian's inverse) is
        evaluated there. A few Newton steps reach the mode to machine precision.
        """
        for _ in range(POLISH_STEPS):
            grad = np.asarray(self._value_and_grad(flat, model_kwargs)[1], dtype=float)
            try:
                lower = np.linalg.cholesky(np.asarray(self._hessian(flat, model_kwargs), dtype=float))
            except np.linalg.LinAlgError:
                break
            step = np.linalg.solve(lower.T, np.linalg.solve(lower, grad))
            for length in (1.0, 0.5, 0.25, 0.125):
                trial = flat - length * step
                new = float(self._value_and_grad(trial, model_kwargs)[0])
                if np.isfinite(new) and new <= potential:
                    flat, potential = trial, new
                    break
            else:
                break
            if np.max(np.abs(length * step)) < 1e-10:
                break
        return flat, potential


def find_map(model, model_kwargs: dict, key, starts: int = MAP_STARTS) -> Mode:
    """Posterior mode in the unconstrained space: best of ``starts`` L-BFGS-B runs, and its Laplace covariance."""
    return ModeFinder(model, model_kwargs, key, starts)(model_kwargs)


def run_nuts(model, model_kwargs: dict, settings: Settings, mode: Mode | None = None) -> MCMC:
    """Run NUTS from jittered starts around the mode; returns the finished :class:`numpyro.infer.MCMC`.

    ``mode`` (from :func:`find_map`) is computed when not given.
    """
    key_map, key_jitter, key_run = jax.random.split(jax.random.PRNGKey(settings.seed), 3)
    mode = find_map(model, model_kwargs, key_map) if mode is None else mode
    scale = jnp.linalg.cholesky(mode.covariance) if mode.covariance is not None else jnp.eye(mode.flat.size)
    noise = jax.random.normal(key_jitter, (settings.chains, mode.flat.size)) @ scale.T
    init = jax.vmap(mode.unravel)(mode.flat[None] + INIT_JITTER * noise)
    inverse_mass = mode.covariance
    if inverse_mass is not None and not settings.dense_mass:
        inverse_mass = jnp.diag(inverse_mass)
    kernel = NUTS(
        model,
        target_accept_prob=settings.target_accept,
        dense_mass=settings.dense_mass,
        inverse_mass_matrix=inverse_mass,
        max_tree_depth=settings.max_tree_depth,
    )
    progress = sys.stderr.isatty() if settings.progress_bar is None else settings.progress_bar
    mcmc = MCMC(
        kernel,
        num_warmup=settings.warmup,
        num_samples=settings.draws,
        num_chains=settings.chains,
        chain_method="vectorized",
        progress_bar=progress,
        jit_model_args=True,
    )
    mcmc.run(key_run, init_params=init, extra_fields=SAMPLE_STATS, **model_kwargs)
    jax.block_until_ready(mcmc.get_samples())  # dispatch is asynchronous: wait, so timings mean sampling
    return mcmc
