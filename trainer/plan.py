"""isoFLOP designs: which (architecture, tokens) pairs to train at each compute budget, and the recipe
(batch size, learning rate, steps) of each run.

Recipe (DeepSeek LLM, arXiv 2401.02954, Eq. 1, fitted compute-optimal hyperparameters, C in FLOPs):
  peak learning rate  eta = 0.3118 C^-0.125
  batch size (tokens)  B  = 0.2920 C^0.3271, rounded to whole sequences, at least ``MIN_BATCH_SEQS``
with C the run's own training compute M x D. Schedule: linear warm-up over the first 5% of steps to eta,
then cosine decay to 0.1 eta at the last step (the Chinchilla recipe: one cosine cycle matched to the run
length). AdamW, betas (0.9, 0.95), weight decay 0.1, gradient clipping at 1.0.

A design (``isoflop_design``) crosses model families (expansion E0, granularity G, shared ratio S) with a
ladder of shapes (d_model, n_layers); for each budget and family it keeps the shapes whose
tokens-per-active-parameter D/Na lies in [``MIN_TPP``, ``MAX_TPP``], picks up to ``sizes_per_family`` of
them spread evenly in log N, and sets D = budget / M. Rows of a runs table (SPEC §1, no loss) come out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import ConfigError, ModelConfig, default_heads, moe_config
from .flops import account

FFN_MULT = 4
MIN_BATCH_SEQS = 8
MIN_STEPS = 30
MIN_TPP, MAX_TPP = 2.5, 100.0
SHAPES = ((16, 2), (24, 2), (32, 2), (48, 2), (64, 2), (64, 3), (96, 3), (128, 4))
FAMILIES = ((1, 1, 0.0), (8, 1, 0.0), (4, 1, 0.0), (8, 4, 0.0), (16, 1, 0.0), (8, 2, 0.0), (4, 4, 0.25))
"""(expansion, granularity, shared_ratio), in the order a budget's families are taken."""

#: columns a --plan file must have (the architecture and the tokens of each run)
PLAN_REQUIRED = ("n_experts", "top_k", "granularity", "shared_ratio", "d_model", "n_layers", "tokens")


class PlanError(ValueError):
    """A design that cannot be trained (message names the column or row at fault)."""


@dataclass(frozen=True)
class Recipe:
    batch_seqs: int
    steps: int
    lr: float
    warmup_steps: int

    @property
    def final_lr_fraction(self) -> float:
        return 0.1


def recipe(compute: float, tokens: float, seq_len: int) -> Recipe:
    """Batch size, steps and peak learning rate for a run of ``compute`` FLOPs over ``tokens`` tokens."""
    batch = max(MIN_BATCH_SEQS, round(0.2920 * compute ** 0.3271 / seq_len))
    steps = max(1, math.ceil(tokens / (batch * seq_len)))
    return Recipe(batch_seqs=batch, steps=steps, lr=0.3118 * compute ** -0.125,
                  warmup_steps=max(1, round(0.05 * steps)))


def lr_at(step: int, r: Recipe) -> float:
    """Learning rate at 0-based ``step``: linear warm-up, then cosine from lr to 0.1 lr."""
    if step < r.warmup_steps:
        return r.lr * (step + 1) / r.warmup_steps
    span = max(1, r.steps - 1 - r.warmup_steps)
    frac = min(1.0, (step - r.warmup_steps) / span)
    floor = r.final_lr_fraction
    return r.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))


def config_from_row(row: dict, vocab_size: int, seq_len: int) -> ModelConfig:
    """The architecture of a runs-table row (columns ``PLAN_REQUIRED``; ``n_heads`` optional)."""
    n_experts, top_k, g = int(row["n_experts"]), int(row["top_k"]), int(row["granularity"])
    s = float(row["shared_ratio"])
    if not 0 <= s < 1:
        raise ConfigError(f"shared_ratio {s} is not in [0, 1)")
    n_shared_f = s * top_k / (1 - s)
    n_shared = round(n_shared_f)
    if abs(n_shared - n_shared_f) > 1e-6:
        raise ConfigError(f"shared_ratio {s} with top_k {top_k} gives {n_shared_f:g} shared experts, "
                          f"not an integer")
    d = int(row["d_model"])
    heads = row.get("n_heads")
    heads = int(heads) if heads is not None and not _missing(heads) else default_heads(d)
    return ModelConfig(vocab_size, seq_len, d, int(row["n_layers"]), heads, FFN_MULT * d,
                       n_experts=n_experts, top_k=top_k, n_shared=n_shared, granularity=g)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def run_row(cfg: ModelConfig, tokens: float, *, seed: int, group: str, run_id: str | None = None,
            budget: float | None = None, given: Recipe | None = None) -> dict:
    """A complete plan row: SPEC §1 columns (no loss) plus the recipe and architecture extras.

    ``given`` replaces the recipe (then ``tokens`` = its steps x batch); ``tokens`` is rounded up to
    whole steps otherwise, and the row's ``tokens`` and ``compute`` are what is actually trained.
    """
    acc = account(cfg)
    r = given or recipe(acc.flops_per_token * tokens, tokens, cfg.seq_len)
    trained = r.steps * r.batch_seqs * cfg.seq_len
    rid = run_id or (f"E{cfg.n_experts}-k{cfg.top_k}-s{cfg.n_shared}-G{cfg.granularity}-d{cfg.d_model}"
                     f"-L{cfg.n_layers}-D{trained}-seed{seed}")
    return {"run_id": rid, "group": group, "tokens": trained, "n_active": acc.n_active,
            "n_total": acc.n_total, "n_embedding": acc.n_embedding, "n_experts": cfg.n_experts,
            "top_k": cfg.top_k, "granularity": cfg.granularity, "shared_ratio": cfg.shared_ratio,
            "d_model": cfg.d_model, "n_layers": cfg.n_layers, "flops_per_token": acc.flops_per_token,
            "compute": acc.flops_per_token * trained, "seed": seed, "budget": budget if budget else "",
            "n_heads": cfg.n_heads, "n_shared": cfg.n_shared, "d_expert": cfg.d_expert,
            "n_router": acc.n_router, "six_na": acc.six_na, "vocab_size": cfg.vocab_size,
            "seq_len": cfg.seq_len, "batch_seqs": r.batch_seqs, "steps": r.steps, "lr": r.lr,
            "warmup_steps": r.warmup_steps}


def isoflop_design(budgets: list[float], *, runs_per_budget: list[int] | None = None, sizes_per_family: int = 3,
                   seed: int = 0, group: str = "trainer", vocab_size: int = 2048, seq_len: int = 64) -> list[dict]:
    """The isoFLOP grid (see the module docstring). ``runs_per_budget``: one cap for all budgets or one
    per budget; rows are taken size-round by size-round over ``FAMILIES``, so every family gets its
    middle size before any family gets a second one (see ``_spread`` for the order of sizes)."""
    caps = list(runs_per_budget or [None])
    if len(caps) not in (1, len(budgets)):
        raise PlanError(f"--runs-per-budget takes 1 value or one per budget ({len(budgets)}), got {len(caps)}")
    caps = caps * len(budgets) if len(caps) == 1 else caps
    rows = []
    for budget, cap in zip(budgets, caps):
        if not budget > 0:
            raise PlanError(f"budget must be > 0, got {budget}")
        per_family = []
        for expansion, g, s in FAMILIES:
            cands = []
            for d, n_layers in SHAPES:
                cfg = moe_config(vocab_size=vocab_size, seq_len=seq_len, d_model=d, n_layers=n_layers,
                                 expansion=expansion, granularity=g, shared_ratio=s, ffn_mult=FFN_MULT)
                acc = account(cfg)
                tokens = budget / acc.flops_per_token
                r = recipe(budget, tokens, seq_len)
                if MIN_TPP <= tokens / acc.n_active <= MAX_TPP and r.steps >= MIN_STEPS:
                    cands.append((cfg, tokens))
            per_family.append(_spread(cands, sizes_per_family))
        order = [c for i in range(sizes_per_family) for fam in per_family if i < len(fam) for c in [fam[i]]]
        for cfg, tokens in order[:cap]:
            rows.append(run_row(cfg, tokens, seed=seed, group=group, budget=budget))
    if not rows:
        raise PlanError("no shape of the ladder fits these budgets; try budgets between 1e10 and 1e13")
    return rows


def _spread(cands: list, k: int) -> list:
    """Up to k candidates (ordered by size) evenly spread in log N: the middle one first, then the others
    from the largest down, so a capped budget loses its smallest, most token-hungry models first."""
    if len(cands) <= k:
        picked = cands
    else:
        picked = [cands[i] for i in sorted(set(np.linspace(0, len(cands) - 1, k).round().astype(int)))]
    mid = len(picked) // 2
    return [picked[mid]] + [c for i, c in reversed(list(enumerate(picked))) if i != mid]
