"""Layer 3, the statistical model: priors, the NumPyro model of a runs table, what the runs identify, simulation.

Imports from :mod:`bayesmoe.runs` and :mod:`bayesmoe.laws` only.
"""
from .identifiability import IdentifiabilityWarning, law_from_meta, prepare
from .numpyro_model import STUDENT_T_NU, ModelSpec, build_model, default_pooled, model_data
from .pooling import PoolingMap, pooling_map, tau_prior_sd
from .priors import Prior, centred_priors, default_priors
from .simulate import law_loss, simulate_runs

__all__ = ["IdentifiabilityWarning", "ModelSpec", "Prior", "STUDENT_T_NU", "build_model", "centred_priors",
           "default_pooled", "default_priors", "law_from_meta", "law_loss", "model_data", "pooling_map", "PoolingMap",
           "prepare", "simulate_runs", "tau_prior_sd"]
