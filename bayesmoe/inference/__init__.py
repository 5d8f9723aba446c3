"""Layer 4, inference: fitting a law to runs (NUTS or the Laplace approximation) and the fits it returns.

Imports from :mod:`bayesmoe.runs`, :mod:`bayesmoe.laws` and :mod:`bayesmoe.model`. ArviZ is called
only in :mod:`.arviz_io` (the InferenceData boundary: building, saving, loading, diagnostics, LOO).
``docs/sampling.md`` describes how a fit runs.
"""
from .fitted import Fit, FitWarning, load_fit
from .fitting import METHODS, fit
from .laplace import laplace_fit
from .mode import Mode, ModeFinder, find_map

__all__ = ["Fit", "FitWarning", "METHODS", "Mode", "ModeFinder", "find_map", "fit", "laplace_fit", "load_fit"]
