"""The model a fit samples for a runs table: law after reductions, priors, groups and pooled terms.

:func:`specify` is the one place that turns ``bayesmoe.fit``'s arguments and a validated runs table into
a :class:`~bayesmoe.model.numpyro_model.ModelSpec`; the fit, the prior predictive and simulation-based
calibration (``benchmarks/sbc.py``) all go through it, so they sample the same model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import BayesMoeError
from ..laws import Law
from ..runs import group_labels
from .identifiability import prepare
from .numpyro_model import ModelSpec, default_pooled
from .priors import Prior, centred_priors, default_priors


@dataclass(frozen=True)
class Specified:
    """What :func:`specify` decided.

    Attributes:
        spec: the model (its ``law`` is the law sampled, after any reduction for constant columns).
        group_index: int array (n,) of each run's position in ``spec.groups`` (-1: a run shared by every
            group, e.g. the dense runs of a pooled routing fit; all 0 without pooling).
        reduction: the identifiability record for the metadata (None when nothing changed).
        prior_set: the published set the priors are centred on, or None.
    """

    spec: ModelSpec
    group_index: np.ndarray
    reduction: dict | None
    prior_set: str | None


def group_index(frame: pd.DataFrame, column: str | None, groups: tuple[str, ...]) -> np.ndarray:
    """Positions of each run's group in ``groups``, int32 (n,); -1 for a label not in ``groups``."""
    if not column:
        return np.zeros(len(frame), dtype=np.int32)
    position = {g: i for i, g in enumerate(groups)}
    return np.array([position.get(g, -1) for g in group_labels(frame, column)], dtype=np.int32)


def check_enough_runs(law: Law, frame: pd.DataFrame, source: str) -> None:
    """Raise when the table has fewer runs than ``law`` has sampled parameters (nothing to fit then).

    Args:
        law: the requested law (before any reduction: a one-row table makes every covariate constant).
        frame: the runs left after selection and hold-out.
        source: where the runs came from, for the message (a path or ``"DataFrame"``).
    """
    if len(frame) < len(law.params):
        raise BayesMoeError(
            f"runs table '{source}': {len(frame)} run(s) after selection, but law '{law.name}' samples "
            f"{len(law.params)} parameters ({', '.join(law.param_names)}); a fit needs at least {len(law.params)} runs")


def specify(
    law: Law,
    frame: pd.DataFrame,
    *,
    group: str | None = None,
    pool: Iterable[str] = (),
    prior: str | Mapping[str, Prior] | None = None,
    likelihood: str = "student_t",
) -> Specified:
    """The model ``bayesmoe.fit`` samples for ``frame`` (arguments as there; ``frame`` validated).

    Raises:
        BayesMoeError: a ``group`` column that is missing or has a single group, or a constant covariate
            the law cannot do without (see :func:`bayesmoe.model.prepare`).
    """
    labels = group_labels(frame, group) if group else None  # raises, naming a missing column
    law, shared, reduction = prepare(law, frame, group=group, prior=prior)  # shared: rows in no group
    groups: tuple[str, ...] = ()
    if group:
        groups = tuple(sorted(np.unique(labels[~shared])))
        if len(groups) < 2:
            raise BayesMoeError(
                f"--group column '{group}' has a single value {groups[0]!r}; partial pooling needs at least 2 groups"
            )
    if isinstance(prior, str):
        priors, prior_set = centred_priors(law, prior), law.coefficient_set(prior).name
    else:
        priors, prior_set = {**default_priors(law), **(prior or {})}, None
    pooled = tuple(dict.fromkeys([*default_pooled(law), *pool])) if groups else ()
    spec = ModelSpec(law=law, priors=priors, likelihood=likelihood, groups=groups, pooled=pooled)
    return Specified(spec, group_index(frame, group, groups), reduction, prior_set)
