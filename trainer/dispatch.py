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


class _SortedExperts(torch.autograd.Function):
    """The whole sorted dispatch as one autograd node with a hand-written backward.

    Each expert's rows are carried through its whole FFN while they are in cache: gather its slot rows
    (``index_select`` into its block of the sorted [T*k, d] buffer), ``x_e W_in``, SwiGLU, ``h_e W_out``
    and the gate weight (matmuls and products written straight into preallocated buffers with ``out=``: no
    concatenation); one gather through ``inverse`` puts the rows back in slot order and each token's k
    slots are summed in slot order. The backward runs per expert too: the output gradient is gathered from
    each row's token, then the same matmuls autograd would issue (``grad W^T`` and ``A^T grad``, weight
    gradients written into their [E, ., .] slots) and SwiGLU's backward; one gather through ``inverse``
    brings the k slot gradients of x to slot order and they are summed per token. Nothing uses atomics or scatter-add
    (deterministic), and every value is computed by the same kernels on the same operands as the plain
    autograd composition (gather, per-expert matmuls, SwiGLU, un-permute, weight, sum over k), so outputs
    and gradients are bitwise equal to it.
    """

    @staticmethod
    def forward(ctx, x, weight, w_in, w_out, order, inverse, sizes, k):
        n, d = order.numel(), x.shape[-1]
        src = order // k                                   # token of each sorted row
        wsort = weight.reshape(-1, 1).to(x.dtype).index_select(0, order)
        w_ins, w_outs = w_in.unbind(0), w_out.unbind(0)
        xs = x.new_empty(n, d)
        a = x.new_empty(n, w_in.shape[-1])
        hidden = x.new_empty(n, w_out.shape[-2])
        out = x.new_empty(n, w_out.shape[-1])
        weighted = x.new_empty(n, out.shape[-1])
        parts = [p.split(sizes) for p in (src, wsort, xs, a, hidden, out, weighted)]
        experts = [e for e, m in enumerate(sizes) if m]
        for e in experts:
            tok, w_e, xs_e, a_e, h_e, o_e, ow_e = (p[e] for p in parts)
            torch.index_select(x, 0, tok, out=xs_e)
            torch.mm(xs_e, w_ins[e], out=a_e)
            gate, up = a_e.chunk(2, dim=-1)
            torch.mul(F.silu(gate), up, out=h_e)
            torch.mm(h_e, w_outs[e], out=o_e)
            torch.mul(o_e, w_e, out=ow_e)
        y = weighted.index_select(0, inverse)              # back to slot order (a gather, not a scatter)
        if k > 1:
            y = y.view(-1, k, y.shape[-1]).sum(dim=1)
        ctx.save_for_backward(xs, a, hidden, out, wsort, w_in, w_out, src, order, inverse)
        ctx.sizes, ctx.k, ctx.experts, ctx.weight_dtype = sizes, k, experts, weight.dtype
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        xs, a, hidden, out, wsort, w_in, w_out, src, order, inverse = ctx.saved_tensors
        sizes, k, experts = ctx.sizes, ctx.k, ctx.experts
        need_x, need_w, need_in, need_out = ctx.needs_input_grad[:4]
        n, d = xs.shape
        w_ins, w_outs = w_in.unbind(0), w_out.unbind(0)
        alloc = torch.zeros if len(experts) < len(sizes) else torch.empty   # experts without rows: zero grads
        g_w_in = alloc(w_in.shape, dtype=w_in.dtype, device=w_in.device) if need_in else None
        g_w_out = alloc(w_out.shape, dtype=w_out.dtype, device=w_out.device) if need_out else None
        g_wsort = xs.new_empty(n, 1) if need_w else None   # weight gradient of each sorted row
        g_xs = xs.new_empty(n, d) if need_x else None      # x gradient of each sorted row
        g_a = a.new_empty(max(sizes), a.shape[-1])         # scratch: SwiGLU input gradient of one expert
        h = a.shape[-1] // 2
        parts = [p.split(sizes) if p is not None else None
                 for p in (src, wsort, xs, a, hidden, out, g_wsort, g_xs)]
        for e in experts:
            tok, w_e, xs_e, a_e, h_e, o_e, gw_e, gx_e = (p[e] if p is not None else None for p in parts)
            g_rows = grad_y.index_select(0, tok)           # dL/d(weighted row)
            if need_w:
                torch.sum(g_rows * o_e, -1, keepdim=True, out=gw_e)
            g_o = g_rows.mul_(w_e)
            if need_out:
                torch.mm(h_e.t(), g_o, out=g_w_out[e])
            g_h = g_o.mm(w_outs[e].t())
            gate, up = a_e.chunk(2, dim=-1)
            g_a_e = g_a[:sizes[e]]
            torch.ops.aten.silu_backward.grad_input(g_h * up, gate, grad_input=g_a_e[:, :h])
            torch.mul(g_h, F.silu(gate), out=g_a_e[:, h:])
            if need_in:
                torch.mm(xs_e.t(), g_a_e, out=g_w_in[e])
            if need_x:
                torch.mm(g_a_e, w_ins[e].t(), out=gx_e)
        grad_x = grad_weight = None
        if need_x:
            grad_x = g_xs.index_select(0, inverse)         # slot order: each token's k slot gradients
            grad_x = grad_x.view(-1, k, d).sum(dim=1) if k > 1 else grad_x
        if need_w:
            grad_weight = g_wsort.index_select(0, inverse).to(ctx.weight_dtype).view(-1, k)
        return grad_x, grad_weight, g_w_in, g_w_out, None, None, None, None


def sorted_dispatch(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, w_in: torch.Tensor,
                    w_out: torch.Tensor) -> torch.Tensor:
    """Reference: sort slots by expert, one matmul pair per expert on contiguous rows, weighted combine.

    Deterministic: permutations are gathers in both directions and the combine sums each token's k slots
    in slot order; nothing uses atomics or scatter-add (see ``_SortedExperts``).
    """
    t, k = idx.shape
    order, inverse, counts = sort_by_expert(idx, w_in.shape[0])
    return _SortedExperts.apply(x, weight, w_in, w_out, order, inverse, counts.tolist(), k)


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
