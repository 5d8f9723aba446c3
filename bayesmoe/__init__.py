"""bayesmoe: Bayesian scaling-law inference for Mixture-of-Experts language models.

Public API::

    runs = bayesmoe.load_runs("runs.csv")            # validated runs table (SPEC §1)
    fit = bayesmoe.fit(runs, law="joint", group="group")
    fit.summary(); fit.predict(new_runs); fit.save("fit.nc")
    fit = bayesmoe.load_fit("fit.nc")
    bands = bayesmoe.optimum(fit, [1e21, 1e23])     # draws of the optimal configuration per budget
    bayesmoe.recommend(fit, [1e21]); bayesmoe.compare([fit_a, fit_b]); bayesmoe.report(fit, "out/")
    bayesmoe.design(fit, "candidates.csv", target="n_active", at_compute=1e21, select=3)
    bayesmoe.datasets.load("clark2022_routing")
"""
import os

import jax

jax.config.update("jax_enable_x64", True)
# Compiled samplers are cached on disk (a fit's programs depend only on the model and data shapes),
# so a repeat fit skips XLA compilation. BAYESMOE_JAX_CACHE overrides the folder; "" turns it off.
_CACHE = os.environ.get("BAYESMOE_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "bayesmoe", "jax"))
if _CACHE and jax.config.jax_compilation_cache_dir is None:
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

from .errors import BayesMoeError  # noqa: E402
from .fit import Fit, FitWarning, fit, load_fit  # noqa: E402
from .laws import all_laws, get_law, law_names  # noqa: E402
from .runs import load_runs  # noqa: E402

__version__ = "0.1.0"
#: Callable sub-modules, imported on first use (``bayesmoe.report(...)`` loads matplotlib only then).
_LAZY = ("optimum", "recommend", "compare", "report", "design", "datasets", "holdout", "simulate")
__all__ = ["BayesMoeError", "Fit", "FitWarning", "fit", "load_fit", "load_runs", "get_law", "all_laws", "law_names", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'bayesmoe' has no attribute '{name}'")
