"""Dispatch benchmark: tokens/s of one MoE FFN (forward + backward) by implementation.

CPU (always): sorted reference dispatch vs per-expert mask loop vs a dense SwiGLU FFN with the same
active FLOPs (hidden size = top_k x expert hidden = d_ff), at E = 8, 32, 64 routed experts and
granularity G = 1, 4, 8 (top_k = G, expert hidden = d_ff / G), with uniform routing (random logits) and
learned-like skewed routing (logits biased by a Zipf(1.2) popularity over experts).
GPU (when CUDA is available): the custom CUDA kernels vs the reference vs the loop vs ``torch._grouped_mm``
(where available) vs dense, in bf16, with MFU (``benchmarks/gpu_check.py`` runs the same ``bench``).

FLOP convention (MFU): 6 x tokens x active FFN matmul parameters (3 d d_ff) per step, i.e. forward and
backward of the expert matmuls only (router, permutation and elementwise work excluded), divided by the
step time and the GPU's dense bf16 peak (``--peak-tflops``). Times are medians of ``--repeats`` timed steps
after warm-up; ratios are to the loop (CPU) or dense (GPU) measured in the same run, paired: the median over
repeats of (baseline step time / step time) within one repeat, which cancels load changes slower than a repeat.

Usage: python benchmarks/dispatch.py [--tokens 2048] [--d-model 64] [--repeats 15] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from trainer.dispatch import loop_dispatch, sort_by_expert, sorted_dispatch, swiglu


def routing(t: int, e: int, k: int, skewed: bool, gen: torch.Generator, device: str):
    logits = torch.randn(t, e, generator=gen, device="cpu")
    if skewed:
        pop = 1.0 / torch.arange(1, e + 1, dtype=torch.float32) ** 1.2
        logits = logits + 2.0 * torch.log(pop / pop.sum() * e)
    w, idx = logits.softmax(-1).topk(k, dim=-1)
    return idx.to(device), w.to(device)


def time_steps(fns: dict, params: list, repeats: int, sync) -> dict:
    """Seconds of one forward + backward of each ``fns[name]()``, one list per name (``repeats`` timed steps
    after 2 warm-up rounds). The implementations are timed in turn within every repeat, in alternating order
    (forward, then reversed), so load changes on a shared machine and cache warmth hit all of them alike."""
    times = {name: [] for name in fns}
    names = list(fns)
    for i in range(repeats + 2):
        for name in (names if i % 2 == 0 else names[::-1]):
            for p in params:
                p.grad = None
            sync()
            t0 = time.perf_counter()
            fns[name]().sum().backward()
            sync()
            if i >= 2:
                times[name].append(time.perf_counter() - t0)
    return times


def grouped_mm_dispatch(x, idx, weight, w_in, w_out):
    """Sorted dispatch with torch._grouped_mm for the expert matmuls (GPU, bf16)."""
    t, k = idx.shape
    order, inverse, counts = sort_by_expert(idx, w_in.shape[0])
    offs = torch.cumsum(counts, 0).to(torch.int32)
    xs = x[order // k]
    h = swiglu(torch._grouped_mm(xs, w_in, offs=offs))
    out = torch._grouped_mm(h, w_out, offs=offs) * weight.reshape(-1)[order].unsqueeze(-1)
    return out[inverse].view(t, k, -1).sum(1)


def bench(device: str, dtype, impls: dict, t: int, d: int, d_ff: int, experts, grans, repeats: int, baseline: str,
          peak: float | None):
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for e in experts:
        for g in grans:
            h, k = d_ff // g, g
            if k > e:
                continue
            for skewed in (False, True):
                x = torch.randn(t, d, generator=gen).to(device, dtype).requires_grad_()
                w_in = (torch.randn(e, d, 2 * h, generator=gen) / d ** 0.5).to(device, dtype).requires_grad_()
                w_out = (torch.randn(e, h, d, generator=gen) / h ** 0.5).to(device, dtype).requires_grad_()
                dense_in = (torch.randn(d, 2 * d_ff, generator=gen) / d ** 0.5).to(device, dtype).requires_grad_()
                dense_out = (torch.randn(d_ff, d, generator=gen) / d_ff ** 0.5).to(device, dtype).requires_grad_()
                idx, w = routing(t, e, k, skewed, gen, device)
                w = w.to(dtype)
                fns = {name: (lambda: swiglu(x @ dense_in) @ dense_out) if name == "dense"
                       else (lambda fn=fn: fn(x, idx, w, w_in, w_out)) for name, fn in impls.items()}
                times = time_steps(fns, [x, w_in, w_out, dense_in, dense_out], repeats, sync)
                res = {name: statistics.median(v) for name, v in times.items()}
                row = {"E": e, "G": g, "routing": "skewed" if skewed else "uniform"}
                for name, sec in res.items():
                    row[f"{name} tok/s"] = t / sec
                    # paired ratio: median over repeats of (baseline time / this time) within the same repeat
                    row[f"{name} / {baseline}"] = statistics.median(b / s for b, s in zip(times[baseline], times[name]))
                if peak:
                    for name, sec in res.items():
                        row[f"{name} MFU"] = 6 * t * 3 * d * d_ff / sec / peak
                rows.append(row)
                print(_fmt(row), flush=True)
    return rows


def _fmt(row: dict) -> str:
    return "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())


def markdown(rows: list[dict]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gpu-tokens", type=int, default=16384)
    ap.add_argument("--gpu-d-model", type=int, default=1024)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100 SXM: 989)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = args.d_model
    print(f"# CPU: torch {torch.__version__}, {args.threads} thread(s), T={args.tokens} tokens, d={d}, d_ff={4 * d}, "
          f"fp32, forward+backward, median of {args.repeats}")
    cpu = bench("cpu", torch.float32, {"sorted": sorted_dispatch, "loop": loop_dispatch, "dense": "dense"},
                args.tokens, d, 4 * d, (8, 32, 64), (1, 4, 8), args.repeats, "loop", None)
    print(markdown(cpu))
    slower = [r for r in cpu if r["sorted / loop"] < 1.0]
    print(f"sorted slower than loop in {len(slower)} of {len(cpu)} settings")
    if not torch.cuda.is_available():
        print("# GPU: skipped (no CUDA device)")
        return
    from trainer.cuda_dispatch import cuda_dispatch
    impls = {"cuda": cuda_dispatch, "sorted": sorted_dispatch, "loop": loop_dispatch, "dense": "dense"}
    if hasattr(torch, "_grouped_mm"):
        impls["grouped_mm"] = grouped_mm_dispatch
    dg = args.gpu_d_model
    print(f"# GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16, "
          f"T={args.gpu_tokens}, d={dg}, d_ff={4 * dg}; MFU = 6 T 3 d d_ff / time / {args.peak_tflops} TFLOP/s")
    gpu = bench("cuda", torch.bfloat16, impls, args.gpu_tokens, dg, 4 * dg, (8, 32, 64), (1, 4, 8), args.repeats,
                "dense", args.peak_tflops * 1e12)
    print(markdown(gpu))


if __name__ == "__main__":
    main()
