"""Simulated runs tables: draw run configurations, then losses from the model's own likelihood.

Used by the tests (recovery of known parameters), the benchmarks, simulation-based calibration
(``benchmarks/sbc.py``) and, until real runs exist, by the demo (labelled as simulated).

- :func:`simulate_runs`: losses at known parameters. The log loss is drawn from the likelihood of the
  model ``bayesmoe.fit`` samples (:func:`~bayesmoe.model.numpyro_model.build_model`): Student-t
  (nu = 4) around the law's mean with scale ``noise`` (= the model's ``sigma``), or Normal.
- :func:`prior_predictive`: parameters *and* losses drawn from the prior predictive of the model a fit
  of the runs table would sample (:func:`~bayesmoe.model.specify.specify`).

The noise itself is drawn with NumPy from the likelihood's parameters, read off a trace of the model
(:func:`likelihood_of`, :func:`draw_log_loss`): JAX's Student-t sampler compiles a gamma rejection loop,
seconds per process for a handful of numbers.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pandas as pd
from numpyro import handlers
from numpyro.infer import Predictive

from ..config import float64
from ..errors import BayesMoeError
from ..laws import Law, get_law
from ..runs import validate_runs
from .numpyro_model import ModelSpec, build_model, model_data
from .priors import Prior, default_priors
from .specify import specify


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


#: Training tokens of every run in Clark et al. 2022 (249k steps x 524,288 tokens).
CLARK_TOKENS = 1.305e11


def _routing_design(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Routed runs at a fixed training length (Clark et al. 2022): N_act in [1.5e7, 1.3e9], E in {1, 2, ..., 512}."""
    return pd.DataFrame({
        "n_active": _log_uniform(rng, 1.5e7, 1.3e9, n),
        "n_experts": rng.choice([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], n),
        "top_k": np.ones(n, dtype=int),
        "tokens": np.full(n, CLARK_TOKENS),
    })


#: Run-configuration designs per law id: (rng, n_runs) -> runs table without loss.
DESIGNS: dict[str, Callable[[np.random.Generator, int], pd.DataFrame]] = {
    "chinchilla": _dense_design,
    "granularity": _granular_design,
    "joint": _expert_design,
    "routing": _routing_design,
}


@float64
def law_loss(law: str | Law, values: Mapping[str, float], runs: pd.DataFrame) -> np.ndarray:
    """The law's mean loss (nats) at each run of ``runs`` for parameters ``values``; shape (n,)."""
    law = get_law(law)
    x = {k: jnp.asarray(v) for k, v in law.covariates(runs).items()}
    theta = {k: jnp.asarray(float(v)) for k, v in values.items()}
    return np.exp(np.asarray(law.mean_log_loss(theta, x)))


def likelihood_of(model: Callable, point: Mapping[str, jnp.ndarray], model_kwargs: dict) -> dist.Distribution:
    """The distribution of ``log_loss`` in ``model`` at one parameter point (``jax.vmap`` it over draws).

    Args:
        model: a model from :func:`~bayesmoe.model.numpyro_model.build_model`.
        point: every latent sample site (``log_A``, ``alpha``, ``sigma``, ...) at one point.
        model_kwargs: the model's data (:func:`~bayesmoe.model.numpyro_model.model_data`) with a log loss
            (any placeholder: it is not sampled then).

    Returns:
        The likelihood with batch shape (n,): ``StudentT`` or ``Normal`` on log loss.
    """
    trace = handlers.trace(handlers.substitute(handlers.seed(model, 0), dict(point))).get_trace(**model_kwargs)
    return trace["log_loss"]["fn"]


def latent_sites(model: Callable, model_kwargs: dict) -> list[str]:
    """Names of the model's sampled (not observed) sites: what fixes every other site given the data."""
    trace = handlers.trace(handlers.seed(model, 0)).get_trace(**model_kwargs)
    return [name for name, site in trace.items() if site["type"] == "sample" and not site["is_observed"]]


def draw_log_loss(fn: dist.Distribution, rng: np.random.Generator) -> np.ndarray:
    """One log-loss draw from each element of ``fn`` (a ``StudentT`` or ``Normal``, any batch shape), with NumPy."""
    loc, scale = np.asarray(fn.loc), np.asarray(fn.scale)
    if isinstance(fn, dist.StudentT):
        return loc + scale * rng.standard_t(np.asarray(fn.df), loc.shape)
    if isinstance(fn, dist.Normal):
        return loc + scale * rng.standard_normal(loc.shape)
    raise BayesMoeError(f"cannot draw log loss from a {type(fn).__name__} likelihood; expected StudentT or Normal")


def _design(law: Law, n_runs: int, rng: np.random.Generator, design: pd.DataFrame | None) -> pd.DataFrame:
    """Run configurations with ``run_id`` (``sim<i>``): ``design``, or ``n_runs`` from the law's default design."""
    if design is None:
        if law.name not in DESIGNS:
            raise BayesMoeError(f"no default run design for law '{law.name}'; pass design= (a runs table without loss)")
        design = DESIGNS[law.name](rng, n_runs)
    runs = design.reset_index(drop=True).copy()
    if "run_id" not in runs.columns:
        runs.insert(0, "run_id", [f"sim{i}" for i in range(len(runs))])
    return runs


@float64
def simulate_runs(
    law: str | Law,
    values: Mapping[str, float],
    n_runs: int,
    *,
    noise: float = 0.01,
    likelihood: str = "student_t",
    seed: int = 0,
    design: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A runs table with losses drawn from the model's likelihood at known parameters.

    Args:
        law: law id or :class:`Law`.
        values: natural-scale parameters (e.g. a published set's ``values``); entries naming the law's
            constants (e.g. the joint law's ``E_start``) replace them.
        n_runs: number of runs (ignored when ``design`` is given).
        noise: the likelihood's scale ``sigma`` on log loss (0.01 is about 1%; 0 gives the law's mean).
        likelihood: ``"student_t"`` (nu = 4, as ``bayesmoe.fit`` assumes by default) or ``"normal"``.
        seed: random seed for configurations and noise.
        design: run configurations to use instead of the law's default design (docs/runs-table.md columns).

    Returns:
        The design with ``run_id`` (``sim<i>``, unless the design has one) and ``loss`` (nats), one row per run.
    """
    law = get_law(law)
    if not float(noise) >= 0:
        raise BayesMoeError(f"simulate_runs: noise must be >= 0 (the likelihood's scale on log loss), got {noise}")
    missing = [name for name in law.param_names if name not in values]
    if missing:
        raise BayesMoeError(f"simulate_runs: law '{law.name}' needs values for {', '.join(missing)}")
    constants = {k: float(values.get(k, v)) for k, v in law.constants.items()}
    law = dataclasses.replace(law, constants=constants)
    rng = np.random.default_rng(seed)
    runs = _design(law, n_runs, rng, design)
    model = build_model(ModelSpec(law=law, priors=default_priors(law), likelihood=likelihood))
    kwargs = model_data(law, runs.assign(loss=1.0))
    point = {p.latent: jnp.asarray(p.to_latent(float(values[p.name]))) for p in law.params}
    # the likelihood is a location-scale family: draw it at scale 1, then scale (noise = 0 is allowed)
    point["sigma"] = jnp.asarray(1.0)
    fn = likelihood_of(model, point, kwargs)
    mean = np.asarray(fn.loc)
    runs["loss"] = np.exp(mean + float(noise) * (draw_log_loss(fn, rng) - mean))
    return runs


@float64
def prior_predictive(
    law: str | Law,
    design: pd.DataFrame,
    *,
    draws: int = 1,
    group: str | None = None,
    pool: Iterable[str] = (),
    prior: str | Mapping[str, Prior] | None = None,
    likelihood: str = "student_t",
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Draws of parameters and losses from the prior predictive of the model ``bayesmoe.fit`` would sample.

    Args:
        law: law id or :class:`Law`.
        design: run configurations (a runs table; ``loss`` is not needed and is ignored).
        draws: number of prior-predictive draws S.
        group, pool, prior, likelihood: as for ``bayesmoe.fit`` (they choose the model).
        seed: random seed.

    Returns:
        (sites, runs): every sample and deterministic site of the model, arrays (S, ...) on the natural
        scale (``sites["log_loss"]``: (S, n) log nats), and the validated design the model saw (n rows,
        with ``run_id``).
    """
    law = get_law(law)
    runs = _design(law, 0, np.random.default_rng(seed), design.drop(columns="loss", errors="ignore"))
    runs = validate_runs(runs, required=law.required_columns, law=law.name, require_loss=False, what="design")
    specified = specify(law, runs, group=group, pool=pool, prior=prior, likelihood=likelihood)
    model = build_model(specified.spec)
    kwargs = model_data(specified.spec.law, runs.assign(loss=1.0), group_index=specified.group_index)
    # conditioning on a placeholder log loss draws the parameters alone; the noise is drawn below in NumPy
    conditioned = handlers.condition(model, {"log_loss": kwargs["log_loss"]})
    sites = Predictive(conditioned, num_samples=int(draws), parallel=True)(jax.random.PRNGKey(seed), **kwargs)
    sites = {k: np.asarray(v) for k, v in sites.items() if k != "log_loss"}
    latent = {k: jnp.asarray(sites[k]) for k in latent_sites(model, kwargs)}
    fn = jax.vmap(lambda point: likelihood_of(model, point, kwargs))(latent)
    sites["log_loss"] = draw_log_loss(fn, np.random.default_rng(seed))
    return sites, runs
