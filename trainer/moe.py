"""Feed-forward blocks: dense SwiGLU and the dropless MoE layer (router, shared experts, aux losses)."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .dispatch import loop_dispatch, masked_dispatch, sorted_dispatch, swiglu

DispatchFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class SwiGLU(nn.Module):
    """Dense FFN: [.., d] -> [.., d] through hidden size ``hidden`` (3 * d * hidden parameters)."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.w_in = nn.Linear(d_model, 2 * hidden, bias=False)
        self.w_out = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_out(swiglu(self.w_in(x)))


def get_dispatch(name: str) -> DispatchFn:
    """``sorted`` (reference), ``loop`` (mask loop), ``masked`` (every expert on every token, for small models
    on a GPU) or ``cuda`` (custom kernel; CUDA tensors only)."""
    if name == "sorted":
        return sorted_dispatch
    if name == "loop":
        return loop_dispatch
    if name == "masked":
        return masked_dispatch
    if name == "cuda":
        from .cuda_dispatch import cuda_dispatch
        return cuda_dispatch
    raise ValueError(f"unknown dispatch {name!r} (sorted, loop, masked, cuda)")


class MoE(nn.Module):
    """Top-k softmax router over ``n_experts`` routed experts plus ``n_shared`` shared experts.

    The router runs in float32 (outside any autocast). Gate weights (``cfg.gate``): ``renorm`` divides the
    chosen experts' softmax probabilities by their sum (weights sum to 1 per token); ``softmax`` keeps the
    raw probabilities (Switch, DeepSeekMoE). After ``forward`` the block holds ``aux_loss`` (Switch load balancing,
    ``E * sum_e f_e P_e`` with f_e the fraction of routed slots sent to e and P_e its mean probability;
    1 when perfectly balanced) and ``z_loss`` (mean squared log-sum-exp of router logits).
    """

    def __init__(self, cfg: ModelConfig, dispatch: str = "sorted") -> None:
        super().__init__()
        d, h, e = cfg.d_model, cfg.d_expert, cfg.n_experts
        self.top_k, self.renorm = cfg.top_k, cfg.gate == "renorm"
        self.router = nn.Linear(d, e, bias=False)
        self.w_in = nn.Parameter(torch.empty(e, d, 2 * h))
        self.w_out = nn.Parameter(torch.empty(e, h, d))
        nn.init.normal_(self.w_in, std=1.0 / math.sqrt(d))
        nn.init.normal_(self.w_out, std=1.0 / math.sqrt(h))
        self.shared = SwiGLU(d, cfg.n_shared * h) if cfg.n_shared else None
        self.dispatch = get_dispatch(dispatch)
        self.aux_loss = torch.zeros(())
        self.z_loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        with torch.autocast(x.device.type, enabled=False):
            logits = F.linear(x.float(), self.router.weight.float())  # [T, E], float32
        probs = logits.softmax(dim=-1)
        weight, idx = probs.topk(self.top_k, dim=-1)                  # [T, k]
        if self.renorm:
            weight = weight / weight.sum(dim=-1, keepdim=True)
        n_exp = probs.shape[-1]
        frac = torch.bincount(idx.reshape(-1), minlength=n_exp).to(probs.dtype) / idx.numel()
        self.aux_loss = n_exp * (frac * probs.mean(dim=0)).sum()
        self.z_loss = torch.logsumexp(logits, dim=-1).square().mean()
        y = self.dispatch(x, idx, weight.to(x.dtype), self.w_in, self.w_out)
        if self.shared is not None:
            y = y + self.shared(x)
        return y.reshape(shape)
