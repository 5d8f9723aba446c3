"""Prior specifications: a law's defaults, or priors centred on a published coefficient set.

A :class:`Prior` is a Normal on a parameter's latent scale (log for coefficients, linear for
exponents), optionally truncated. ``prior=SET`` centres every parameter on the set's value with
stated widths: sd 0.5 on the log scale for coefficients (a factor of about 1.6) and
``0.25 |value| + 0.01`` for exponents, keeping the law's truncation bounds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpyro.distributions as dist

from ..laws.base import Law, Param

#: sd on the log scale of a coefficient in a prior centred on a published set.
CENTRED_LOG_SD = 0.5
#: sd of an exponent in a prior centred on a published set: relative part and floor.
CENTRED_LINEAR_REL_SD, CENTRED_LINEAR_MIN_SD = 0.25, 0.01


@dataclass(frozen=True)
class Prior:
    """Normal(loc, sd) on a parameter's latent scale, truncated to [low, high] where given."""

    loc: float
    sd: float
    low: float | None = None
    high: float | None = None

    def distribution(self) -> dist.Distribution:
        if self.low is None and self.high is None:
            return dist.Normal(self.loc, self.sd)
        return dist.TruncatedNormal(self.loc, self.sd, low=self.low, high=self.high)

    def text(self, param: Param) -> str:
        return param.prior_text(self.loc, self.sd)


def default_priors(law: Law) -> dict[str, Prior]:
    """The law's weakly-informative default priors, by parameter name."""
    return {p.name: Prior(p.loc, p.sd, p.low, p.high) for p in law.params}


def centred_priors(law: Law, set_name: str) -> dict[str, Prior]:
    """Priors centred on a published coefficient set (widths in the module docstring)."""
    values = law.coefficient_set(set_name).values
    priors = default_priors(law)
    for p in law.params:
        if p.name not in values:
            continue
        v = float(values[p.name])
        if p.scale == "log":
            priors[p.name] = Prior(p.to_latent(v), CENTRED_LOG_SD, p.low, p.high)
        else:
            low = None if p.low is None else min(p.low, v)
            high = None if p.high is None else max(p.high, v)
            priors[p.name] = Prior(v, CENTRED_LINEAR_REL_SD * abs(v) + CENTRED_LINEAR_MIN_SD, low, high)
    return priors
