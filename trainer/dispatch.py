"""Dropless expert dispatch in pure PyTorch: the sorted reference and the per-expert mask loop.

Shapes: ``x`` [T, d] tokens; ``idx`` [T, k] int64 expert of each routed slot; ``weight`` [T, k] combine
weights; ``w_in`` [E, d, 2h] fused SwiGLU gate|up projections; ``w_out`` [E, h, d]. Returns [T, d] with
``y[t] = sum_j weight[t, j] * expert_{idx[t, j]}(x[t])`` and ``expert_e(z) = (silu(z W_g) * (z W_u)) W_o``.
Every token is processed (no capacity, no dropping).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def swiglu(h: torch.Tensor) -> torch.Tensor:
    """[..., 2h] fused gate|up pre-activations -> [..., h]."""
    gate, up = h.chunk(2, dim=-1)
    return F.silu(gate) * up


def sort_by_expert(idx: torch.Tensor, n_experts: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stable sort of the T*k routed slots by expert.

    Returns ``order`` [T*k] (slot ids, grouped by expert, token order kept inside a group),
    ``inverse`` [T*k] (position of each slot in ``order``) and ``counts`` [E] (slots per expert);
    expert e owns sorted rows ``offsets[e]:offsets[e+1]`` with ``offsets = cumsum([0] + counts)``.
    """
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    counts = torch.bincount(flat, minlength=n_experts)
    return order, inverse, counts


def sorted_dispatch(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, w_in: torch.Tensor,
                    w_out: torch.Tensor) -> torch.Tensor:
    """Reference: sort slots by expert, one matmul pair per expert on contiguous rows, weighted combine.

    Deterministic: the gather backward and the combine are sums in a fixed order (the un-permute is a
    gather through ``inverse`` followed by a sum over the k slots of each token).
    """
    t, k = idx.shape
    order, inverse, counts = sort_by_expert(idx, w_in.shape[0])
    xs = x[order // k]                                   # [T*k, d] rows grouped by expert
    sizes = counts.tolist()
    hidden = swiglu(_per_expert_matmul(xs, w_in, sizes))   # one elementwise pass for all experts
    out = _per_expert_matmul(hidden, w_out, sizes)
    out = out * weight.reshape(-1)[order].unsqueeze(-1).to(out.dtype)
    return out[inverse].view(t, k, -1).sum(dim=1)


def _per_expert_matmul(rows: torch.Tensor, w: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """[sum(sizes), a] rows grouped by expert times w [E, a, b] -> [sum(sizes), b]."""
    parts = [chunk @ w[e] for e, chunk in enumerate(torch.split(rows, sizes)) if sizes[e]]
    return torch.cat(parts) if parts else rows.new_zeros(0, w.shape[-1])


def loop_dispatch(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, w_in: torch.Tensor,
                  w_out: torch.Tensor) -> torch.Tensor:
    """Naive baseline: for each expert, find its tokens with a mask, run it, scatter-add the result."""
    y = torch.zeros_like(x)
    for e in range(w_in.shape[0]):
        tok, slot = (idx == e).nonzero(as_tuple=True)
        if tok.numel():
            out = swiglu(x[tok] @ w_in[e]) @ w_out[e]
            y = y.index_add(0, tok, out * weight[tok, slot].unsqueeze(-1).to(out.dtype))
    return y
