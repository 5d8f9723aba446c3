"""GPU check of the trainer in one script (``make gpu-check``; ``benchmarks/gpu_check.sh`` on a bare machine).

Results go to ``$OUT`` (default ``benchmarks/gpu_out``) in six files: ``results.json`` (rewritten after each
section, so a run cut short still leaves what it finished), ``dispatch.md``, ``gpu_sweep_runs.csv``,
``gpu_sweep_plan.csv``, ``gpu_sweep_curves.tar.gz`` and the wrapper's ``log.txt``. Sections (keys of
results.json):
1. ``hardware``: GPU, driver, CUDA, torch, nvcc, xformers; the extension's build time (or its error).
2. ``kernels``: the custom CUDA dispatch against the float64 sorted reference on the same GPU: outputs
   and all four gradients (x, gate weights, w_in, w_out), float32 and bfloat16, several shapes (an expert
   without tokens included); max |error| / max |reference| per tensor; float64 ``gradcheck`` and a second
   backward through a retained graph; a bf16-autocast training step of the whole model, cuda vs sorted.
3. ``dispatch`` (and ``dispatch.md``): the dispatch benchmark (``benchmarks/dispatch.py``'s ``bench``): one MoE
   FFN forward + backward in bf16, reference (sorted), loop, CUDA kernels, ``torch._grouped_mm`` (where the
   build has it) and a dense FFN at equal active FLOPs; medians, paired ratios to dense, MFU.
4. ``gpu_sweep``: a short GPU sweep (``python -m trainer sweep --plan PLAN``, default
   benchmarks/gpu_sweep_plan.csv; ``--sweep-dispatch`` and ``--sweep-precision`` pass through; several runs
   sharing the GPU) in sweeps/<plan name>, stopped at ``--sweep-seconds``; its runs.csv (``device`` names the
   GPU), plan.csv and loss curves (tar.gz) are copied to ``$OUT``.
``kernels`` also checks the masked all-experts dispatch (``trainer.dispatch.masked_dispatch``, float32)
against the float64 reference.

Usage: python benchmarks/gpu_check.py [--sections kernels,dispatch,sweep] [--sweep-seconds 260] [--slots 10]
       [--plan PLAN.csv] [--sweep-dispatch masked] [--sweep-precision fp32] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from trainer.dispatch import sorted_dispatch  # noqa: E402

SHAPES = ((300, 64, 48, 8, 2), (1000, 32, 17, 64, 8), (5, 16, 16, 4, 1), (4096, 256, 256, 16, 2),
          (2048, 512, 128, 64, 8))
"""(tokens T, d_model, expert hidden h, experts E, top_k k); the last expert receives no token."""
DEFAULT_PLAN = ROOT / "benchmarks" / "gpu_sweep_plan.csv"
TOL = {"float32": 1e-4, "bfloat16": 2e-2}
"""Bound on max |error| / max |reference| per tensor (bf16: inputs rounded to bf16, products in fp32)."""


def write(out: Path, name: str, obj) -> None:
    tmp = out / f".{name}.tmp"
    tmp.write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=2, default=str))
    os.replace(tmp, out / name)


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def hardware() -> dict:
    props = torch.cuda.get_device_properties(0)
    try:
        import xformers
        xf = xformers.__version__
    except ImportError:
        xf = None
    return {"gpu": torch.cuda.get_device_name(0), "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2 ** 30, 1), "sms": props.multi_processor_count,
            "gpus": torch.cuda.device_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "driver": _cmd(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]),
            "nvcc": _cmd(["nvcc", "--version"]).splitlines()[-1:] or None, "xformers": xf,
            "grouped_mm": hasattr(torch, "_grouped_mm"), "cpus": os.cpu_count(), "python": sys.version.split()[0]}


def _case(t, d, h, e, k, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(t, d, generator=g, device="cuda")
    logits = torch.randn(t, e, generator=g, device="cuda")
    logits[:, -1] = -1e9                                  # one expert receives no token
    w, idx = logits.softmax(-1).topk(k, dim=-1)
    w_in = torch.randn(e, d, 2 * h, generator=g, device="cuda") / d ** 0.5
    w_out = torch.randn(e, h, d, generator=g, device="cuda") / h ** 0.5
    return [v.to(dtype).requires_grad_() for v in (x, w, w_in, w_out)], idx


def compare(dispatch, dtype) -> list[dict]:
    """Rows of max |error| / max |reference| for the output and each gradient (reference: sorted, float64)."""
    rows = []
    for t, d, h, e, k in SHAPES:
        inputs, idx = _case(t, d, h, e, k, dtype)
        out = dispatch(inputs[0], idx, *inputs[1:])
        ref_in = [v.detach().double().requires_grad_() for v in inputs]
        ref = sorted_dispatch(ref_in[0], idx, *ref_in[1:])
        grad = torch.randn(ref.shape, device="cuda", dtype=torch.float64)
        got = torch.autograd.grad(out, inputs, grad.to(dtype))
        want = torch.autograd.grad(ref, ref_in, grad)
        row = {"dtype": str(dtype).split(".")[-1], "T": t, "d": d, "h": h, "E": e, "k": k}
        for name, a, b in zip(("out", "grad_x", "grad_w", "grad_w_in", "grad_w_out"), (out, *got), (ref, *want)):
            a, b = a.detach().double(), b.detach()
            row[name] = float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
        row["ok"] = all(row[n] <= TOL[row["dtype"]] for n in ("out", "grad_x", "grad_w", "grad_w_in", "grad_w_out"))
        rows.append(row)
        print(f"  {row}", flush=True)
    return rows


def kernels() -> dict:
    from trainer.cuda_dispatch import cuda_dispatch
    from trainer.dispatch import masked_dispatch
    res = {"tolerance": TOL, "cases": []}
    for dtype in (torch.float32, torch.bfloat16):
        res["cases"] += compare(cuda_dispatch, dtype)
    res["masked_cases"] = compare(masked_dispatch, torch.float32)
    inputs, idx = _case(12, 8, 8, 4, 2, torch.float64)
    res["gradcheck_float64"] = bool(torch.autograd.gradcheck(lambda *a: cuda_dispatch(a[0], idx, *a[1:]),
                                                             tuple(inputs)))
    y = cuda_dispatch(inputs[0], idx, *inputs[1:])
    g = torch.randn_like(y)
    first = torch.autograd.grad(y, inputs, g, retain_graph=True)
    second = torch.autograd.grad(y, inputs, g)
    res["second_backward_equal"] = all(torch.equal(a, b) for a, b in zip(first, second))
    res["model_step"] = model_step()
    res["all_ok"] = (all(c["ok"] for c in res["cases"] + res["masked_cases"]) and res["gradcheck_float64"]
                     and res["second_backward_equal"] and res["model_step"]["ok"])
    return res


def model_step() -> dict:
    """One bf16-autocast forward + backward of a small MoE transformer: cuda vs sorted dispatch, same weights."""
    import torch.nn.functional as F

    from trainer.config import moe_config
    from trainer.model import Transformer
    from trainer.train import autocast
    cfg = moe_config(vocab_size=257, seq_len=128, d_model=256, n_layers=2, expansion=8, granularity=2)
    ids = torch.randint(0, 257, (8, 128), device="cuda", generator=torch.Generator(device="cuda").manual_seed(0))
    out = {}
    for name in ("sorted", "cuda"):
        torch.manual_seed(0)
        model = Transformer(cfg, dispatch=name).cuda()
        with autocast("cuda"):
            logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, 257), ids[:, 1:].reshape(-1))
        loss.backward()
        out[name] = (loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()]))
    rel = float((out["cuda"][1] - out["sorted"][1]).norm() / out["sorted"][1].norm())
    return {"loss_sorted": out["sorted"][0], "loss_cuda": out["cuda"][0], "grad_rel_l2": rel,
            "ok": abs(out["cuda"][0] - out["sorted"][0]) < 1e-2 and rel < 5e-2}


def benchmark(repeats: int) -> list[dict]:
    from dispatch import bench, grouped_mm_dispatch, markdown

    from trainer.cuda_dispatch import cuda_dispatch
    from trainer.dispatch import loop_dispatch
    impls = {"cuda": cuda_dispatch, "sorted": sorted_dispatch, "loop": loop_dispatch, "dense": "dense"}
    if hasattr(torch, "_grouped_mm"):
        try:                                          # the build may have it without supporting this GPU / dtype
            inputs, idx = _case(64, 64, 64, 4, 2, torch.bfloat16)
            grouped_mm_dispatch(inputs[0], idx, *inputs[1:]).sum().backward()
            impls["grouped_mm"] = grouped_mm_dispatch
        except RuntimeError as e:
            print(f"  torch._grouped_mm left out: {str(e).splitlines()[0]}", flush=True)
    rows = bench("cuda", torch.bfloat16, impls, 16384, 1024, 4096, (8, 32, 64), (1, 4, 8), repeats, "dense", 989e12)
    return rows, markdown(rows)


def gpu_sweep(out: Path, seconds: float, slots: int, dispatch: str = "cuda", plan: Path = DEFAULT_PLAN,
              precision: str = "auto") -> dict:
    """The runs of ``plan`` on this GPU, ``slots`` runs at a time, until ``seconds``; the sweep folder is
    sweeps/<plan's name> (checkpoints stay there), its tables and loss curves are copied to OUT."""
    sweep = ROOT / "sweeps" / plan.stem
    cmd = [sys.executable, "-m", "trainer", "sweep", "--plan", str(plan), "--out", str(sweep),
           "--devices", *(["cuda:0"] * slots), "--dispatch", dispatch, "--precision", precision,
           "--ckpt-every", "1000", "--threads", "1"]
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    try:
        rc = proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        rc = "stopped at the time limit"
    runs = sweep / "runs.csv"
    n = max(0, len(runs.read_text().splitlines()) - 1) if runs.exists() else 0
    for name in ("runs", "plan"):
        if (sweep / f"{name}.csv").exists():
            shutil.copy(sweep / f"{name}.csv", out / f"gpu_sweep_{name}.csv")
    with tarfile.open(out / "gpu_sweep_curves.tar.gz", "w:gz") as tar:
        for f in sorted([*sweep.glob("runs/*/curve.csv"), *sweep.glob("runs/*/result.json")]):
            tar.add(f, arcname=str(f.relative_to(sweep)))
    return {"command": " ".join(cmd[1:]), "exit": rc, "wall_s": round(time.time() - t0, 1), "finished_runs": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep-seconds", type=float, default=260)
    ap.add_argument("--slots", type=int, default=10, help="sweep runs sharing the GPU at once")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per benchmark setting")
    ap.add_argument("--sections", default="kernels,dispatch,sweep", help="which of kernels,dispatch,sweep to run")
    ap.add_argument("--sweep-dispatch", choices=("sorted", "loop", "masked", "cuda"), default="cuda")
    ap.add_argument("--sweep-precision", choices=("auto", "fp32", "bf16-autocast"), default="auto")
    ap.add_argument("--plan", type=Path, default=DEFAULT_PLAN, help="the sweep's design (default %(default)s)")
    args = ap.parse_args()
    out = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "gpu_out")
    out.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        print("error: no CUDA GPU visible to torch; gpu-check needs one", file=sys.stderr)
        sys.exit(2)
    t_start = time.time()
    results: dict = {"hardware": hardware()}
    print(f"# hardware: {results['hardware']}", flush=True)
    from trainer.cuda_dispatch import ExtensionError, extension
    t0 = time.time()
    try:
        extension()
        results["hardware"]["extension_build_s"] = round(time.time() - t0, 1)
    except ExtensionError as e:
        results["hardware"]["extension_error"] = str(e)
    write(out, "results.json", results)
    print(f"# extension: {results['hardware'].get('extension_build_s', results['hardware'].get('extension_error'))}",
          flush=True)
    sections = {}
    if "extension_error" not in results["hardware"]:
        for name, fn in (("kernels", kernels), ("dispatch", lambda: benchmark(args.repeats))):
            if name not in args.sections:
                continue
            t0 = time.time()
            print(f"# {name}", flush=True)
            try:
                res = fn()
            except Exception as e:  # noqa: BLE001 - record the failure, go on with the next section
                res = {"error": f"{type(e).__name__}: {e}"}
            if name == "dispatch" and isinstance(res, tuple):
                write(out, "dispatch.md", res[1] + "\n")
                res = res[0]
            results[name] = res
            sections[name] = round(time.time() - t0, 1)
            write(out, "results.json", results)
            print(f"# {name}: {sections[name]} s", flush=True)
    if "sweep" in args.sections:
        print("# gpu sweep", flush=True)
        results["gpu_sweep"] = gpu_sweep(out, args.sweep_seconds, args.slots, args.sweep_dispatch,
                                         args.plan.resolve(), args.sweep_precision)
    results["sections_s"] = sections
    results["total_s"] = round(time.time() - t_start, 1)
    write(out, "results.json", results)
    print(f"# done: {results['gpu_sweep']}, sections {sections}, total {results['total_s']} s", flush=True)


if __name__ == "__main__":
    main()
