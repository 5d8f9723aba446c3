"""One training run, resumable: deterministic batches, atomic checkpoints, loss curve, final validation.

A run folder holds ``config.json`` (the plan row and architecture), ``ckpt.pt`` (model, optimizer, step
and loss curve; written atomically every ``ckpt_every`` steps), ``curve.csv`` (step, tokens, lr, train
cross-entropy in nats/token, balance loss, z-loss; rewritten with each checkpoint) and, when finished,
``result.json``. Batches depend only on (seed, step), so a run resumed from its last checkpoint after a
crash or ``kill -9`` follows exactly the same trajectory as an uninterrupted one. On CUDA the forward runs
by default under bf16 autocast (parameters, optimizer state, router, losses in float32; ``precision`` =
``bf16-autocast``), on CPU in float32; ``precision="fp32"`` keeps a CUDA run in float32 too (the CPU
sweep's recipe).
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from . import distributed
from .data import TokenData
from .files import write_atomic
from .model import Transformer
from .plan import Recipe, config_from_row, lr_at

BALANCE_COEF = 0.01   # Switch Transformer's alpha
Z_COEF = 1e-3         # ST-MoE's router z-loss coefficient
VAL_TOKENS = 16384
CURVE_COLUMNS = ("step", "tokens", "lr", "train_ce", "balance_loss", "z_loss")


def _save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    write_atomic(path, buf.getvalue())


def _curve_csv(curve: list[tuple]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CURVE_COLUMNS)
    w.writerows(curve)
    return out.getvalue().encode()


def run_precision(device: str, requested: str = "auto") -> str:
    """The precision a run uses: ``requested`` (``fp32`` or ``bf16-autocast``), or for ``auto``
    ``bf16-autocast`` on CUDA and ``fp32`` elsewhere. ``ValueError`` for bf16 autocast off CUDA."""
    if requested == "auto":
        return "bf16-autocast" if device.startswith("cuda") else "fp32"
    if requested not in ("fp32", "bf16-autocast"):
        raise ValueError(f"precision {requested!r}: expected auto, fp32 or bf16-autocast")
    if requested == "bf16-autocast" and not device.startswith("cuda"):
        raise ValueError(f"precision bf16-autocast needs a CUDA device, not {device!r} (use fp32)")
    return requested


def autocast(device: str, mode: str = "auto"):
    """bf16 autocast when the run's precision (``run_precision(device, mode)``) is ``bf16-autocast`` (the router
    and the losses stay float32), else a no-op context."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=run_precision(device, mode) == "bf16-autocast")


@torch.no_grad()
def evaluate(model: Transformer, data: TokenData, seq_len: int, device: str, max_tokens: int = VAL_TOKENS,
             mode: str = "auto") -> float:
    """Mean cross-entropy (nats/token) over the fixed validation windows."""
    model.eval()
    x_all, y_all = data.val_windows(seq_len, max_tokens)
    total, count = 0.0, 0
    for i in range(0, len(x_all), 64):
        x = torch.from_numpy(x_all[i:i + 64]).to(device)
        y = torch.from_numpy(y_all[i:i + 64]).to(device)
        with autocast(device, mode):
            logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count


def train_run(row: dict, data: TokenData, run_dir: Path, device: str = "cpu", *, ckpt_every: int = 50,
              progress: bool | None = None, dispatch: str = "sorted", precision: str = "auto") -> dict:
    """Train (or resume, or just read back) the run described by a plan row; return the row with ``loss``.

    ``precision``: ``auto``, ``fp32`` or ``bf16-autocast`` (see ``run_precision``); recorded in the result.

    ``progress``: show a tqdm bar (default: when stderr is a terminal).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    result_path = run_dir / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    mode = run_precision(device, precision)
    seq_len = int(row["seq_len"])
    cfg = config_from_row(row, data.vocab_size, seq_len)
    r = Recipe(batch_seqs=int(row["batch_seqs"]), steps=int(row["steps"]), lr=float(row["lr"]),
               warmup_steps=int(row["warmup_steps"]))
    seed = int(row["seed"])
    if distributed.world()[0] == 0:
        write_atomic(run_dir / "config.json", json.dumps({"row": row, "model": cfg.to_dict(), "corpus": data.meta},
                                                         indent=2, default=str).encode())
    rank, n_ranks = distributed.world()
    torch.manual_seed(seed)
    model = Transformer(cfg, dispatch=dispatch).to(device)
    net = model
    if n_ranks > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[torch.device(device).index] if device.startswith("cuda")
                                      else None)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=r.lr, betas=(0.9, 0.95), eps=1e-8)
    ckpt_path = run_dir / "ckpt.pt"
    start, curve = 0, []
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, curve = state["step"], state["curve"]
    bar = None
    if progress or (progress is None and sys.stderr.isatty()):
        from tqdm import tqdm
        bar = tqdm(total=r.steps, initial=start, desc=str(row["run_id"])[:40], leave=False)
    tokens_per_step = r.batch_seqs * seq_len
    for step in range(start, r.steps):
        lr = lr_at(step, r)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = data.batch(step, seed, r.batch_seqs, seq_len)
        x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        if n_ranks > 1:
            x, y = distributed.shard(x, r.batch_seqs), distributed.shard(y, r.batch_seqs)
        with autocast(device, mode):
            logits = net(x)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        balance, z = model.aux_losses()
        loss = ce + BALANCE_COEF * balance + Z_COEF * z
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ce_val, bal_val, z_val = (distributed.mean(torch.stack([ce, balance, z]).float()).tolist() if n_ranks > 1
                                  else (ce.item(), balance.item(), z.item()))
        if not math.isfinite(ce_val):
            raise FloatingPointError(f"run {row['run_id']}: non-finite loss at step {step}")
        curve.append((step, (step + 1) * tokens_per_step, lr, ce_val, bal_val, z_val))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(ce=f"{ce_val:.3f}")
        if rank == 0 and ((step + 1) % ckpt_every == 0 or step + 1 == r.steps):
            _save_checkpoint(ckpt_path, {"model": model.state_dict(), "opt": opt.state_dict(),
                                         "step": step + 1, "curve": curve})
            write_atomic(run_dir / "curve.csv", _curve_csv(curve))
    if bar is not None:
        bar.close()
    result = dict(row)
    result["loss"] = evaluate(model, data, seq_len, device, mode=mode)
    result["final_train_ce"] = curve[-1][3] if curve else float("nan")
    result["dispatch"], result["precision"] = dispatch, mode
    result["processes"] = n_ranks
    if rank == 0:
        write_atomic(result_path, json.dumps(result, indent=2, default=str).encode())
    return result
