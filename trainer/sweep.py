"""A sweep: plan rows -> trained runs -> ``DIR/runs.csv`` (docs/runs-table.md), resumable and idempotent.

Layout: ``DIR/plan.csv`` (the design), ``DIR/runs.csv`` (one row per finished run, appended atomically
under a file lock), ``DIR/runs/<run_id>/`` (see ``train.py``). Re-running skips runs already in
``runs.csv`` and resumes the others from their checkpoints.

Runs are trained in this process (``run_sweep``, one device) or by a shared queue of worker slots
(``run_queue``: CPU workers or one slot per GPU; a free slot takes the largest remaining run, each run in
its own ``python -m trainer train`` process holding the run folder's lock). ``staged_sweep`` plans one
budget at a time, centred on a fit of the runs finished so far, and extends a profile past an edge where
its minimum sits (``trainer.centre``).
"""
from __future__ import annotations

import csv
import fcntl
import io
import math
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from .data import TokenData
from .files import write_atomic
from .plan import PLAN_REQUIRED, PlanError, Recipe, config_from_row, run_row

#: docs/runs-table.md columns first, in this order; the extras (accounting, recipe, architecture) follow
RUNS_COLUMNS = ("run_id", "group", "loss", "tokens", "n_active", "n_total", "n_embedding", "n_experts", "top_k",
                "granularity", "shared_ratio", "d_model", "n_layers", "flops_per_token", "compute", "seed",
                "budget", "n_heads", "n_shared", "d_expert", "n_router", "six_na", "real_flops_per_token",
                "head_flops_per_token", "flop_convention", "embedding_share", "head_flop_share", "gate",
                "vocab_size", "seq_len", "design", "batch_seqs", "steps", "lr", "warmup_steps", "final_train_ce",
                "wall_s", "device", "dispatch", "precision", "processes")


RECIPE_COLUMNS = ("batch_seqs", "steps", "lr", "warmup_steps")
BUSY_EXIT = 3   # exit status of ``python -m trainer train`` when another process is training the run


def plan_csv(rows: list[dict]) -> bytes:
    """A plan (rows without results) as CSV in ``RUNS_COLUMNS`` order."""
    return to_csv(rows, [c for c in RUNS_COLUMNS if c in rows[0]])


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def to_csv(rows: list[dict], columns: tuple[str, ...] | list[str]) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode()


class RunBusy(RuntimeError):
    """Another process holds the run folder's lock (it is training that run)."""


@contextmanager
def _locked(path: Path, wait: bool = True):
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RunBusy(f"{path.parent.name} is being trained by another process") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def finished_ids(out: Path) -> set[str]:
    path = out / "runs.csv"
    return {r["run_id"] for r in read_csv(path)} if path.exists() else set()


def append_run(out: Path, row: dict) -> None:
    """Append one finished run to ``out/runs.csv``: rewrite to a temp file and rename, under a lock."""
    path = out / "runs.csv"
    with _locked(out / ".runs.lock"):
        rows = read_csv(path) if path.exists() else []
        if any(r["run_id"] == row["run_id"] for r in rows):
            return
        write_atomic(path, to_csv(rows + [row], RUNS_COLUMNS))


def load_design(path: Path, *, vocab_size: int, seq_len: int, seed: int, group: str) -> list[dict]:
    """Rows of a runs table without ``loss`` -> complete plan rows.

    Needs the columns ``PLAN_REQUIRED``; ``run_id``, ``seed``, ``group``, ``n_heads`` and ``seq_len`` are
    used when present, and so is the recipe when all of ``RECIPE_COLUMNS`` are filled in (as in a saved
    ``plan.csv``). Parameter counts and FLOPs are always recomputed from the architecture.
    """
    try:
        rows = read_csv(path)
    except OSError as e:
        raise PlanError(f"cannot read design {path}: {e.strerror}") from None
    if not rows:
        raise PlanError(f"design {path} has no rows")
    missing = [c for c in PLAN_REQUIRED if c not in rows[0]]
    if missing:
        raise PlanError(f"design {path} is missing column(s) {', '.join(missing)} "
                        f"(needed: {', '.join(PLAN_REQUIRED)})")
    plan = []
    for i, row in enumerate(rows, start=1):
        try:
            empty = [c for c in PLAN_REQUIRED if not str(row[c]).strip()]
            if empty:
                raise ValueError(f"empty {', '.join(empty)}")
            tokens = float(row["tokens"])
            if not (tokens > 0 and math.isfinite(tokens)):
                raise ValueError(f"tokens must be > 0, got {row['tokens']}")
            seq = int(row["seq_len"]) if str(row.get("seq_len", "")).strip() else seq_len
            cfg = config_from_row(row, vocab_size, seq)
            given = None
            if all(str(row.get(c, "")).strip() for c in RECIPE_COLUMNS):
                given = Recipe(int(row["batch_seqs"]), int(row["steps"]), float(row["lr"]), int(row["warmup_steps"]))
        except (ValueError, TypeError) as e:
            raise PlanError(f"design {path} row {i}: {e}") from None
        rid = row.get("run_id", "").strip() or None
        run_seed = int(row["seed"]) if str(row.get("seed", "")).strip() else seed
        budget = float(row["budget"]) if str(row.get("budget", "")).strip() else None
        plan.append(run_row(cfg, tokens, seed=run_seed, group=row.get("group", "").strip() or group, run_id=rid,
                            budget=budget, given=given, design=str(row.get("design", "") or "").strip()))
    ids = [r["run_id"] for r in plan]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise PlanError(f"design {path} repeats run_id {', '.join(dup[:3])}")
    return plan


def print_plan(rows: list[dict], file=sys.stdout) -> None:
    cols = ("run_id", "tokens", "n_active", "n_total", "n_experts", "top_k", "granularity", "shared_ratio",
            "real_flops_per_token", "compute", "embedding_share", "head_flop_share", "batch_seqs", "steps", "lr")
    print("  ".join(cols), file=file)
    for r in rows:
        vals = [f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        print("  ".join(vals), file=file)
    print(f"{len(rows)} runs, {sum(float(r['compute']) for r in rows):.3g} real FLOPs in all", file=file)


def shard_rows(plan: list[dict], shard: tuple[int, int]) -> list[dict]:
    """Shard i of n: every n-th run of the plan sorted by compute (largest first), so shards cost about alike."""
    ranked = sorted(plan, key=lambda r: -float(r["compute"]))
    return [r for j, r in enumerate(ranked) if j % shard[1] == shard[0]]


def device_label(device: str) -> str:
    """``cuda:0 (NVIDIA H100 80GB HBM3)`` for a GPU (the runs table records the hardware), else ``device``."""
    if device.startswith("cuda"):
        import torch
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def train_and_record(row: dict, out: Path, data: TokenData, *, device: str, ckpt_every: int, dispatch: str,
                     progress: bool | None = None, precision: str = "auto") -> dict:
    """Train one run (or read back its result) and append it to ``out/runs.csv``. Holds the run folder's
    lock while training (``RunBusy`` when another process has it), so two workers never train one run.
    Under torchrun only rank 0 locks and appends (``trainer.distributed``)."""
    from . import distributed
    from .train import train_run
    t0 = time.time()
    run_dir = out / "runs" / row["run_id"]
    run_dir.mkdir(parents=True, exist_ok=True)
    rank = distributed.world()[0]
    with _locked(run_dir / ".lock", wait=False) if rank == 0 else nullcontext():
        res = train_run(row, data, run_dir, device, ckpt_every=ckpt_every, progress=progress, dispatch=dispatch,
                        precision=precision)
    if rank:
        return res
    res.setdefault("wall_s", round(time.time() - t0, 2))
    res.setdefault("device", device_label(device))
    append_run(out, res)
    return res


def run_sweep(plan: list[dict], out: Path, data: TokenData, *, device: str = "cpu", shard: tuple[int, int] = (0, 1),
              ckpt_every: int = 50, progress: bool | None = None, log=sys.stdout,
              dispatch: str = "sorted", precision: str = "auto") -> list[dict]:
    """Train, in this process, the rows of ``plan`` (of ``shard`` i of n) not yet in ``out/runs.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    done = finished_ids(out)
    rows = plan if shard == (0, 1) else shard_rows(plan, shard)
    results = []
    for i, row in enumerate(rows):
        if row["run_id"] in done:
            continue
        res = train_and_record(row, out, data, device=device, ckpt_every=ckpt_every, dispatch=dispatch,
                               progress=progress, precision=precision)
        results.append(res)
        print(f"[{i + 1}/{len(rows)}] {row['run_id']}: loss {res['loss']:.4f} ({res['wall_s']} s)", file=log,
              flush=True)
    return results


def run_queue(plan: list[dict], out: Path, slots: list[str], child_args: list[str], *, log=sys.stdout,
              poll_s: float = 0.2) -> int:
    """Train the unfinished rows of ``plan`` with one worker per slot (a device name, e.g. ``cpu`` or
    ``cuda:1``): a free slot takes the largest remaining run (by compute to 2 significant digits, then by
    steps, so at one budget the longest run starts first) and trains it in a child
    ``python -m trainer train --plan out/plan.csv --run-id ID ...`` (``child_args`` appended). Returns the
    number of failed runs. The plan rows must be in ``out/plan.csv``."""
    done = finished_ids(out)
    queue = sorted((r for r in plan if r["run_id"] not in done),
                   key=lambda r: (-float(f"{float(r['compute']):.2g}"), -int(r["steps"])))
    running: dict[int, tuple[subprocess.Popen, dict, float]] = {}   # by slot index: a device may hold several
    failed = 0
    while queue or running:
        for i, slot in enumerate(slots):
            if i not in running and queue:
                row = queue.pop(0)
                cmd = [sys.executable, "-m", "trainer", "train", "--plan", str(out / "plan.csv"), "--run-id",
                       row["run_id"], "--out", str(out), "--device", slot, *child_args]
                running[i] = (subprocess.Popen(cmd), row, time.time())
        time.sleep(poll_s)
        for i, (proc, row, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[i]
            slot = slots[i]
            rc = proc.returncode
            state = "done" if rc == 0 else "busy in another process" if rc == BUSY_EXIT else f"FAILED (exit {rc})"
            failed += rc not in (0, BUSY_EXIT)
            print(f"{row['run_id']} on {slot}: {state} after {time.time() - t0:.0f} s; {len(queue)} queued",
                  file=log, flush=True)
    return failed
