"""A sweep: plan rows -> trained runs -> ``DIR/runs.csv`` (SPEC §1), resumable and idempotent.

Layout: ``DIR/plan.csv`` (the design), ``DIR/runs.csv`` (one row per finished run, appended atomically
under a file lock), ``DIR/runs/<run_id>/`` (see ``train.py``). Re-running skips runs already in
``runs.csv`` and resumes the others from their checkpoints.
"""
from __future__ import annotations

import csv
import fcntl
import io
import math
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .data import TokenData
from .plan import PLAN_REQUIRED, PlanError, Recipe, config_from_row, run_row
from .train import train_run, write_atomic

#: SPEC §1 columns first, in this order; the extras (recipe, architecture) follow
RUNS_COLUMNS = ("run_id", "group", "loss", "tokens", "n_active", "n_total", "n_embedding", "n_experts", "top_k",
                "granularity", "shared_ratio", "d_model", "n_layers", "flops_per_token", "compute", "seed",
                "budget", "n_heads", "n_shared", "d_expert", "n_router", "six_na", "vocab_size", "seq_len",
                "batch_seqs", "steps", "lr", "warmup_steps", "final_train_ce", "wall_s", "device")


RECIPE_COLUMNS = ("batch_seqs", "steps", "lr", "warmup_steps")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def to_csv(rows: list[dict], columns: tuple[str, ...] | list[str]) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue().encode()


@contextmanager
def _locked(path: Path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
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
                            budget=budget, given=given))
    ids = [r["run_id"] for r in plan]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise PlanError(f"design {path} repeats run_id {', '.join(dup[:3])}")
    return plan


def print_plan(rows: list[dict], file=sys.stdout) -> None:
    cols = ("run_id", "tokens", "n_active", "n_total", "n_experts", "top_k", "granularity", "shared_ratio",
            "flops_per_token", "compute", "batch_seqs", "steps", "lr")
    print("  ".join(cols), file=file)
    for r in rows:
        vals = [f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        print("  ".join(vals), file=file)
    print(f"{len(rows)} runs, {sum(float(r['compute']) for r in rows):.3g} FLOPs in all (M x D)", file=file)


def run_sweep(plan: list[dict], out: Path, data: TokenData, *, device: str = "cpu", shard: tuple[int, int] = (0, 1),
              ckpt_every: int = 50, progress: bool | None = None, log=sys.stdout) -> list[dict]:
    """Train the rows of ``plan`` that are not yet in ``out/runs.csv`` (only those of ``shard`` i of n)."""
    out.mkdir(parents=True, exist_ok=True)
    done = finished_ids(out)
    results = []
    for i, row in enumerate(plan):
        if i % shard[1] != shard[0] or row["run_id"] in done:
            continue
        t0 = time.time()
        res = train_run(row, data, out / "runs" / row["run_id"], device, ckpt_every=ckpt_every, progress=progress)
        res.setdefault("wall_s", round(time.time() - t0, 2))
        res.setdefault("device", device)
        append_run(out, res)
        results.append(res)
        print(f"[{i + 1}/{len(plan)}] {row['run_id']}: loss {res['loss']:.4f} ({res['wall_s']} s)", file=log, flush=True)
    return results


def run_on_devices(plan_path: Path, out: Path, devices: list[str], extra_args: list[str]) -> int:
    """One worker process per device, each training every n-th run of the plan; returns the worst exit code."""
    procs = [subprocess.Popen([sys.executable, "-m", "trainer", "sweep", "--plan", str(plan_path), "--out", str(out),
                               "--device", dev, "--shard", f"{i}/{len(devices)}", *extra_args])
             for i, dev in enumerate(devices)]
    return max(p.wait() for p in procs)
