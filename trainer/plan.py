"""isoFLOP designs: which (architecture, tokens) pairs to train at each compute budget, and the recipe
(batch size, learning rate, steps) of each run.

Budgets are real training FLOPs: C = M_real x tokens with M_real = M + 6 V d (every matmul including the
output head, plus attention; ``trainer.flops``). A design crosses model families (expansion E, granularity
G, shared ratio S; ``FAMILIES``) with the shape ladder ``SHAPES``; for each (budget, family) it picks
``sizes`` shapes whose n_active are spaced geometrically over ``span`` (default 5 sizes over 10x), centred
on the current estimate of the compute-optimal n_active: the Chinchilla rule of thumb (``CHINCHILLA_TPP``
= 20 tokens per active parameter) at first, then a fit of the runs already finished (``trainer.centre``).
Tokens D = budget / M_real, rounded up to whole steps.

Recipe (DeepSeek LLM, arXiv 2401.02954, Eq. 1, fitted compute-optimal hyperparameters, C in FLOPs):
  peak learning rate  eta = 0.3118 C^-0.125
  batch size (tokens)  B  = 0.2920 C^0.3271, rounded to whole sequences, at least ``MIN_BATCH_SEQS``
with C the run's budget. Schedule: linear warm-up over the first 5% of steps to eta, then cosine decay to
0.1 eta at the last step (one cosine cycle matched to the run length). AdamW, betas (0.9, 0.95), weight
decay 0.1, gradient clipping at 1.0. Rows are runs-table rows (docs/runs-table.md) without ``loss``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import ConfigError, ModelConfig, default_heads, moe_config
from .flops import Accounting, account

FFN_MULT = 4
MIN_BATCH_SEQS = 2
MIN_STEPS = 30
DEFAULT_VOCAB = 257
DEFAULT_SEQ_LEN = 128
CHINCHILLA_TPP = 20.0
SIZES, SPAN = 5, 10.0
FLOP_CONVENTION = "real: compute = (flops_per_token + 6 V d) x tokens; flops_per_token = M (DeepSeek, non-embedding)"

D_MODELS = (8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)
N_LAYERS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48)
MIN_ASPECT, MAX_ASPECT = 4, 128


def _dense_n_active(d: int, n_layers: int) -> int:
    return n_layers * (4 * d * d + 2 * d + 3 * d * FFN_MULT * d) + d


SHAPES = tuple(sorted(((d, n) for d in D_MODELS for n in N_LAYERS if MIN_ASPECT <= d / n <= MAX_ASPECT
                       or (d <= 16 and n <= 2)), key=lambda s: (_dense_n_active(*s), s)))
"""The shape ladder (d_model, n_layers): d 8-4096, 1-48 layers, aspect d / L in [4, 128], about 1e3 to 1e10
non-embedding parameters (dense n_active; a family's n_active is the same, its activated FFN is one dense FFN
wide), sorted by size."""

FAMILIES = ((1, 1, 0.0), (8, 2, 0.0), (8, 4, 0.0), (4, 4, 0.25))
"""(expansion E, granularity G, shared_ratio S), in the order a capped budget keeps them: dense; 16 experts
top-2; 32 experts top-4; 16 experts top-3 plus one shared expert."""

Family = tuple[int, int, float]
Centre = Callable[[float, Family], "float | None"]

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


def preferred_aspect(n_active: float) -> float:
    """d_model / n_layers the ladder prefers at this size: 8 at 5e4 parameters, growing as N^0.25 to 128."""
    return float(np.clip(8.0 * (n_active / 5e4) ** 0.25, 8.0, 128.0))


def nearest_shape(target: float, exclude: set = frozenset()) -> tuple[int, int]:
    """The ladder shape whose n_active is nearest ``target`` in log, ties broken toward the preferred aspect."""
    def score(s):
        n = _dense_n_active(*s)
        return abs(math.log(n / target)) + 0.25 * abs(math.log(s[0] / s[1] / preferred_aspect(n)))
    return min((s for s in SHAPES if s not in exclude), key=score)


def family_config(family: Family, d: int, n_layers: int, *, vocab_size: int, seq_len: int,
                  gate: str = "renorm") -> ModelConfig:
    expansion, g, s = family
    return moe_config(vocab_size=vocab_size, seq_len=seq_len, d_model=d, n_layers=n_layers, expansion=expansion,
                      granularity=g, shared_ratio=s, ffn_mult=FFN_MULT, gate=gate)


def chinchilla_centre(budget: float, family: Family, *, vocab_size: int, seq_len: int) -> float:
    """n_active at which budget / M_real gives ``CHINCHILLA_TPP`` tokens per active parameter (log-interpolated
    over the ladder's preferred shapes)."""
    pts = []
    for d, n in SHAPES:
        if abs(math.log(d / n / preferred_aspect(_dense_n_active(d, n)))) > 0.7:
            continue
        acc = account(family_config(family, d, n, vocab_size=vocab_size, seq_len=seq_len))
        pts.append((math.log(budget / acc.real_flops_per_token / acc.n_active), math.log(acc.n_active)))
    pts.sort()
    x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    return float(math.exp(np.interp(math.log(CHINCHILLA_TPP), x, y)))


def feasible(acc: Accounting, budget: float, seq_len: int) -> bool:
    """Enough tokens at this budget for ``MIN_STEPS`` steps of the recipe's batch."""
    tokens = budget / acc.real_flops_per_token
    return recipe(budget, tokens, seq_len).steps >= MIN_STEPS


def profile_shapes(centre: float, *, sizes: int = SIZES, span: float = SPAN) -> list[tuple[int, int]]:
    """``sizes`` distinct ladder shapes at n_active centre x span^(i/(sizes-1) - 1/2), i = 0..sizes-1; the end
    targets are pushed outward (up to 1.5x) until the snapped shapes span at least 0.8 x ``span``."""
    for widen in (1.0, 1.1, 1.2, 1.35, 1.5):
        picked: list[tuple[int, int]] = []
        for i in range(sizes):
            frac = i / (sizes - 1) - 0.5 if sizes > 1 else 0.0
            target = centre * span ** frac * (widen ** (2 * frac) if sizes > 2 else 1.0)
            picked.append(nearest_shape(target, exclude=set(picked)))
        picked = sorted(set(picked), key=lambda s: _dense_n_active(*s))
        if _dense_n_active(*picked[-1]) >= 0.8 * span * _dense_n_active(*picked[0]):
            break
    return picked


def beyond_edge(shapes: list[tuple[int, int]], side: str, count: int = 2, span: float = SPAN,
                sizes: int = SIZES) -> list[tuple[int, int]]:
    """``count`` more shapes past the ``low`` or ``high`` end of a profile, continuing its geometric step."""
    step = span ** (1 / max(1, sizes - 1))
    edge = _dense_n_active(*(shapes[0] if side == "low" else shapes[-1]))
    out: list[tuple[int, int]] = []
    for i in range(1, count + 1):
        target = edge * (step ** -i if side == "low" else step ** i)
        s = nearest_shape(target, exclude=set(shapes) | set(out))
        n = _dense_n_active(*s)
        if (side == "low" and n < edge) or (side == "high" and n > edge):
            out.append(s)
    return out


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
    gate = row.get("gate")
    gate = "renorm" if _missing(gate) else str(gate).strip()
    return ModelConfig(vocab_size, seq_len, d, int(row["n_layers"]), heads, FFN_MULT * d,
                       n_experts=n_experts, top_k=top_k, n_shared=n_shared, granularity=g, gate=gate)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def run_row(cfg: ModelConfig, tokens: float, *, seed: int, group: str, run_id: str | None = None,
            budget: float | None = None, given: Recipe | None = None, design: str = "") -> dict:
    """A complete plan row: runs-table columns (docs/runs-table.md; no loss) plus recipe and architecture extras.

    ``given`` replaces the recipe (then ``tokens`` = its steps x batch); ``tokens`` is rounded up to
    whole steps otherwise, and the row's ``tokens`` and ``compute`` (real FLOPs, head included) are what
    is actually trained. The recipe follows the budget (or the run's real compute when no budget).
    """
    acc = account(cfg)
    r = given or recipe(budget or acc.real_flops_per_token * tokens, tokens, cfg.seq_len)
    trained = r.steps * r.batch_seqs * cfg.seq_len
    gate = "" if cfg.is_dense or cfg.gate == "renorm" else f"-{cfg.gate}"
    rid = run_id or (f"E{cfg.n_experts}-k{cfg.top_k}-s{cfg.n_shared}-G{cfg.granularity}-d{cfg.d_model}"
                     f"-L{cfg.n_layers}-D{trained}{gate}-seed{seed}")
    return {"run_id": rid, "group": group, "tokens": trained, "n_active": acc.n_active,
            "n_total": acc.n_total, "n_embedding": acc.n_embedding, "n_experts": cfg.n_experts,
            "top_k": cfg.top_k, "granularity": cfg.granularity, "shared_ratio": cfg.shared_ratio,
            "d_model": cfg.d_model, "n_layers": cfg.n_layers, "flops_per_token": acc.flops_per_token,
            "compute": acc.real_flops_per_token * trained, "seed": seed, "budget": budget if budget else "",
            "n_heads": cfg.n_heads, "n_shared": cfg.n_shared, "d_expert": cfg.d_expert,
            "n_router": acc.n_router, "six_na": acc.six_na, "real_flops_per_token": acc.real_flops_per_token,
            "head_flops_per_token": acc.head_flops_per_token, "flop_convention": FLOP_CONVENTION,
            "embedding_share": round(acc.embedding_share, 4), "head_flop_share": round(acc.head_flop_share, 4),
            "gate": cfg.gate, "vocab_size": cfg.vocab_size, "seq_len": cfg.seq_len, "design": design,
            "batch_seqs": r.batch_seqs, "steps": r.steps, "lr": r.lr, "warmup_steps": r.warmup_steps}


def isoflop_design(budgets: list[float], *, runs_per_budget: list[int] | None = None, sizes: int = SIZES,
                   span: float = SPAN, families: tuple[Family, ...] = FAMILIES, centre: Centre | None = None,
                   seed: int = 0, group: str = "trainer", vocab_size: int = DEFAULT_VOCAB,
                   seq_len: int = DEFAULT_SEQ_LEN, gate: str = "renorm", repeat_at: tuple[float, ...] = (),
                   repeats: int = 1) -> list[dict]:
    """The isoFLOP grid (see the module docstring), rows in budget order, family-major inside a budget.

    ``runs_per_budget``: one cap for all budgets or one per budget (a cap keeps the first families whole).
    ``centre(budget, family)``: the n_active to centre a profile on (None: the Chinchilla rule).
    ``repeat_at``: budgets whose middle size of the first two families is also trained with seeds
    seed+1 .. seed+repeats-1 (a noise estimate). Raises ``PlanError`` (one line) when a budget has no
    feasible shape.
    """
    caps = list(runs_per_budget or [None])
    if len(caps) not in (1, len(budgets)):
        raise PlanError(f"--runs-per-budget takes 1 value or one per budget ({len(budgets)}), got {len(caps)}")
    caps = caps * len(budgets) if len(caps) == 1 else caps
    if sizes < 1 or span < 1:
        raise PlanError(f"sizes must be >= 1 and span >= 1, got {sizes} and {span}")
    rows = []
    for budget, cap in zip(budgets, caps):
        if not (budget > 0 and math.isfinite(budget)):
            raise PlanError(f"budget must be a finite number > 0, got {budget}")
        picked = []
        for fi, fam in enumerate(families):
            target = centre(budget, fam) if centre else None
            target = target or chinchilla_centre(budget, fam, vocab_size=vocab_size, seq_len=seq_len)
            _check_on_ladder(budget, target, span)
            cands = []
            for d, n in profile_shapes(target, sizes=sizes, span=span):
                cfg = family_config(fam, d, n, vocab_size=vocab_size, seq_len=seq_len, gate=gate)
                if feasible(account(cfg), budget, seq_len):
                    cands.append(cfg)
            for j, cfg in enumerate(cands):
                seeds = [seed]
                if budget in repeat_at and fi < 2 and j == len(cands) // 2:
                    seeds += [seed + r for r in range(1, repeats)]
                for sd in seeds:
                    picked.append(row_at_budget(cfg, budget, seed=sd, group=group,
                                                design="core" if sd == seed else "repeat"))
        if not picked:
            lo = _dense_n_active(*SHAPES[0])
            hi = _dense_n_active(*SHAPES[-1])
            raise PlanError(f"budget {budget:.3g}: no shape of the ladder ({lo:.2g} to {hi:.2g} non-embedding "
                            f"parameters) gets {MIN_STEPS} steps; plannable budgets are about 1e9 to 1e21")
        rows += picked[:cap]
    return rows


def _check_on_ladder(budget: float, target: float, span: float) -> None:
    """``PlanError`` when a profile centred on ``target`` n_active reaches well past the ladder's ends."""
    lo, hi = _dense_n_active(*SHAPES[0]), _dense_n_active(*SHAPES[-1])
    if target * math.sqrt(span) > 3 * hi or target / math.sqrt(span) < lo / 3:
        raise PlanError(f"budget {budget:.3g}: its profile centred on n_active {target:.2g} leaves the shape ladder "
                        f"({lo:.2g} to {hi:.2g} non-embedding parameters); plannable budgets are about 1e9 to 1e21")


def row_at_budget(cfg: ModelConfig, budget: float, *, seed: int, group: str, design: str = "") -> dict:
    """The plan row training ``cfg`` for ``budget`` real FLOPs (tokens rounded up to whole steps)."""
    return run_row(cfg, budget / account(cfg).real_flops_per_token, seed=seed, group=group, budget=budget,
                   design=design)
