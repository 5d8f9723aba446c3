"""Decoder-only transformer: pre-norm RMSNorm blocks, RoPE attention, SwiGLU or MoE feed-forward.

Inputs are token ids [B, L] (int64); ``forward`` returns logits [B, L, vocab] (float32). Embedding and
unembedding are untied. Attention uses xformers' ``memory_efficient_attention`` for CUDA tensors when
xformers imports and works, else PyTorch's causal ``scaled_dot_product_attention`` (chosen per call).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .moe import MoE, SwiGLU


@functools.lru_cache(maxsize=1)
def _xformers_ops():
    """xformers.ops if it imports and runs a tiny CUDA attention, else None (checked once)."""
    try:
        import xformers.ops as xops
        q = torch.zeros(1, 4, 1, 8, device="cuda", dtype=torch.float16)
        xops.memory_efficient_attention(q, q, q, attn_bias=xops.LowerTriangularMask())
        return xops
    except Exception:  # noqa: BLE001 - any failure means "not usable here"
        return None


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Causal attention on [B, H, L, Dh] tensors -> [B, H, L, Dh].

    ``backend``: ``auto`` (xformers for CUDA tensors when usable, else SDPA), ``sdpa`` or ``xformers``.
    """
    use_xf = backend == "xformers" or (backend == "auto" and q.is_cuda and _xformers_ops() is not None)
    if use_xf:
        xops = _xformers_ops()
        if xops is None:
            raise RuntimeError("xformers memory_efficient_attention is not usable here")
        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                              attn_bias=xops.LowerTriangularMask())
        return out.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(seq_len: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables [seq_len, head_dim/2] for rotary embeddings (rotate-half convention)."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = torch.arange(seq_len, dtype=torch.float64)[:, None] * inv[None]
    return ang.cos().float(), ang.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate [B, H, L, Dh] by position; cos/sin [L, Dh/2]."""
    a, b = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, backend: str = "auto") -> None:
        super().__init__()
        self.n_heads, self.backend = cfg.n_heads, backend
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos[:n], sin[:n]), apply_rope(k, cos[:n], sin[:n])
        out = causal_attention(q, k, v, self.backend)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, dispatch: str, backend: str) -> None:
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(cfg.d_model), RMSNorm(cfg.d_model)
        self.attn = Attention(cfg, backend)
        self.ffn = SwiGLU(cfg.d_model, cfg.d_ff) if cfg.is_dense else MoE(cfg, dispatch)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.ffn(self.norm2(x))


class Transformer(nn.Module):
    """The language model. ``aux_losses()`` sums the MoE blocks' balance and z losses of the last call."""

    def __init__(self, cfg: ModelConfig, dispatch: str = "sorted", backend: str = "auto") -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, dispatch, backend) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg.seq_len, cfg.head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self._init()

    def _init(self) -> None:
        """Normal(0, 1/fan_in) matrices; residual output projections further scaled by 1/sqrt(2 L)."""
        for name, p in self.named_parameters():
            if name == "embed.weight":
                nn.init.normal_(p, std=1.0)
            elif p.dim() >= 2:
                fan_in = p.shape[-2] if p.dim() == 3 else p.shape[-1]
                std = 1.0 / math.sqrt(fan_in)
                if name.endswith(("proj.weight", "w_out.weight", "w_out")):
                    std /= math.sqrt(2 * self.cfg.n_layers)
                nn.init.normal_(p, std=std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.head(self.norm(x)).float()

    def aux_losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(load-balancing loss, z-loss), each averaged over the MoE layers; zeros for a dense model."""
        moes = [b.ffn for b in self.blocks if isinstance(b.ffn, MoE)]
        if not moes:
            zero = self.head.weight.new_zeros(())
            return zero, zero
        return (torch.stack([m.aux_loss for m in moes]).mean(), torch.stack([m.z_loss for m in moes]).mean())
