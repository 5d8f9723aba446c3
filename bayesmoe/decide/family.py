"""Architecture families and the trainer's parameter and FLOP accounting, for trainable recommendations.

A :class:`Family` fixes everything about a decoder-only transformer except its size (``n_layers``,
``d_model``) and its MoE choice (experts, top-k, granularity): the allowed aspect-ratio range
``d_model / n_layers``, the head dimension (``d_model`` is a multiple of it), the vocabulary, the
sequence length, the dense FFN width (``d_ff = ffn_mult * d_model``, SwiGLU) and the FLOP model
that turns a budget into training tokens. ``family_from_runs`` infers it from a fitted runs table
(``--family runs``); ``paper_family`` states a law's published architecture (``--family paper``).

:func:`account` repeats the trainer's accounting (``trainer/flops.py``; bayesmoe does not import the
trainer), vectorised over arrays. Per layer (d = d_model, h = d_expert, E routed experts, k routed
top-k, s shared experts, L layers):

    attention 4 d^2; norms 2 d; dense FFN 3 d d_ff; MoE experts 3 d h (E + s) total, 3 d h (k + s) active;
    router d E (not in n_total / n_active)
    n_total = L (4 d^2 + 2 d + ffn_total) + d;  n_active = L (4 d^2 + 2 d + ffn_active) + d;  n_embedding = 2 V d
    M (flops_per_token) = 6 L (4 d^2 + ffn_active + d E) + 6 L seq_len d;  head FLOPs per token 6 V d

All counts are raw numbers; FLOPs are training FLOPs (forward + backward) per token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import BayesMoeError

#: FLOP models: how training FLOPs per token follow from a configuration (keys of :func:`compute_per_token`).
FLOP_MODELS = {
    "M": "trainer's M: 6 x matmul parameters a token uses (router included) + 6 L seq_len d for attention; "
    "no output head",
    "M+head": "trainer's real FLOPs: M + 6 V d (the output head included)",
    "6Na": "6 x n_active (non-embedding), the Kaplan/Chinchilla approximation",
    "6(Na+emb)": "6 x (n_active + n_embedding), Ludziejewski et al.'s 6 N_act D with embeddings counted",
    "6Na+router": "6 x n_active + 14 x router parameters (Krajewski et al. Eq. 10: c_f = 6, c_r = 14)",
}
BYTES_PER_VALUE = 2  # bf16 weights


@dataclass(frozen=True)
class Family:
    """A discrete architecture family (see module doc).

    Attributes:
        name: ``"runs"`` (inferred from the fitted runs) or ``"paper"`` (the law's published architecture).
        aspect_ratio: (lo, hi) allowed ``d_model / n_layers``.
        preferred_aspect: the aspect ratio that breaks ties between shapes the law cannot tell apart.
        head_dim: attention head size; ``d_model`` is a multiple of it and ``n_heads = d_model / head_dim``.
        vocab_size: V (0 when unknown: no embedding is counted).
        seq_len: training sequence length (attention FLOPs of the ``M`` models).
        ffn_mult: dense FFN hidden size over ``d_model``.
        flops: a key of :data:`FLOP_MODELS`.
        expansion: routed-expert parameters over dense-FFN parameters (``n_experts / granularity``), when fixed.
        sources: how each value was obtained, in words (printed as the family's conventions).
    """

    name: str
    aspect_ratio: tuple[float, float]
    preferred_aspect: float
    head_dim: int
    vocab_size: int
    seq_len: int
    ffn_mult: float
    flops: str
    expansion: float | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict:
        """JSON-ready description (the ``conventions.family`` object)."""
        return {
            "name": self.name,
            "aspect_ratio": list(self.aspect_ratio),
            "preferred_aspect_ratio": self.preferred_aspect,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "ffn_mult": self.ffn_mult,
            "flop_model": f"{self.flops}: {FLOP_MODELS[self.flops]}",
            "expansion_rate": self.expansion,
            "sources": dict(self.sources),
        }


def account(d_model, n_layers, n_experts, top_k, n_shared, d_expert, d_ff, *, vocab_size: int, seq_len: int) -> dict:
    """The trainer's counts for configurations given as broadcastable integer arrays (module doc).

    Dense configurations have ``n_experts == 1`` (a plain SwiGLU FFN of width ``d_ff``, no router).
    Returns ``n_total``, ``n_active``, ``n_embedding``, ``n_router``, ``flops_per_token`` (M) and
    ``head_flops_per_token``, each a float array of the broadcast shape.
    """
    d, L = np.asarray(d_model, float), np.asarray(n_layers, float)
    E, k, s = np.asarray(n_experts, float), np.asarray(top_k, float), np.asarray(n_shared, float)
    h, ff = np.asarray(d_expert, float), np.asarray(d_ff, float)
    dense = E <= 1
    ffn_total = np.where(dense, 3 * d * ff, 3 * d * h * (E + s))
    ffn_active = np.where(dense, 3 * d * ff, 3 * d * h * (k + s))
    router = np.where(dense, 0.0, d * E)
    base = 4 * d * d + 2 * d
    return {
        "n_total": L * (base + ffn_total) + d,
        "n_active": L * (base + ffn_active) + d,
        "n_embedding": 2.0 * vocab_size * d,
        "n_router": L * router,
        "flops_per_token": 6 * L * (4 * d * d + ffn_active + router) + 6 * L * seq_len * d,
        "head_flops_per_token": 6.0 * vocab_size * d,
    }


def compute_per_token(counts: dict, flops: str) -> np.ndarray:
    """Training FLOPs per token of configurations with ``counts`` (from :func:`account`) under model ``flops``."""
    if flops == "M":
        return counts["flops_per_token"]
    if flops == "M+head":
        return counts["flops_per_token"] + counts["head_flops_per_token"]
    if flops == "6Na":
        return 6 * counts["n_active"]
    if flops == "6(Na+emb)":
        return 6 * (counts["n_active"] + counts["n_embedding"])
    if flops == "6Na+router":
        return 6 * counts["n_active"] + 14 * counts["n_router"]
    raise BayesMoeError(f"unknown FLOP model '{flops}'; expected one of {', '.join(FLOP_MODELS)}")


def _mode(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.mode().iloc[0]) if len(values) else float("nan")


def _largest(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs at the largest fitted compute (within 10%)."""
    return frame[frame["compute"] >= 0.9 * frame["compute"].max()]


def runs_expansions(frame: pd.DataFrame) -> np.ndarray:
    """Distinct expansion rates ``n_experts / granularity`` of the MoE runs (empty when none or no columns)."""
    if not {"n_experts", "granularity"} <= set(frame.columns):
        return np.array([])
    moe = frame[frame["n_experts"].fillna(1) > 1]
    return np.unique(np.round((moe["n_experts"] / moe["granularity"]).to_numpy(float), 6))


def family_from_runs(frame: pd.DataFrame) -> Family:
    """The family of a runs table (``--family runs``): needs ``d_model`` and ``n_layers``.

    Aspect ratio: the range of ``d_model / n_layers``; head dimension: ``d_model / n_heads`` of the
    largest-compute runs (64 when ``n_heads`` is absent); vocabulary: ``vocab_size``, else
    ``n_embedding / (2 d_model)``; sequence length: ``seq_len``; FFN width: ``d_expert * granularity``
    (MoE) or ``d_expert`` (dense) over ``d_model``, else solved from dense runs' ``n_active``; FLOP model:
    the one that reproduces the table's ``compute`` (``M``, ``M+head`` or ``6Na``).
    """
    missing = [c for c in ("d_model", "n_layers") if c not in frame.columns or frame[c].isna().any()]
    if missing:
        raise BayesMoeError(
            f"--family runs needs the runs' {' and '.join(missing)} column(s) filled in; "
            "use --family paper for the law's published architecture"
        )
    d, L = frame["d_model"].to_numpy(float), frame["n_layers"].to_numpy(float)
    aspect = d / L
    sources = {"aspect_ratio": f"range of d_model / n_layers over the {len(frame)} fitted runs"}
    top = _largest(frame)
    preferred = float(np.median(top["d_model"] / top["n_layers"]))
    sources["preferred_aspect_ratio"] = "median d_model / n_layers of the largest-compute runs"
    headed = frame[frame["n_heads"].notna()] if "n_heads" in frame.columns else frame.iloc[:0]
    if len(headed):
        top_headed = _largest(headed)
        head_dim = int(_mode(top_headed["d_model"] / top_headed["n_heads"]))
        sources["head_dim"] = "d_model / n_heads of the largest-compute runs that record n_heads"
    else:
        head_dim = 64
        sources["head_dim"] = "assumed 64 (the runs table has no n_heads)"
    if "vocab_size" in frame.columns and frame["vocab_size"].notna().any():
        vocab = int(_mode(frame["vocab_size"]))
        sources["vocab_size"] = "the runs' vocab_size column"
    elif "n_embedding" in frame.columns and (frame["n_embedding"].fillna(0) > 0).any():
        vocab = int(round(_mode(frame["n_embedding"] / (2 * frame["d_model"]))))
        sources["vocab_size"] = "n_embedding / (2 d_model) of the runs (untied input and output embeddings)"
    else:
        vocab = 0
        sources["vocab_size"] = "unknown (no vocab_size or n_embedding column): embeddings not counted"
    seq_len = int(_mode(frame["seq_len"])) if "seq_len" in frame.columns else 0
    sources["seq_len"] = "the runs' seq_len column" if seq_len else "unknown: attention FLOPs not counted"
    ffn_mult, sources["ffn_mult"] = _ffn_mult(frame)
    flops, sources["flop_model"] = _flop_model(frame, vocab)
    return Family(
        "runs",
        (float(aspect.min()), float(aspect.max())),
        preferred,
        head_dim,
        vocab,
        seq_len,
        ffn_mult,
        flops,
        sources=sources,
    )


def _ffn_mult(frame: pd.DataFrame) -> tuple[float, str]:
    """Dense FFN width / d_model of the runs, and how it was found."""
    g = frame["granularity"].fillna(1) if "granularity" in frame.columns else pd.Series(1.0, index=frame.index)
    if "d_expert" in frame.columns and frame["d_expert"].notna().all():
        return _mode(frame["d_expert"] * g / frame["d_model"]), "d_expert x granularity / d_model of the runs"
    dense = frame[frame["n_experts"].fillna(1) <= 1] if "n_experts" in frame.columns else frame
    if len(dense) and "n_active" in dense.columns:
        d, L = dense["d_model"].to_numpy(float), dense["n_layers"].to_numpy(float)
        d_ff = ((dense["n_active"].to_numpy(float) - d) / L - 4 * d * d - 2 * d) / (3 * d)
        return float(np.median(d_ff / d)), "solved from the dense runs' n_active with a SwiGLU FFN (3 d d_ff per layer)"
    return 4.0, "assumed 4 (no d_expert column and no dense runs)"


def _flop_model(frame: pd.DataFrame, vocab: int) -> tuple[str, str]:
    """The FLOP model that reproduces the runs' ``compute`` (median relative error under 2%)."""
    tokens, compute = frame["tokens"].to_numpy(float), frame["compute"].to_numpy(float)
    models = {"6Na": 6 * frame["n_active"].to_numpy(float)}
    if "flops_per_token" in frame.columns and frame["flops_per_token"].notna().all():
        m = frame["flops_per_token"].to_numpy(float)
        models = {"M": m, "M+head": m + 6.0 * vocab * frame["d_model"].to_numpy(float), **models}
    errors = {k: float(np.median(np.abs(v * tokens / compute - 1))) for k, v in models.items()}
    best = min(errors, key=errors.get)
    if errors[best] > 0.02:
        return best, (
            f"closest to the runs' compute, but off by {errors[best]:.1%} (median): the runs use another "
            "FLOP convention, so tokens at a budget are approximate"
        )
    return best, f"reproduces the runs' compute column (median error {errors[best]:.2%})"


#: Published architectures per law: (aspect ratio, head dim, vocabulary, seq_len, ffn_mult, FLOP model, source).
_PAPERS = {
    "joint": (
        (64.0, 64.0),
        64,
        50257,
        2048,
        4.0,
        "6(Na+emb)",
        "Ludziejewski et al. 2025 App. A.1: n_blocks = d/64, V = 50,257, C = 6 N_act D (embeddings included); "
        "head dim 64 and seq_len 2048 assumed; SwiGLU FFN of width 4d as in our trainer (the paper counts 13 d^2 "
        "per block, we count 16 d^2)",
    ),
    "granularity": (
        (64.0, 64.0),
        64,
        0,
        2048,
        4.0,
        "6Na+router",
        "Krajewski et al. 2024 Sec. 6: d = 64 n_blocks, d_ff = 4 d, FLOPs (Eq. 10) 6 N_act + 14 d E G per block; "
        "head dim 64 assumed; SwiGLU FFN as in our trainer (the paper counts 12 d^2 per block, we count 16 d^2)",
    ),
    "chinchilla": (
        (32.0, 128.0),
        128,
        32000,
        2048,
        4.0,
        "6Na",
        "Hoffmann et al. 2022 Table A9 aspect ratios (about 32-128), head dim 128, C = 6 N D; "
        "vocabulary 32,000 as in the paper's tokenizer; SwiGLU FFN as in our trainer",
    ),
}


def paper_family(law: str) -> Family:
    """The published architecture of ``law`` (``--family paper``)."""
    if law not in _PAPERS:
        raise BayesMoeError(
            f"law '{law}' has no published architecture family here; laws with one: {', '.join(sorted(_PAPERS))}"
        )
    aspect, head, vocab, seq, ffn, flops, source = _PAPERS[law]
    preferred = float(np.sqrt(aspect[0] * aspect[1]))
    return Family("paper", aspect, preferred, head, vocab, seq, ffn, flops, sources={"all": source})
