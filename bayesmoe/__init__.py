"""bayesmoe: Bayesian scaling-law inference for Mixture-of-Experts language models.

Public API::

    runs = bayesmoe.load_runs("runs.csv")            # validated runs table (docs/runs-table.md)
    fit = bayesmoe.fit(runs, law="joint", group="group")
    fit.summary(); fit.predict(new_runs); fit.save("fit.nc")
    fit = bayesmoe.load_fit("fit.nc")
    bands = bayesmoe.optimum(fit, [1e21, 1e23])     # draws of the optimal configuration per budget
    bayesmoe.recommend(fit, [1e21]); bayesmoe.compare([fit_a, fit_b]); bayesmoe.report(fit, "out/")
    bayesmoe.design(fit, "candidates.csv", target="n_active", at_compute=1e21, select=3)
    bayesmoe.datasets.load("clark2022_routing")

Importing bayesmoe sets nothing process-wide; :func:`configure` turns on JAX's float64 arithmetic and
its compilation cache for the whole process (the ``bayesmoe`` command calls it).

The package is built in layers, each importing only from those above it in this list:
:mod:`bayesmoe.runs` -> :mod:`bayesmoe.laws` -> :mod:`bayesmoe.model` -> :mod:`bayesmoe.inference` ->
:mod:`bayesmoe.decide` -> :mod:`bayesmoe.report` -> :mod:`bayesmoe.cli` (:mod:`bayesmoe.errors` and
:mod:`bayesmoe.config` underneath all). ``bayesmoe.report`` here is the function; its layer's modules
import as ``from bayesmoe.report import html``.
"""
from .config import configure
from .decide import holdout
from .decide.compare import compare
from .decide.design import design
from .decide.optimum import optimum
from .decide.recommend import recommend
from .errors import BayesMoeError
from .inference import Fit, FitWarning, fit, load_fit
from .laws import all_laws, get_law, law_names, register_law
from .model import simulate as simulate
from .model import simulate_runs
from .report import report
from .runs import datasets, load_runs

__version__ = "0.1.0"
__all__ = [
    "BayesMoeError", "Fit", "FitWarning", "all_laws", "compare", "configure", "datasets", "design", "fit", "get_law",
    "holdout", "law_names", "load_fit", "load_runs", "optimum", "recommend", "register_law", "report", "simulate",
    "simulate_runs",
]
