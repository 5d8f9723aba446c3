"""The posterior mode in the sampling coordinates, and the Laplace approximation's curvature there.

One trace of the model gives the potential ``U(w) = -log p(w, data)`` in the sampling coordinates ``w``
of :mod:`bayesmoe.inference.coordinates`, with the data as arguments, so the compiled programs serve any
table of the same size. The mode is found from several starts (the prior medians and jittered copies)
by SciPy L-BFGS-B on a compiled value-and-gradient, each end point polished by Newton steps; the search
stops once ``MAP_AGREE_STOP`` starts agree. ``docs/sampling.md`` describes how NUTS and the Laplace
approximation use it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer import init_to_median
from numpyro.infer.util import initialize_model
from scipy import optimize
from threadpoolctl import threadpool_limits

from . import coordinates

#: BFGS starts for the mode: the prior medians plus jittered copies (unconstrained scale).
MAP_STARTS = 16
MAP_START_SCALE = 1.0
MAP_MAXITER = 500
#: Newton steps that polish each L-BFGS-B end point (see ``ModeFinder._polish``).
POLISH_STEPS = 8
#: starts whose optimum is within this many nats of the best count as agreeing.
MAP_AGREE_NATS = 0.05
#: the search stops once this many starts agree (so a unimodal posterior costs 4 starts, not 16).
MAP_AGREE_STOP = 4


@dataclass(frozen=True)
class Mode:
    """The posterior mode in the sampling coordinates and the curvature there.

    Attributes:
        z: NumPyro's unconstrained latent values at the mode, by site name.
        flat: the mode in the sampling coordinates ``w`` (:mod:`bayesmoe.inference.coordinates`), shape (k,).
        covariance: inverse Hessian of the potential in ``w`` at the mode, shape (k, k); None if the
            Hessian is not positive definite there.
        scale: (k, k) matrix ``L`` with ``L L^T`` = ``covariance`` (its Cholesky factor), what NUTS whitens
            with; the identity when the Hessian is not positive definite (NUTS then adapts its mass
            matrix in ``w`` itself, and ``w`` = ``z``).
        coordinates: the maps between ``w`` and ``z``, chosen from the Laplace approximation in ``z``.
        potential: ``-log p(z, data)`` at the mode (nats), before the change to ``w``.
        agree: how many of the L-BFGS-B starts reached the best potential (within ``MAP_AGREE_NATS``).
        starts: how many starts were run (the search stops once ``MAP_AGREE_STOP`` agree).
        unravel: maps a flat vector ``w`` (k,) to the ``z`` dict.
        postprocess: maps a ``z`` dict to all sample and deterministic sites on the natural scale.
    """

    z: dict
    flat: jnp.ndarray
    covariance: jnp.ndarray | None
    scale: jnp.ndarray
    coordinates: coordinates.Coordinates
    potential: float
    agree: int
    starts: int
    unravel: Callable
    postprocess: Callable


def _minimize_many(
    value_and_grad: Callable, starts: np.ndarray, polish: Callable
) -> tuple[np.ndarray, np.ndarray, int]:
    """L-BFGS-B from the rows of ``starts`` (s, k) in order, each end point polished by ``polish(x, f) -> (x, f)``,
    until ``MAP_AGREE_STOP`` end points agree.

    Returns optima (s, k), potentials (s,) (inf for a start that failed or was not run) and the number
    of starts run. The search
    stops early once ``MAP_AGREE_STOP`` end points lie within ``MAP_AGREE_NATS`` of the best so far:
    on a unimodal posterior every start lands there, and running all of them only costs time.
    """
    xs, fs = np.array(starts, dtype=float), np.full(len(starts), np.inf)
    # L-BFGS-B's vector updates go through BLAS; on a few parameters a multi-threaded OpenBLAS spends
    # milliseconds per iteration synchronising its threads, far more than the update itself.
    with threadpool_limits(limits=1, user_api="blas"):
        for i, z0 in enumerate(starts):
            result = optimize.minimize(
                value_and_grad, z0, jac=True, method="L-BFGS-B", options={"maxiter": MAP_MAXITER}
            )
            if np.isfinite(result.fun):
                xs[i], fs[i] = polish(result.x, float(result.fun))
            if np.sum(fs <= np.min(fs) + MAP_AGREE_NATS) >= MAP_AGREE_STOP:
                break
    return xs, fs, i + 1


def _laplace(hessian: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(covariance, its Cholesky factor) from a Hessian, or None if it is not positive definite."""
    try:
        covariance = np.linalg.inv(hessian)
        scale = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:  # a saddle or a boundary (e.g. a pooling scale at 0): no Gaussian here
        return None
    return (covariance, scale) if np.all(np.isfinite(scale)) else None


class ModeFinder:
    """The compiled mode search for one model and one data shape; call it with data of that shape.

    Tracing the model (``initialize_model``) and compiling its value-and-gradient and Hessian (as
    functions of the point, the data and the :class:`~bayesmoe.inference.coordinates.Coordinates`) happen once,
    here; each call then costs only the iterations. So many refits of tables of the same size
    (experimental design, benchmarks) pay the compile once.

    A call runs L-BFGS-B in NumPyro's ``z`` from the starts in turn, polishes each end point by Newton
    steps (until ``MAP_AGREE_STOP`` agree), chooses the sampling coordinates ``w`` from the Laplace approximation there
    (:func:`bayesmoe.inference.coordinates.adapt`), and polishes again in ``w`` (the Jacobian moves the mode).

    Args:
        model: a NumPyro model taking keyword data.
        model_kwargs: example data (only shapes and dtypes matter after construction).
        key: PRNG key for the jittered starts.
        starts: number of L-BFGS-B starts: the prior medians and ``starts - 1`` copies jittered by
            Normal(0, ``MAP_START_SCALE``^2) on the unconstrained scale.
    """

    def __init__(self, model: Callable, model_kwargs: dict, key: jax.Array, starts: int = MAP_STARTS):
        key_init, key_starts = jax.random.split(key)
        info = initialize_model(key_init, model, model_kwargs=model_kwargs, init_strategy=init_to_median(),
                                dynamic_args=True)
        self.z_median = info.param_info.z
        z0, self._unravel_z = ravel_pytree(self.z_median)
        self.marks = coordinates.marks(model, model_kwargs, self.z_median)
        self.identity = coordinates.identity(z0.size)

        def potential(flat, kwargs, coords):
            z, log_det = coords.to_z(flat)
            return info.potential_fn(**kwargs)(self._unravel_z(z)) - log_det

        jitter = MAP_START_SCALE * jax.random.normal(key_starts, (starts - 1, z0.size))
        self.starts = np.asarray(jnp.concatenate([z0[None], z0[None] + jitter]))
        def constrain(params, kwargs, coords):
            to_sites = info.postprocess_fn(**kwargs)
            one = lambda flat: to_sites(self.unravel(flat, coords))  # noqa: E731
            for _ in range(params.ndim - 1):
                one = jax.vmap(one)
            return one(params)

        self.potential_fn = potential
        #: ``constrain(w, model_kwargs, coords)``: every site on the natural scale for points ``w`` (..., k).
        self.constrain = jax.jit(constrain)
        self._info = info
        self._value_and_grad = jax.jit(jax.value_and_grad(potential))
        self._hessian = jax.jit(jax.hessian(potential))

    def unravel(self, flat: jax.Array, coords: coordinates.Coordinates) -> dict:
        """The ``z`` dict of a flat vector ``w`` (k,) in coordinates ``coords``."""
        return self._unravel_z(coords.to_z(flat)[0])

    def __call__(self, model_kwargs: dict) -> Mode:
        """The mode for ``model_kwargs``: the best of the starts, polished, with its Laplace covariance."""
        coords = self.identity

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = self._value_and_grad(flat, model_kwargs, coords)
            return float(value), np.asarray(grad, dtype=float)

        xs, fs, run = _minimize_many(objective, self.starts, lambda x, f: self._polish(x, f, model_kwargs, coords))
        best = int(np.argmin(fs))
        postprocess = self._info.postprocess_fn(**model_kwargs)
        if not np.isfinite(float(fs[best])):
            flat0 = jnp.asarray(self.starts[0])
            return Mode(self.unravel(flat0, coords), flat0, None, jnp.eye(flat0.size), coords, float("nan"), 0,
                        run, lambda v: self.unravel(v, coords), postprocess)
        flat, potential = xs[best], float(fs[best])
        agree = int(np.sum(fs <= fs[best] + MAP_AGREE_NATS))
        laplace = _laplace(self._hessian_at(flat, model_kwargs, coords))
        if laplace is not None:
            adapted = coordinates.adapt(self.marks, flat, laplace[0])
            w0 = adapted.from_z(flat)
            w, _ = self._polish(w0, float(self._value_and_grad(w0, model_kwargs, adapted)[0]), model_kwargs, adapted)
            in_w = _laplace(self._hessian_at(w, model_kwargs, adapted))
            if in_w is not None:  # otherwise keep z, where the Hessian is positive definite
                coords, flat, laplace = adapted, w, in_w
        covariance, scale = (None, np.eye(flat.size)) if laplace is None else laplace
        covariance = None if covariance is None else jnp.asarray(covariance)
        return Mode(self.unravel(jnp.asarray(flat), coords), jnp.asarray(flat), covariance, jnp.asarray(scale), coords,
                    potential, agree, run, lambda v: self.unravel(v, coords), postprocess)

    def _hessian_at(self, flat, model_kwargs: dict, coords) -> np.ndarray:
        return np.asarray(self._hessian(jnp.asarray(flat), model_kwargs, coords), dtype=float)

    def _polish(self, flat: np.ndarray, potential: float, model_kwargs: dict, coords) -> tuple[np.ndarray, float]:
        """Newton steps (with step halving) from a near-optimal point while the Hessian is positive definite.

        L-BFGS-B stops at a relative change of ~1e-9 in the potential; along flat directions that can
        leave the point visibly off the mode, and the Laplace covariance (the Hessian's inverse) is
        evaluated there. A few Newton steps reach the mode to machine precision.
        """
        for _ in range(POLISH_STEPS):
            grad = np.asarray(self._value_and_grad(flat, model_kwargs, coords)[1], dtype=float)
            try:
                lower = np.linalg.cholesky(self._hessian_at(flat, model_kwargs, coords))
            except np.linalg.LinAlgError:
                break
            step = np.linalg.solve(lower.T, np.linalg.solve(lower, grad))
            for length in (1.0, 0.5, 0.25, 0.125):
                trial = flat - length * step
                new = float(self._value_and_grad(trial, model_kwargs, coords)[0])
                if np.isfinite(new) and new <= potential:
                    flat, potential = trial, new
                    break
            else:
                break
            if np.max(np.abs(length * step)) < 1e-10:
                break
        return flat, potential


def find_map(model: Callable, model_kwargs: dict, key: jax.Array, starts: int = MAP_STARTS) -> Mode:
    """Posterior mode in the unconstrained space: best of ``starts`` L-BFGS-B runs, and its Laplace covariance."""
    return ModeFinder(model, model_kwargs, key, starts)(model_kwargs)
