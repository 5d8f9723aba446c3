"""Dropless expert dispatch in pure PyTorch: the sorted reference, the per-expert mask loop and the masked
all-experts dispatch for small models on a GPU.

Shapes: ``x`` [T, d] tokens; ``idx`` [T, k] int64 expert of each routed slot; ``weight`` [T, k] combine
weights; ``w_in`` [E, d, 2h] fused SwiGLU gate|up projections; ``w_out`` [E, h, d]. Returns [T, d] with
``y[t] = sum_j weight[t, j] * expert_{idx[t, j]}(x[t])`` and ``expert_e(z) = (silu(z W_g) * (z W_u)) W_o``.
Every token is processed (no capacity, no dropping). Under autocast, ``sorted_dispatch`` casts its inputs
to the autocast dtype (``compute_dtype``) and runs with autocast off, so forward and backward see one dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def swiglu(h: torch.Tensor) -> torch.Tensor:
    """[..., 2h] fused gate|up pre-activations -> [..., h]."""
    gate, up = h.chunk(2, dim=-1)
    return F.silu(gate) * up


def compute_dtype(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The tensors cast (differentiably) to one dtype: the autocast dtype when autocast is on for their
    device, else the first tensor's dtype."""
    dev = tensors[0].device.type
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else tensors[0].dtype
    return tuple(t.to(dtype) for t in tensors)


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

    Each expert's rows are carried through its whole FFN while they are in cache: gather its tokens
    (``index_select``), ``x_e W_in``, SwiGLU, ``h_e W_out``, the gate weight, and a scatter-add
    (``index_add_``) of the weighted rows straight into the [T, d] output: no [T*k, d] un-permute and no sum
    over k. The backward runs per expert too: the output gradient is gathered from each row's token, then
    the same matmuls autograd would issue (``grad W^T`` and ``A^T grad``, weight gradients written into
    their [E, ., .] slots) and SwiGLU's backward, and the x gradient rows are scatter-added into [T, d].
    Each expert's intermediates are separate tensors (no [T*k, .] buffers), kept in ``save_for_backward``,
    so they are freed with the graph and a second backward (``retain_graph=True``) sees them intact.

    Deterministic (bitwise equal across calls, on CPU and CUDA): a token occurs at most once among an
    expert's rows, so every ``index_add_`` call writes distinct rows, and the calls run in expert order:
    each token's k contributions are summed in ascending expert order (accumulated in float32 for
    lower-precision inputs). For k <= 2 this equals the slot-order sum bitwise; for k >= 3 it differs from
    it by rounding only.
    """

    @staticmethod
    def forward(ctx, x, weight, w_in, w_out, order, inverse, sizes, k):
        src = (order // k).split(sizes)                    # token of each sorted row, per expert
        wsort = weight.reshape(-1, 1).to(x.dtype).index_select(0, order).split(sizes)
        w_ins, w_outs = w_in.unbind(0), w_out.unbind(0)
        acc = torch.promote_types(x.dtype, torch.float32)
        y = x.new_zeros(x.shape[0], w_out.shape[-1], dtype=acc)
        experts = [e for e, m in enumerate(sizes) if m]
        keep = any(ctx.needs_input_grad[:4])
        saved = []
        for e in experts:
            tok = src[e]
            xs_e = x.index_select(0, tok)
            a_e = torch.mm(xs_e, w_ins[e])
            gate, up = a_e.chunk(2, dim=-1)
            s_e = F.silu(gate)
            h_e = s_e * up
            o_e = torch.mm(h_e, w_outs[e])
            y.index_add_(0, tok, (o_e * wsort[e]).to(acc))
            if keep:
                saved += [xs_e, a_e, s_e, h_e, o_e]
        ctx.save_for_backward(w_in, w_out, inverse, order, weight, *saved)
        ctx.sizes, ctx.k, ctx.experts, ctx.weight_dtype = sizes, k, experts, weight.dtype
        return y.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        w_in, w_out, inverse, order, weight, *saved = ctx.saved_tensors
        sizes, k, experts = ctx.sizes, ctx.k, ctx.experts
        src = (order // k).split(sizes)
        wsort = weight.reshape(-1, 1).to(grad_y.dtype).index_select(0, order).split(sizes)
        need_x, need_w, need_in, need_out = ctx.needs_input_grad[:4]
        w_ins, w_outs = w_in.unbind(0), w_out.unbind(0)
        alloc = torch.zeros if len(experts) < len(sizes) else torch.empty   # experts without rows: zero grads
        g_w_in = alloc(w_in.shape, dtype=w_in.dtype, device=w_in.device) if need_in else None
        g_w_out = alloc(w_out.shape, dtype=w_out.dtype, device=w_out.device) if need_out else None
        g_wsort = grad_y.new_empty(inverse.numel(), 1) if need_w else None   # weight gradient of each sorted row
        g_ws = g_wsort.split(sizes) if need_w else None
        acc = torch.promote_types(grad_y.dtype, torch.float32)
        grad_x = grad_y.new_zeros(grad_y.shape, dtype=acc) if need_x else None
        h = w_in.shape[-1] // 2
        for j, e in enumerate(experts):
            xs_e, a_e, s_e, h_e, o_e = saved[5 * j:5 * j + 5]
            tok = src[e]
            g_rows = grad_y.index_select(0, tok)           # dL/d(weighted row)
            if need_w:
                torch.sum(g_rows * o_e, -1, keepdim=True, out=g_ws[e])
            g_o = g_rows.mul_(wsort[e])
            if need_out:
                torch.mm(h_e.t(), g_o, out=g_w_out[e])
            g_h = g_o.mm(w_outs[e].t())
            gate, up = a_e.chunk(2, dim=-1)
            g_a = torch.empty_like(a_e)                    # SwiGLU input gradient: [gate | up]
            torch.ops.aten.silu_backward.grad_input(g_h * up, gate, grad_input=g_a[:, :h])
            torch.mul(g_h, s_e, out=g_a[:, h:])
            if need_in:
                torch.mm(xs_e.t(), g_a, out=g_w_in[e])
            if need_x:
                grad_x.index_add_(0, tok, g_a.mm(w_ins[e].t()).to(acc))
        if need_x:
            grad_x = grad_x.to(grad_y.dtype)
        grad_weight = g_wsort.index_select(0, inverse).to(ctx.weight_dtype).view(-1, k) if need_w else None
        return grad_x, grad_weight, g_w_in, g_w_out, None, None, None, None


def sorted_dispatch(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, w_in: torch.Tensor,
                    w_out: torch.Tensor) -> torch.Tensor:
    """Reference: sort slots by expert, one matmul pair per expert on contiguous rows, weighted combine.

    Deterministic: gathers, and per-expert scatter-adds whose rows are distinct within each call, run in
    expert order (see ``_SortedExperts``).
    """
    t, k = idx.shape
    x, weight, w_in, w_out = compute_dtype(x, weight, w_in, w_out)
    order, inverse, counts = sort_by_expert(idx, w_in.shape[0])
    with torch.autocast(x.device.type, enabled=False):
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


def masked_dispatch(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, w_in: torch.Tensor,
                    w_out: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, combined with gate weights that are zero outside each token's top-k.

    The same function and gradients as ``sorted_dispatch`` (a zero gate weight multiplies an unchosen
    expert's output and its gradient; the router's gradient reaches the chosen slots only), up to the
    order of summation. It costs E / k times the routed experts' FLOPs and an [E, T, 2h] intermediate, but
    has no sort, no host synchronisation and no per-expert loop: four batched kernels per layer. For small
    models on a GPU, where kernel launches rather than FLOPs bound a step; the runs table's ``compute``
    still counts the routed model's real FLOPs. Under autocast it runs in the autocast dtype, as
    ``sorted_dispatch`` does.
    """
    x, weight, w_in, w_out = compute_dtype(x, weight, w_in, w_out)
    with torch.autocast(x.device.type, enabled=False):
        gates = x.new_zeros(idx.shape[0], w_in.shape[0]).scatter_add(1, idx, weight)   # [T, E]
        hidden = swiglu(torch.matmul(x.unsqueeze(0), w_in))                           # [E, T, h]
        out = torch.bmm(hidden, w_out)                                                # [E, T, d]
        return torch.einsum("te,etd->td", gates, out)
