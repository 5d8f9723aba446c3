"""Sampling coordinates: exact inverses and Jacobians, NumPyro's bijections, and an unchanged posterior."""
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from scipy import stats

import bayesmoe
from bayesmoe.inference import ModeFinder, coordinates
from bayesmoe.inference.coordinates import IDENTITY, INTERVAL, LOWER, UPPER, Coordinates
from bayesmoe.inference.draws import Settings
from bayesmoe.inference.nuts import run_nuts
from bayesmoe.model import ModelSpec, build_model
from bayesmoe.model.priors import default_priors
from bayesmoe.model.simulate import simulate_runs

#: one element of each kind: interval [0, 2], lower at 0, upper at 1, identity, interval [-2, 0].
BOUNDS = [(0.0, 2.0), (0.0, np.inf), (-np.inf, 1.0), (-np.inf, np.inf), (-2.0, 0.0)]
MIXED = Coordinates(
    np.array([INTERVAL, LOWER, UPPER, IDENTITY, INTERVAL], dtype=np.int32),
    np.array([0.0, 0.0, 0.0, 0.0, -2.0]),
    np.array([2.0, 1.0, 1.0, 1.0, 0.0]),
    np.array([0.02, 0.01, 0.05, 1.0, 0.015]),
)


@pytest.mark.parametrize("spread", [0.01, 1.0, 5.0, 25.0])
def test_from_z_inverts_to_z_and_log_det_is_the_jacobian(spread):
    z = np.random.default_rng(0).normal(0.0, spread, (20, 5))
    for row in z:
        w = MIXED.from_z(row)
        back, log_det = MIXED.to_z(jnp.asarray(w))
        assert np.allclose(np.asarray(back), row, rtol=1e-9, atol=1e-9)
        jacobian = jax.jacfwd(lambda v: MIXED.to_z(v)[0])(jnp.asarray(w))
        assert float(log_det) == pytest.approx(np.linalg.slogdet(np.asarray(jacobian))[1], abs=1e-8)


def test_values_follow_numpyro_bijections_stay_in_bounds_and_are_linear_inside():
    supports = {0: constraints.interval(0.0, 2.0), 1: constraints.greater_than(0.0), 2: constraints.less_than(1.0),
                4: constraints.interval(-2.0, 0.0)}
    # w ranges that reach a few softness widths past each bound without rounding x onto it
    ranges = {0: (-0.1, 2.1), 1: (-0.05, 3.0), 2: (-3.0, 0.25), 4: (-0.1, 2.05)}
    for i, support in supports.items():
        w = np.linspace(*ranges[i], 601)
        points = np.zeros((w.size, 5))
        points[:, i] = w
        z = np.stack([np.asarray(MIXED.to_z(jnp.asarray(p))[0]) for p in points])[:, i]
        x = np.asarray(biject_to(support)(jnp.asarray(z)))
        lo, hi = BOUNDS[i]
        assert np.all((x > lo) & (x < hi)), i
        assert np.all(np.diff(x) > 0), i
        # more than 5 softness widths inside the bounds the map has slope 1 (x = w + const)
        inside = (x - lo > 5 * MIXED.width[i]) & (hi - x > 5 * MIXED.width[i])
        slope = np.diff(x)[inside[1:]] / np.diff(w)[inside[1:]]
        assert inside.sum() > 400 and np.allclose(slope, 1.0, atol=0.01), i
    assert float(MIXED.to_z(jnp.asarray([0.3, 0.3, -0.3, 1.7, 0.3]))[0][3]) == 1.7


def test_far_tails_have_finite_values_and_gradients():
    for v in (-40.0, -5.0, 5.0, 40.0):
        z, log_det = MIXED.to_z(jnp.full(5, v))
        grad = jax.grad(lambda w: jnp.sum(MIXED.to_z(w)[0]) + MIXED.to_z(w)[1])(jnp.full(5, v))
        assert np.all(np.isfinite(np.asarray(z))) and np.isfinite(float(log_det)), v
        assert np.all(np.isfinite(np.asarray(grad))), v


def test_models_mark_truncated_exponents_and_the_irreducible_loss():
    law = bayesmoe.get_law("granularity")
    runs = simulate_runs("granularity", law.coefficient_set("krajewski2024").values, 30, noise=0.01, seed=0)
    x = {k: jnp.asarray(v) for k, v in law.covariates(runs).items()}
    kwargs = {
        "x": x,
        "group_index": jnp.zeros(len(runs), jnp.int32),
        "log_loss": jnp.log(jnp.asarray(runs["loss"].to_numpy())),
    }
    z = {p.latent: jnp.zeros(()) for p in law.params} | {"sigma": jnp.zeros(())}
    names = sorted(z)
    marks = coordinates.marks(build_model(ModelSpec(law, default_priors(law))), kwargs, z)
    # alpha, beta, gamma are truncated to intervals; c may be sampled on its natural scale (lower bound 0)
    assert {n for n, k in zip(names, marks.kind) if k == INTERVAL} == {"alpha", "beta", "gamma"}
    assert [n for n, natural in zip(names, marks.natural) if natural] == ["log_c"]
    # pooled across groups, c's population mean keeps its log scale
    pooled = ModelSpec(law, default_priors(law), groups=("a", "b"), pooled=("c",))
    z_pooled = {k: v for k, v in z.items() if k != "log_c"} | {
        "log_c_tau": jnp.zeros(()), "log_c_mean": jnp.zeros(()), "log_c_shift": jnp.zeros(()), "log_c_z": jnp.zeros(1)}
    marks = coordinates.marks(build_model(pooled), kwargs, z_pooled)
    assert not marks.natural.any() and marks.kind[sorted(z_pooled).index("log_c_mean")] == IDENTITY
    # the between-group scale is the one coordinate the mode search holds
    assert [n for n, held in zip(sorted(z_pooled), marks.pooling_scale) if held] == ["log_c_tau"]


def test_adapt_sets_widths_from_the_laplace_sds_and_keeps_vague_levels_on_the_log_scale():
    marks = coordinates.Marks(
        np.array([INTERVAL, LOWER, LOWER, IDENTITY], dtype=np.int32),
        np.array([0.0, 0.0, 0.0, 0.0]),
        np.array([2.0, 1.0, 1.0, 1.0]),
        np.array([False, True, True, False]),
        np.zeros(4, dtype=bool),
    )
    z_mode = np.array([np.log(0.1 / 1.9), np.log(0.4), np.log(0.4), 3.0])
    cov = np.diag([0.05, 0.3, 0.8, 1.0]) ** 2
    coords = coordinates.adapt(marks, z_mode, cov)
    # interval: x = 0.1 with dx/dz = 2 p (1 - p), p = 0.05: sd of x = 0.05 * 0.095
    assert coords.width[0] == pytest.approx(0.05 * 2 * 0.05 * 0.95)
    assert coords.kind.tolist() == [INTERVAL, LOWER, IDENTITY, IDENTITY]
    assert coords.width[1] == pytest.approx(coordinates.NATURAL_WIDTH * 0.4)


def _prior_only_model():
    numpyro.sample(
        "alpha", dist.TruncatedNormal(0.1, 0.2, low=0.0, high=2.0), infer={"soft_bounds": True}
    )  # piled at 0
    numpyro.sample(
        "beta", dist.TruncatedNormal(0.3, 0.02, low=0.0, high=2.0), infer={"soft_bounds": True}
    )  # clear of 0
    numpyro.sample("log_c", dist.Normal(np.log(0.4), 0.2), infer={"natural_scale": True})   # sampled as c
    numpyro.sample("log_e", dist.Normal(0.0, 1.0), infer={"natural_scale": True})   # too vague: stays log


def test_sampling_in_soft_coordinates_leaves_the_distribution_unchanged():
    """NUTS in w on a prior-only model must reproduce the priors: a wrong Jacobian would shift them."""
    mode = ModeFinder(_prior_only_model, {}, jax.random.PRNGKey(0))({})
    assert mode.coordinates.kind.tolist() == [INTERVAL, INTERVAL, LOWER, IDENTITY]   # alpha, beta, log_c, log_e
    draws = run_nuts(_prior_only_model, {}, Settings(chains=2, warmup=500, draws=2000, seed=1, progress_bar=False))
    truncated = {"alpha": (0.1, 0.2), "beta": (0.3, 0.02)}
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        for name, (loc, sd) in truncated.items():
            exact = stats.truncnorm.ppf(q, -loc / sd, (2.0 - loc) / sd, loc=loc, scale=sd)
            assert np.quantile(draws.sites[name], q) == pytest.approx(exact, abs=0.15 * sd), (name, q)
        assert np.quantile(draws.sites["log_c"], q) == pytest.approx(stats.norm.ppf(q, np.log(0.4), 0.2), abs=0.03), q
        assert np.quantile(draws.sites["log_e"], q) == pytest.approx(stats.norm.ppf(q), abs=0.12), q
    assert draws.stats["diverging"].sum() == 0
    # every chain samples with the same (smallest adapted) step size
    assert np.all(draws.stats["step_size"] == draws.stats["step_size"].min())
