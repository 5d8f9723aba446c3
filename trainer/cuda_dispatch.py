"""Dispatch through the custom CUDA kernels in ``trainer/csrc`` (same contract as ``dispatch.sorted_dispatch``).

The extension is compiled on first use with ``torch.utils.cpp_extension.load`` into
``$BAYESMOE_CACHE/torch_extensions`` (default ~/.cache/bayesmoe/torch_extensions), and only when CUDA is
available; ``ExtensionError`` (one line: no GPU, no nvcc, no ninja, or the compiler's last line) when it
cannot be. Pipeline: stable sort of slots by expert (torch) -> ``Permute`` (gather kernel; backward sums
the k slot gradients of each token without atomics) -> ``GroupedMM`` (grouped GEMM over row tiles of each
expert's rows: tensor cores for float16 / bfloat16 in 64-row tiles, SIMT for float32 / float64 in 16-row
tiles; backward: grouped GEMM with W^T, grouped weight-gradient GEMM) -> SwiGLU (torch) -> ``GroupedMM`` ->
``Combine`` (weighted un-permute; backward kernel gives both gradients). Under autocast the inputs are cast
to the autocast dtype first (differentiably, so float32 parameters get float32 gradients). Every Function
keeps its inputs in ``save_for_backward``, so a second backward (``retain_graph=True``) works, and float64
runs through the same kernels (``torch.autograd.gradcheck``).
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from .data import cache_root
from .dispatch import compute_dtype, sort_by_expert, swiglu

CSRC = Path(__file__).resolve().parent / "csrc"


class ExtensionError(RuntimeError):
    """The CUDA extension cannot be built or loaded here (one line saying what is missing)."""


def _build_problem() -> str | None:
    """Why the extension cannot be built on this machine, or None."""
    if not torch.cuda.is_available():
        return "--dispatch cuda needs a CUDA GPU; none is visible to torch (use --dispatch sorted)"
    from torch.utils.cpp_extension import CUDA_HOME, is_ninja_available
    if CUDA_HOME is None or not (Path(CUDA_HOME) / "bin" / "nvcc").exists():
        return "--dispatch cuda needs nvcc (the CUDA toolkit; set CUDA_HOME) to build trainer/csrc"
    if not is_ninja_available():
        return "--dispatch cuda needs ninja to build trainer/csrc: pip install 'bayesmoe[gpu]' (or ninja)"
    return None


@functools.lru_cache(maxsize=1)
def extension():
    """The compiled extension module (built once per machine and source version); ``ExtensionError`` when
    it cannot be built here."""
    problem = _build_problem()
    if problem:
        raise ExtensionError(problem)
    from torch.utils.cpp_extension import load
    build = cache_root() / "torch_extensions" / "bayesmoe_dispatch"
    build.mkdir(parents=True, exist_ok=True)
    try:
        return load(name="bayesmoe_dispatch", sources=[str(CSRC / "dispatch_binding.cpp"),
                                                       str(CSRC / "dispatch_kernels.cu")],
                    extra_include_paths=[str(CSRC)], extra_cuda_cflags=["-O3"], build_directory=str(build),
                    verbose=False)
    except (RuntimeError, OSError, ImportError) as e:
        last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ExtensionError(f"building the CUDA dispatch extension failed ({last}); log in {build}") from None


def tile_schedule(counts: torch.Tensor, rows: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor]:
    """Row tiles of at most ``rows`` rows inside each expert's group of sorted rows (``counts`` [E]).

    Returns int32 (tile_expert, tile_start, tile_end) [n_tiles] and offsets [E + 1].
    """
    offsets = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=counts.device)
    offsets[1:] = torch.cumsum(counts, 0)
    n_tiles = (counts + rows - 1) // rows
    expert = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), n_tiles)
    first = torch.cumsum(n_tiles, 0) - n_tiles
    start = offsets[expert] + rows * (torch.arange(expert.numel(), device=counts.device) - first[expert])
    end = torch.minimum(start + rows, offsets[expert + 1])
    i32 = lambda t: t.to(torch.int32).contiguous()  # noqa: E731
    return i32(expert), i32(start), i32(end), i32(offsets)


class Permute(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, src_rows, inverse, k):
        ctx.save_for_backward(inverse)
        ctx.k = k
        return extension().gather_rows(x.contiguous(), src_rows)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return extension().sum_slots(grad.contiguous(), inverse, ctx.k), None, None, None


class GroupedMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, w, tiles):
        a, w = a.contiguous(), w.contiguous()
        ctx.save_for_backward(a, w, *tiles)
        return extension().grouped_mm(a, w, tiles[0], tiles[1], tiles[2], False)

    @staticmethod
    def backward(ctx, grad):
        a, w, expert, start, end, offsets = ctx.saved_tensors
        grad = grad.contiguous()
        ext = extension()
        grad_a = ext.grouped_mm(grad, w, expert, start, end, True) if ctx.needs_input_grad[0] else None
        grad_w = ext.grouped_wgrad(a, grad, offsets) if ctx.needs_input_grad[1] else None
        return grad_a, grad_w, None


class Combine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, out_sorted, weight, inverse):
        out_sorted, weight = out_sorted.contiguous(), weight.contiguous()
        ctx.save_for_backward(out_sorted, weight, inverse)
        return extension().combine(out_sorted, weight, inverse)

    @staticmethod
    def backward(ctx, grad):
        out_sorted, weight, inverse = ctx.saved_tensors
        g_out, g_w = extension().combine_backward(grad.contiguous(), out_sorted, weight, inverse)
        return g_out, g_w, None


def cuda_dispatch(x: torch.Tensor, idx: torch.Tensor, weight: torch.Tensor, w_in: torch.Tensor,
                  w_out: torch.Tensor) -> torch.Tensor:
    """Same contract and result as ``sorted_dispatch`` (shapes in ``trainer.dispatch``); CUDA tensors.

    Returns the autocast dtype under autocast, else ``x``'s dtype (``w_in``, ``w_out`` and ``weight`` are
    cast to it)."""
    k = idx.shape[1]
    x, weight, w_in, w_out = compute_dtype(x, weight, w_in, w_out)
    with torch.autocast("cuda", enabled=False):
        order, inverse, counts = sort_by_expert(idx, w_in.shape[0])
        tiles = tile_schedule(counts, extension().tile_rows(x))
        xs = Permute.apply(x, (order // k).contiguous(), inverse.contiguous(), k)
        hidden = swiglu(GroupedMM.apply(xs, w_in, tiles))
        out = GroupedMM.apply(hidden, w_out, tiles)
        return Combine.apply(out, weight, inverse.contiguous())
