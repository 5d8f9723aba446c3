"""The posterior modes in the sampling coordinates, and the Laplace approximation's curvature there.

One trace of the model gives the potential ``U(w) = -log p(w, data)`` in the sampling coordinates ``w``
of :mod:`bayesmoe.inference.coordinates`, with the data as arguments, so the compiled programs serve any
table of the same size. The modes are found from several starts (the prior medians and antithetic
jittered pairs around them) by SciPy L-BFGS-B on a compiled value-and-gradient, each end point polished
by Newton steps, and the end points are compared by *location* (Mahalanobis distance under the Laplace
covariance), so two modes of equal height are told apart. Pooling scales are held at their prior
medians (a hierarchical model's joint mode is degenerate). ``docs/sampling.md`` describes how NUTS and
the Laplace approximation use the result.
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

#: L-BFGS-B starts for the mode: the prior medians and antithetic pairs ``median +- jitter`` (jitter
#: Normal(0, MAP_START_SCALE^2) on the unconstrained scale), so two starts leave a symmetric point in
#: opposite directions.
MAP_STARTS = 16
MAP_START_SCALE = 1.0
MAP_MAXITER = 500
#: Newton steps that polish each L-BFGS-B end point (see ``ModeFinder._polish``).
POLISH_STEPS = 8
#: at least this many starts run, however early the end points agree (a second mode is missed with
#: probability about 2^-(MAP_MIN_STARTS - 2) when the starts fall on either side of a symmetric one).
MAP_MIN_STARTS = 8
#: after MAP_MIN_STARTS, the search stops once this many end points lie in the best mode.
MAP_AGREE_STOP = 4
#: two polished end points are distinct modes when each lies more than this many Laplace sds from the
#: other (Mahalanobis distance under the other's Laplace covariance).
MODE_DISTINCT_SDS = 3.0
#: a mode whose Laplace mass is below this share of the largest is recorded but gets no chain.
MODE_MIN_MASS = 0.01


@dataclass(frozen=True)
class LocalMode:
    """One distinct local mode found by the search.

    Attributes:
        flat: its location in the sampling coordinates ``w`` of the :class:`Mode` (k,).
        potential: ``-log p`` there (nats, in ``w``).
        log_mass: ``-potential - log det(H)/2``, the log of its Laplace mass up to a shared constant.
        starts: how many L-BFGS-B end points fell in it.
    """

    flat: np.ndarray
    potential: float
    log_mass: float
    starts: int


@dataclass(frozen=True)
class Mode:
    """The posterior mode in the sampling coordinates, the curvature there, and any other modes.

    Attributes:
        z: NumPyro's unconstrained latent values at the mode, by site name.
        flat: the mode in the sampling coordinates ``w`` (:mod:`bayesmoe.inference.coordinates`), shape (k,).
        covariance: inverse Hessian of the potential in ``w`` at the mode, shape (k, k); None if the
            Hessian is not positive definite there, or for a hierarchical model (whose joint mode is
            degenerate: ``flat`` is then the mode with the pooling scales held at their prior medians).
        scale: (k, k) matrix ``L`` that NUTS whitens with: the Cholesky factor of ``covariance``; for a
            hierarchical model that of the held-scale Laplace covariance, and 1 on the held coordinates;
            the identity when no Hessian is positive definite (NUTS then adapts its mass matrix in ``w``).
        coordinates: the maps between ``w`` and ``z``, chosen from the Laplace approximation in ``z``.
        potential: ``-log p(z, data)`` at the mode (nats), before the change to ``w``.
        agree: how many of the L-BFGS-B end points lie in the best mode (within ``MODE_DISTINCT_SDS``).
        starts: how many starts were run.
        unravel: maps a flat vector ``w`` (k,) to the ``z`` dict.
        postprocess: maps a ``z`` dict to all sample and deterministic sites on the natural scale.
        modes: the distinct local modes whose Laplace mass is at least ``MODE_MIN_MASS`` of the largest,
            best first (the first is ``flat``); chains are spread over them.
        minor_modes: distinct local modes below that mass (recorded, not sampled from).
        held: bool mask (k,) of the coordinates held fixed in the search (pooling scales).
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
    modes: tuple[LocalMode, ...]
    minor_modes: tuple[LocalMode, ...]
    held: np.ndarray


@dataclass
class _EndPoint:
    """A polished L-BFGS-B end point: location (k,), potential, Hessian over the free coordinates (or None)."""

    x: np.ndarray
    f: float
    hessian: np.ndarray | None


def _cholesky(matrix: np.ndarray) -> np.ndarray | None:
    try:
        lower = np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return None
    return lower if np.all(np.isfinite(lower)) else None


def _distance(delta: np.ndarray, hessian: np.ndarray) -> float:
    """Mahalanobis length of ``delta`` under the Laplace covariance ``hessian^-1`` (in Laplace sds)."""
    return float(np.sqrt(max(delta @ hessian @ delta, 0.0)))


def _cluster(points: list[_EndPoint], free: np.ndarray) -> list[tuple[_EndPoint, int]]:
    """Distinct local modes among polished end points, best first, with how many end points each holds.

    Only end points with a positive-definite Hessian are minima; a point joins the first (lower) mode
    within ``MODE_DISTINCT_SDS`` of it in either mode's Laplace metric.
    """
    minima = [p for p in points if p.hessian is not None]
    return _merge(minima, [1] * len(minima), free)


def _merge(points: list[_EndPoint], counts: list[int], free: np.ndarray) -> list[tuple[_EndPoint, int]]:
    """Group minima (each holding ``counts`` end points) into distinct modes, best first (see :func:`_cluster`);
    also used after the modes are polished in new coordinates, where two can polish to one."""
    merged: list[list] = []
    for point, count in sorted(zip(points, counts), key=lambda pair: pair[0].f):
        for entry in merged:
            delta = (point.x - entry[0].x)[free]
            if min(_distance(delta, entry[0].hessian), _distance(delta, point.hessian)) <= MODE_DISTINCT_SDS:
                entry[1] += count
                break
        else:
            merged.append([point, count])
    return [(p, n) for p, n in merged]


def _log_mass(point: _EndPoint) -> float:
    return -point.f - 0.5 * float(np.linalg.slogdet(point.hessian)[1])


def _antithetic_starts(z0: np.ndarray, key: jax.Array, starts: int) -> np.ndarray:
    """``starts`` rows: ``z0``, then ``z0 + e_i`` and ``z0 - e_i`` for Normal(0, MAP_START_SCALE^2) jitter ``e_i``."""
    pairs = starts // 2
    jitter = MAP_START_SCALE * np.asarray(jax.random.normal(key, (pairs, z0.size)))
    rows = [z0] + [z0 + sign * e for e in jitter for sign in (1.0, -1.0)]
    return np.asarray(rows[:starts])


class ModeFinder:
    """The compiled mode search for one model and one data shape; call it with data of that shape.

    Tracing the model (``initialize_model``) and compiling its value-and-gradient and Hessian (as
    functions of the point, the data and the :class:`~bayesmoe.inference.coordinates.Coordinates`) happen once,
    here; each call then costs only the iterations. So many refits of tables of the same size
    (experimental design, benchmarks) pay the compile once.

    A call runs L-BFGS-B in NumPyro's ``z`` from the starts in turn, polishes each end point by Newton
    steps, and compares the end points by *location*: two minima more than ``MODE_DISTINCT_SDS``
    Laplace sds apart are distinct modes (two modes of equal height are not one). It runs at least
    ``MAP_MIN_STARTS`` starts and stops once ``MAP_AGREE_STOP`` end points share the best mode. It then
    chooses the sampling coordinates ``w`` from the Laplace approximation at the best mode
    (:func:`bayesmoe.inference.coordinates.adapt`) and polishes every mode again in ``w`` (the Jacobian moves it).

    Pooling scales (sites marked ``pooling_scale``) are held at their prior medians throughout: the
    joint mode of a hierarchical model is degenerate (every ``tau`` -> 0, density unbounded), and its
    curvature says nothing about the posterior. The search then finds the mode of the other
    coordinates given those scales, a non-degenerate point to start the chains from.

    Args:
        model: a NumPyro model taking keyword data.
        model_kwargs: example data (only shapes and dtypes matter after construction).
        key: PRNG key for the jittered starts.
        starts: number of L-BFGS-B starts: the prior medians and antithetic jittered pairs around them
            (``MAP_START_SCALE`` on the unconstrained scale; held coordinates are not jittered).
    """

    def __init__(self, model: Callable, model_kwargs: dict, key: jax.Array, starts: int = MAP_STARTS):
        key_init, key_starts = jax.random.split(key)
        info = initialize_model(key_init, model, model_kwargs=model_kwargs, init_strategy=init_to_median(),
                                dynamic_args=True)
        self.z_median = info.param_info.z
        z0, self._unravel_z = ravel_pytree(self.z_median)
        self.marks = coordinates.marks(model, model_kwargs, self.z_median)
        self.identity = coordinates.identity(z0.size)
        #: coordinates held at the prior median during the search (pooling scales), bool (k,)
        self.held = np.asarray(self.marks.pooling_scale, dtype=bool)

        def potential(flat, kwargs, coords):
            z, log_det = coords.to_z(flat)
            return info.potential_fn(**kwargs)(self._unravel_z(z)) - log_det

        self.starts = _antithetic_starts(np.asarray(z0, dtype=float), key_starts, starts)
        self.starts[:, self.held] = np.asarray(z0)[self.held]

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
        """The modes for ``model_kwargs``: the best, polished, with its Laplace covariance, and any others."""
        coords, free = self.identity, ~self.held
        points, run = self._search(model_kwargs, coords)
        postprocess = self._info.postprocess_fn(**model_kwargs)
        found = _cluster(points, free)
        if not found:  # no start reached a point with a positive-definite Hessian
            finite = [p for p in points if np.isfinite(p.f)]
            flat0 = jnp.asarray(min(finite, key=lambda p: p.f).x if finite else self.starts[0])
            potential = min(p.f for p in finite) if finite else float("nan")
            return Mode(self.unravel(flat0, coords), flat0, None, jnp.eye(flat0.size), coords, potential, 0,
                        run, lambda v: self.unravel(v, coords), postprocess, (), (), self.held)
        best = found[0][0]
        covariance_z = np.eye(best.x.size)
        covariance_z[np.ix_(free, free)] = np.linalg.inv(best.hessian)
        adapted = coordinates.adapt(self.marks, best.x, covariance_z)
        in_w = [self._polish(adapted.from_z(p.x), model_kwargs, adapted) for p, _ in found]
        if all(p.hessian is not None for p in in_w):  # otherwise keep z, where the Hessians are positive definite
            coords, found = adapted, _merge(in_w, [n for _, n in found], free)
        polished = [p for p, _ in found]
        log_mass = np.array([_log_mass(p) for p in polished])
        local = [LocalMode(p.x, p.f, float(m), n) for p, m, (_, n) in zip(polished, log_mass, found)]
        order = np.argsort(-log_mass, kind="stable")
        major = tuple(local[i] for i in order if log_mass[i] >= log_mass.max() + np.log(MODE_MIN_MASS))
        minor = tuple(local[i] for i in order if log_mass[i] < log_mass.max() + np.log(MODE_MIN_MASS))
        top = polished[int(order[0])]
        flat = top.x
        scale = np.eye(flat.size)
        scale[np.ix_(free, free)] = np.linalg.cholesky(np.linalg.inv(top.hessian))
        covariance = None if self.held.any() else jnp.asarray(np.linalg.inv(top.hessian))
        return Mode(self.unravel(jnp.asarray(flat), coords), jnp.asarray(flat), covariance, jnp.asarray(scale), coords,
                    found[int(order[0])][0].f, found[int(order[0])][1], run, lambda v: self.unravel(v, coords),
                    postprocess, major, minor, self.held)

    def _search(self, model_kwargs: dict, coords: coordinates.Coordinates) -> tuple[list[_EndPoint], int]:
        """L-BFGS-B from the starts in turn, each end point polished, until the stopping rule (class doc)."""

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = self._value_and_grad(flat, model_kwargs, coords)
            return float(value), np.asarray(grad, dtype=float)

        bounds = [(v, v) if held else (None, None) for v, held in zip(self.starts[0], self.held)]
        points: list[_EndPoint] = []
        # L-BFGS-B's vector updates go through BLAS; on a few parameters a multi-threaded OpenBLAS spends
        # milliseconds per iteration synchronising its threads (10x the whole update when a core is busy).
        with threadpool_limits(limits=1, user_api="blas"):
            for run, z0 in enumerate(self.starts, 1):
                result = optimize.minimize(objective, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                                           options={"maxiter": MAP_MAXITER})
                if np.isfinite(result.fun):
                    points.append(self._polish(result.x, model_kwargs, coords, float(result.fun)))
                if run >= MAP_MIN_STARTS:
                    found = _cluster(points, ~self.held)
                    if found and found[0][1] >= MAP_AGREE_STOP:
                        break
        return points, run

    def _hessian_at(self, flat: np.ndarray, model_kwargs: dict, coords: coordinates.Coordinates) -> np.ndarray:
        """The Hessian of the potential over the free (not held) coordinates."""
        full = np.asarray(self._hessian(jnp.asarray(flat), model_kwargs, coords), dtype=float)
        free = ~self.held
        return full[np.ix_(free, free)]

    def _polish(self, flat: np.ndarray, model_kwargs: dict, coords: coordinates.Coordinates,
                potential: float | None = None) -> _EndPoint:
        """Newton steps (with step halving) over the free coordinates while the Hessian is positive definite.

        L-BFGS-B stops at a relative change of ~1e-9 in the potential; along flat directions that can
        leave the point visibly off the mode, and the Laplace covariance (the Hessian's inverse) is
        evaluated there. A few Newton steps reach the mode to machine precision. The end point's
        Hessian is None where it is not positive definite (a saddle or a boundary: not a mode).
        """
        flat = np.array(flat, dtype=float)
        free = ~self.held
        if potential is None:
            potential = float(self._value_and_grad(flat, model_kwargs, coords)[0])
        hessian = self._hessian_at(flat, model_kwargs, coords)
        for _ in range(POLISH_STEPS):
            lower = _cholesky(hessian)
            if lower is None:
                break
            grad = np.asarray(self._value_and_grad(flat, model_kwargs, coords)[1], dtype=float)[free]
            step = np.linalg.solve(lower.T, np.linalg.solve(lower, grad))
            for length in (1.0, 0.5, 0.25, 0.125):
                trial = flat.copy()
                trial[free] -= length * step
                new = float(self._value_and_grad(trial, model_kwargs, coords)[0])
                if np.isfinite(new) and new <= potential:
                    flat, potential = trial, new
                    break
            else:
                break
            hessian = self._hessian_at(flat, model_kwargs, coords)
            if np.max(np.abs(length * step)) < 1e-10:
                break
        return _EndPoint(flat, potential, hessian if _cholesky(hessian) is not None else None)


def find_map(model: Callable, model_kwargs: dict, key: jax.Array, starts: int = MAP_STARTS) -> Mode:
    """The posterior modes from ``starts`` L-BFGS-B runs (:class:`ModeFinder`), the best with its Laplace covariance."""
    return ModeFinder(model, model_kwargs, key, starts)(model_kwargs)
