"""Trainable configurations: the posterior's best integer architecture in a family at each budget.

For a law with a data term (``chinchilla``, ``granularity``, ``joint``), a :class:`~bayesmoe.decide.family.Family`
and a training budget C (FLOPs), every candidate is a configuration the trainer can build: integer
``n_layers >= 1``, ``d_model`` a multiple of the head dimension within the family's aspect-ratio range,
``n_heads = d_model / head_dim``, and the law's MoE choices (:func:`law_choices`): experts for the
joint law (top-1, expert width = dense FFN width, the paper's setting), granularity G for the
granularity law (``n_experts = expansion x G`` routed experts of width ``d_ff / G``, top-k = G),
dense only for Chinchilla. Its tokens are ``C / (FLOPs per token)`` under the family's FLOP model,
and its counts follow the trainer's accounting (:func:`bayesmoe.decide.family.account`).

The law is evaluated on each candidate through its own covariates (so its N counts are the fit's:
``n_embedding`` is handed to the law only when the fitted runs carried it). For draws theta_s:

- the **recommended** configuration minimises the expected law loss ``E_s[L_s(x)]`` (the Bayes decision; among
  shapes with the same MoE choice within :data:`TIE` of it, the one nearest the family's preferred aspect ratio);
  ``dense_config`` does so over dense configurations (``n_experts = 1``; for the granularity law its
  dense limit), ``moe_config`` over MoE ones;
- ``expected_regret`` = ``E_s[L_s(x) - L*_s]`` with ``L*_s`` the draw's **continuous optimum**: the
  least loss over the same family with ``d_model`` and ``n_layers`` relaxed to real numbers (``n_layers >= 1``,
  aspect ratio anywhere in the range, same FLOP model); ``p_near_optimal`` = P(``L_s(x) - L*_s <= epsilon L*_s``);
- ``loss``: the posterior predictive band of a new run's loss (the law's mean times the fitted
  observation noise and, for a fit with a learned model-discrepancy term, the law's form error at the
  run's distance past the fitted runs); ``loss_law``: the band of the law's mean alone;
- ``optimal_config_bands``: bands over draws of each draw's own best trainable configuration (d_model,
  n_layers, experts, top-k, granularity, N, N/Na, tokens): how sure the posterior is of each choice. With a
  learned discrepancy term whose tilt was learned, each draw's losses also carry one draw of the tilt across
  the candidates (:meth:`~bayesmoe.inference.discrepancy.Discrepancy.tilt`), so the bands widen with the
  budget's distance past the runs;
- ``p_moe_beats_dense``: P(a run of ``moe_config`` ends below a run of ``dense_config``) under the
  posterior predictive (independent observation noise for the two runs; the form error, common to both at
  one budget, is left out). A published coefficient set has no
  posterior, so no probability: it gives the loss difference of its single point instead.

The search: per choice, the loss along ``n_layers`` (``d_model`` nearest the preferred aspect ratio) finds
a best depth L0 on a thinned posterior; then every (n_layers, d_model) with n_layers in [L0/2, 2 L0] (at
most ``MAX_DEPTHS`` depths and ``MAX_WIDTHS`` widths each) is scored with all draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import BayesMoeError
from ..model import STUDENT_T_NU
from .family import BYTES_PER_VALUE, Family, account, compute_per_token
from .recommend import band

LAWS_WITH_CONFIGS = ("chinchilla", "granularity", "joint")
MAX_DEPTHS = 40
MAX_WIDTHS = 24
SEARCH_DRAWS = 200
RELAXED_POINTS = 160
#: Shapes whose expected loss is within this relative margin of the best are tied (the laws see only parameter
#: counts, not shapes); the tie goes to the shape nearest the family's preferred aspect ratio.
TIE = 5e-4


@dataclass(frozen=True)
class Choice:
    """The MoE part of a configuration: routed experts, routed top-k, granularity (1 for dense)."""

    n_experts: int
    top_k: int
    granularity: int

    @property
    def dense(self) -> bool:
        return self.n_experts == 1


def law_choices(
    law: str, *, expansion: float | None = None, experts_max: float = 64, granularity_max: float = 64
) -> list[Choice]:
    """The MoE choices a law can price (module doc); the dense choice comes first."""
    dense = Choice(1, 1, 1)
    if law == "chinchilla":
        return [dense]
    if law == "joint":
        return [dense] + [Choice(2**k, 1, 1) for k in range(1, int(np.log2(experts_max)) + 1)]
    if law == "granularity":
        if expansion is None:
            raise BayesMoeError("the granularity law's configurations need an expansion rate: pass --expansion E")
        return [dense] + [
            Choice(int(round(expansion * 2**k)), 2**k, 2**k)
            for k in range(int(np.log2(granularity_max)) + 1)
            if expansion * 2**k >= 2
        ]
    raise BayesMoeError(
        f"law '{law}' has no trainable-configuration search; laws with one: {', '.join(LAWS_WITH_CONFIGS)}"
    )


def _widths(family: Family, d_model: np.ndarray, choice: Choice) -> tuple[np.ndarray, np.ndarray]:
    """(d_expert, d_ff) integers: d_ff = G x d_expert, d_expert = round(ffn_mult d / G) >= 1."""
    d_expert = np.maximum(1, np.round(family.ffn_mult * d_model / choice.granularity))
    return d_expert, d_expert * choice.granularity


def configurations(
    family: Family, choice: Choice, n_layers: np.ndarray, d_model: np.ndarray, compute: float
) -> pd.DataFrame:
    """Runs-table rows (SPEC §1 columns, ``n_heads``, ``d_expert``, ``d_ff``) of configurations on ``compute`` FLOPs.

    ``n_layers`` and ``d_model`` are (K,) arrays (integers for trainable ones; reals for the relaxation).
    """
    d_expert, d_ff = _widths(family, d_model, choice)
    counts = account(
        d_model,
        n_layers,
        choice.n_experts,
        choice.top_k,
        0,
        d_expert,
        d_ff,
        vocab_size=family.vocab_size,
        seq_len=family.seq_len,
    )
    per_token = compute_per_token(counts, family.flops)
    frame = pd.DataFrame(
        {
            "d_model": d_model,
            "n_layers": n_layers,
            "n_heads": d_model / family.head_dim,
            "n_experts": float(choice.n_experts),
            "top_k": float(choice.top_k),
            "granularity": float(choice.granularity),
            "n_shared": 0.0,
            "shared_ratio": 0.0,
            "d_expert": d_expert,
            "d_ff": d_ff,
            "n_active": counts["n_active"],
            "n_total": counts["n_total"],
            "n_embedding": counts["n_embedding"],
            "flops_per_token": counts["flops_per_token"],
            "tokens": compute / per_token,
            "compute": compute,
            "memory_bytes": BYTES_PER_VALUE * (counts["n_total"] + counts["n_router"] + counts["n_embedding"]),
        }
    )
    return frame[frame["tokens"] >= 1].reset_index(drop=True)


def _grid(family: Family, n_layers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (n_layers, d_model) with d_model a multiple of head_dim in the aspect range (<= MAX_WIDTHS per depth)."""
    lo, hi = family.aspect_ratio
    h = family.head_dim
    layers, widths = [], []
    for L in n_layers:
        multiples = np.arange(max(1, int(np.ceil(lo * L / h))), int(np.floor(hi * L / h)) + 1)
        if not multiples.size:
            multiples = np.array([max(1, int(round(np.sqrt(lo * hi) * L / h)))])
        if multiples.size > MAX_WIDTHS:
            multiples = np.unique(np.round(np.geomspace(multiples[0], multiples[-1], MAX_WIDTHS)).astype(int))
        layers.append(np.full(multiples.size, L))
        widths.append(multiples * h)
    return np.concatenate(layers).astype(float), np.concatenate(widths).astype(float)


class Evaluator:
    """The law's loss draws on runs-table rows, for fixed parameter draws.

    Args:
        law: the :class:`~bayesmoe.laws.Law`.
        theta: natural-scale parameter draws, name -> (S,) (``sigma`` included for a fit).
        with_embedding: whether the fitted runs carried ``n_embedding`` (else it is not handed to the law).
        likelihood: ``"student_t"`` or ``"normal"``: the noise of the posterior predictive.
        discrepancy: the fit's learned model-discrepancy term (``bayesmoe validate``), or None.
    """

    def __init__(self, law, theta: dict, *, with_embedding: bool, likelihood: str = "student_t", discrepancy=None):
        self.law, self.theta, self.with_embedding, self.likelihood = law, theta, with_embedding, likelihood
        self.discrepancy = discrepancy
        self.n_draws = len(next(iter(theta.values())))

    def log_loss(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        """Mean log loss (S', K) of the law for each row of ``frame`` (draws ``rows``, default all)."""
        if not self.with_embedding:
            frame = frame.drop(columns="n_embedding")
        x = {k: jnp.asarray(v)[None, :] for k, v in self.law.covariates(frame).items()}
        theta = {k: jnp.asarray(v if rows is None else v[rows])[:, None] for k, v in self.theta.items()}
        return np.asarray(self.law.mean_log_loss(theta, x))

    def predictive(self, log_loss: np.ndarray, seed: int, frame: pd.DataFrame | None = None) -> np.ndarray | None:
        """Posterior predictive loss draws (S, K) around ``log_loss``; None without a noise scale (published set).

        With ``frame`` (the K rows) and a discrepancy term, the law's form error at their distance past the
        fitted runs is added too.
        """
        if "sigma" not in self.theta:
            return None
        rng = np.random.default_rng(seed)
        eps = (
            rng.standard_t(STUDENT_T_NU, log_loss.shape)
            if self.likelihood == "student_t"
            else rng.standard_normal(log_loss.shape)
        )
        log_loss = log_loss + self.theta["sigma"][:, None] * eps
        if frame is not None and self.discrepancy is not None:
            log_loss = log_loss + self.discrepancy.noise(frame, rng, log_loss.shape)
        return np.exp(log_loss)


def _best_depth(ev: Evaluator, family: Family, choice: Choice, compute: float, thin: np.ndarray) -> float | None:
    """Depth with the least expected loss along the family's preferred aspect ratio (None: nothing fits the budget)."""
    layers = np.unique(np.round(np.geomspace(1, 8192, 200)))
    widths = family.head_dim * np.maximum(1, np.round(family.preferred_aspect * layers / family.head_dim))
    frame = configurations(family, choice, layers, widths, compute)
    if not len(frame):
        return None
    expected = np.exp(ev.log_loss(frame, thin)).mean(axis=0)
    return float(frame["n_layers"].iloc[int(np.argmin(expected))])


def search(
    ev: Evaluator, family: Family, choices: list[Choice], compute: float, *, memory: float | None = None, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Scored trainable candidates at one budget.

    Returns:
        (candidates, loss, best): the candidate rows (K rows, column ``choice`` indexing ``choices``),
        their law-loss draws (S, K), and each draw's continuous optimum ``L*_s`` (S,).
    """
    rng = np.random.default_rng(seed)
    thin = np.sort(rng.choice(ev.n_draws, min(SEARCH_DRAWS, ev.n_draws), replace=False))
    frames, relaxed_best = [], np.full(ev.n_draws, np.inf)
    for j, choice in enumerate(choices):
        depth = _best_depth(ev, family, choice, compute, thin)
        if depth is None:
            continue
        layers = np.unique(np.round(np.geomspace(max(1.0, depth / 2), 2 * depth + 1, MAX_DEPTHS)))
        frame = configurations(family, choice, *_grid(family, layers), compute)
        if memory is not None:
            frame = frame[frame["memory_bytes"] <= memory]
        frames.append(frame.assign(choice=j))
        relaxed_layers = np.repeat(np.geomspace(max(1.0, depth / 10), 10 * depth, RELAXED_POINTS), 3)
        aspect = np.tile(np.geomspace(*family.aspect_ratio, 3), RELAXED_POINTS)
        relaxed = configurations(family, choice, relaxed_layers, aspect * relaxed_layers, compute)
        if memory is not None:
            relaxed = relaxed[relaxed["memory_bytes"] <= memory]
        if len(relaxed):
            relaxed_best = np.minimum(relaxed_best, np.exp(ev.log_loss(relaxed)).min(axis=1))
    candidates = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if not len(candidates):
        return candidates, np.empty((ev.n_draws, 0)), relaxed_best
    loss = np.exp(ev.log_loss(candidates))
    return candidates, loss, np.minimum(relaxed_best, loss.min(axis=1))


def _config(
    row: pd.Series, loss: np.ndarray, predictive: np.ndarray | None, best: np.ndarray, epsilon: float, prob: float
) -> dict:
    """SPEC ``config`` object of one candidate row with its loss draws (S,)."""
    regret = loss - best
    out = {
        k: int(round(row[k]))
        for k in (
            "d_model",
            "n_layers",
            "n_heads",
            "n_experts",
            "top_k",
            "granularity",
            "n_shared",
            "d_expert",
            "d_ff",
            "tokens",
        )
    }
    out.update({k: float(row[k]) for k in ("n_active", "n_total", "n_embedding", "flops_per_token", "memory_bytes")})
    out["tokens_per_param"] = float(row["tokens"] / row["n_active"])
    out["loss"] = band(predictive if predictive is not None else loss, prob)
    out["loss_law"] = band(loss, prob)
    out["expected_regret"] = float(np.mean(regret))
    out["p_near_optimal"] = float(np.mean(regret <= epsilon * best))
    return out


def recommend_configs(
    ev: Evaluator,
    family: Family,
    choices: list[Choice],
    compute: float,
    *,
    prob: float = 0.9,
    epsilon: float = 0.005,
    memory: float | None = None,
    seed: int = 0,
) -> dict:
    """``config``, ``dense_config``, ``moe_config`` and ``moe_vs_dense`` at one budget (module doc).

    Returns ``{"feasible": False}`` when no configuration of the family fits the budget (and memory).
    """
    candidates, loss, best = search(ev, family, choices, compute, memory=memory, seed=seed)
    if not len(candidates):
        return {"feasible": False}
    expected = loss.mean(axis=0)
    is_dense = np.array([choices[j].dense for j in candidates["choice"]])
    log_loss = np.log(loss)
    out: dict = {}
    picks = {}
    aspect = np.log(candidates["d_model"].to_numpy(float) / candidates["n_layers"].to_numpy(float))
    for key, mask in (("config", np.ones_like(is_dense)), ("dense_config", is_dense), ("moe_config", ~is_dense)):
        if mask.any():
            k = int(np.flatnonzero(mask)[np.argmin(expected[mask])])
            tied = np.flatnonzero(
                mask & (expected <= expected[k] * (1 + TIE)) & (candidates["choice"] == candidates["choice"].iloc[k])
            )
            k = int(tied[np.argmin(np.abs(aspect[tied] - np.log(family.preferred_aspect)))])
            picks[key] = k
            pred = ev.predictive(log_loss[:, [k]], seed + 1 + k, candidates.iloc[[k]])
            out[key] = _config(
                candidates.iloc[k], loss[:, k], None if pred is None else pred[:, 0], best, epsilon, prob
            )
    if candidates["n_layers"].iloc[picks["config"]] <= 1:
        out["edge"] = (
            "the recommended configuration is the family's smallest depth (1 layer): the law prefers a "
            "smaller model on more tokens than the family allows"
        )
    tilted = loss
    if ev.discrepancy is not None:   # the law's form error tilts across the candidates: it moves each draw's best
        tilted = loss * np.exp(ev.discrepancy.tilt(candidates, np.random.default_rng(seed + 7), len(loss)))
    out["optimal_config_bands"] = _bands_of_best(candidates, tilted, prob, family.preferred_aspect)
    if "dense_config" in picks and "moe_config" in picks:
        out["moe_vs_dense"] = _versus(ev, loss, log_loss, picks["moe_config"], picks["dense_config"], prob, seed)
    return out


#: Columns of the per-draw best configuration summarised by :func:`_bands_of_best`.
BAND_COLUMNS = ("d_model", "n_layers", "n_experts", "top_k", "granularity", "n_active", "n_total", "tokens")


def _bands_of_best(candidates: pd.DataFrame, loss: np.ndarray, prob: float, preferred_aspect: float) -> dict:
    """Bands over draws of each draw's own best trainable configuration (S draws of the columns of
    :data:`BAND_COLUMNS` and ``ratio_total_active`` = n_total / n_active): how sure the posterior is of
    the sizes, the expert count and the granularity. Ties (within :data:`TIE`) go to the shape nearest
    ``preferred_aspect``, as for the recommendation."""
    aspect = np.log(candidates["d_model"].to_numpy(float) / candidates["n_layers"].to_numpy(float))
    offset = np.abs(aspect - np.log(preferred_aspect))  # (K,)
    tied = loss <= loss.min(axis=1, keepdims=True) * (1 + TIE)  # (S, K)
    best = candidates.iloc[np.argmin(np.where(tied, offset[None, :], np.inf), axis=1)]
    out = {k: band(best[k].to_numpy(float), prob, "inverted_cdf") for k in BAND_COLUMNS}
    out["ratio_total_active"] = band((best["n_total"] / best["n_active"]).to_numpy(float), prob, "inverted_cdf")
    return out


def _versus(
    ev: Evaluator, loss: np.ndarray, log_loss: np.ndarray, moe: int, dense: int, prob: float, seed: int
) -> dict:
    """P(recommended MoE run beats recommended dense run) under the posterior predictive, and the loss gap."""
    gap = loss[:, dense] - loss[:, moe]
    out = {"loss_dense_minus_moe_law": band(gap, prob)}
    pred_moe, pred_dense = (
        ev.predictive(log_loss[:, [moe]], seed + 1 + moe),
        ev.predictive(log_loss[:, [dense]], seed + 1 + dense),
    )
    if pred_moe is None:
        out["p_moe_beats_dense"] = None
        out["no_posterior"] = (
            "a published coefficient set is one point: no posterior, so no probability; "
            f"the law's loss difference (dense - MoE) is {float(gap[0]):.4g} nats"
        )
    else:
        out["p_moe_beats_dense"] = float(np.mean(pred_moe[:, 0] < pred_dense[:, 0]))
        out["p_moe_beats_dense_law"] = float(np.mean(gap > 0))
    return out
