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


class _GatherSlots(torch.autograd.Function):
    """xs = x[order // k]; backward sums each token's k slot gradients by a gather through ``inverse``
    (no scatter-add: deterministic on every device, and cheaper than index_add on CPU)."""

    @staticmethod
    def forward(ctx, x, order, inverse, k):
        ctx.save_for_backward(inverse)
        ctx.k = k
        return x[order // k]

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad[inverse].view(-1, ctx.k, grad.shape[-1]).sum(dim=1), None, None, None


class _Unpermute(torch.autograd.Function):
    """rows[inverse] (slot order); the backward is the opposite gather, grad[order]."""

    @staticmethod
    def forward(ctx, rows, inverse, order):
        ctx.save_for_backward(order)
        return rows[inverse]

    @staticmethod
    def backward(ctx, grad):
        (order,) = ctx.saved_tensors
        return grad[order], None, None


def sorted_dispatch(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, w_in: torch.Tensor,
                    w_out: torch.Tensor) -> torch.Tensor:
    """Reference: sort slots by expert, one matmul pair per expert on contiguous rows, weighted combine.

    Deterministic: permutations are gathers in both directions and the combine sums each token's k slots
    in slot order; nothing uses atomics or scatter-add.
    """
    t, k = idx.shape
    order, inverse, counts = sort_by_expert(idx, w_in.shape[0])
    xs = _GatherSlots.apply(x, order, inverse, k)                 # [T*k, d] rows grouped by expert
    sizes = counts.tolist()
    hidden = swiglu(_per_expert_matmul(xs, w_in, sizes))   # one elementwise pass for all experts
    out = _per_expert_matmul(hidden, w_out, sizes)
    out = _Unpermute.apply(out, inverse, order)                   # back to slot order [T*k, d]
    out = out * weight.reshape(-1, 1).to(out.dtype)
    return out.view(t, k, -1).sum(dim=1) if k > 1 else out


def _per_expert_matmul(rows: torch.Tensor, w: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """[sum(sizes), a] rows grouped by expert times w [E, a, b] -> [sum(sizes), b].

    ``unbind`` (not ``w[e]``): its backward stacks the E gradients once, where E ``select`` backwards
    would each materialise a full [E, a, b] zero tensor.
    """
    ws = w.unbind(0)
    parts = [chunk @ ws[e] for e, chunk in enumerate(torch.split(rows, sizes)) if sizes[e]]
    return torch.cat(parts) if parts else rows.new_zeros(0, w.shape[-1])


def loop_dispatch(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, w_in: torch.Tensor,
                  w_out: torch.Tensor) -> torch.Tensor:
    """Naive baseline: for each expert, find its tokens with a mask, run it, scatter-add the result."""
    y = torch.zeros_like(x)
    w_ins, w_outs = w_in.unbind(0), w_out.unbind(0)
    for e in range(w_in.shape[0]):
        tok, slot = (idx == e).nonzero(as_tuple=True)
        if tok.numel():
            out = swiglu(x[tok] @ w_ins[e]) @ w_outs[e]
            y = y.index_add(0, tok, out * weight[tok, slot].unsqueeze(-1).to(out.dtype))
    return y
