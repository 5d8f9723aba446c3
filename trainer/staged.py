"""A staged sweep: one budget at a time, each centred on a fit of the runs finished before it.

For each budget, in the order given: plan its profiles (``isoflop_design``) centred by
``trainer.centre.fit_centres`` on the finished runs of smaller budgets (the Chinchilla rule until a profile
has a vertex; larger budgets trained earlier, such as a held-out profile, never steer a smaller one), append
them to ``DIR/plan.csv`` and train them; then, for each profile whose lowest loss sits at its smallest or
largest size, plan ``extend`` more sizes past that edge (``design = extend``) and train those. A budget
already in ``plan.csv`` keeps its planned rows, so re-running the same command resumes exactly where it
stopped (finished runs are skipped, unfinished ones resume from their checkpoints).
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

from .centre import edge_side, family_of, fit_centres, profiles
from .config import ModelConfig
from .files import write_atomic
from .flops import account
from .plan import PlanError, beyond_edge, family_config, feasible, isoflop_design, row_at_budget
from .sweep import load_design, plan_csv, read_csv

Trainer = Callable[[list[dict]], int]
"""Trains the given plan rows (already in plan.csv); returns the number of failed runs."""


def _finished(out: Path) -> list[dict]:
    path = out / "runs.csv"
    return read_csv(path) if path.exists() else []


def extension_rows(budget: float, plan: list[dict], finished: list[dict], *, count: int, vocab_size: int,
                   seq_len: int, gate: str, seed: int, group: str) -> list[dict]:
    """Rows extending each of ``budget``'s finished profiles past the edge holding its lowest loss."""
    shapes: dict = defaultdict(set)
    for r in plan:
        if float(r["budget"] or 0) == budget:
            shapes[family_of(r)].add((int(r["d_model"]), int(r["n_layers"])))
    rows = []
    for (b, fam), points in profiles([r for r in finished if r.get("budget")]).items():
        side = edge_side(points) if b == budget and fam in shapes else None
        if side is None:
            continue
        ladder = sorted(shapes[fam], key=lambda s: account(_cfg(fam, s, vocab_size, seq_len, gate)).n_active)
        for d, n in beyond_edge(ladder, side, count):
            cfg = _cfg(fam, (d, n), vocab_size, seq_len, gate)
            if feasible(account(cfg), budget, seq_len):
                rows.append(row_at_budget(cfg, budget, seed=seed, group=group, design="extend"))
    return rows


def _cfg(fam, shape, vocab_size: int, seq_len: int, gate: str) -> ModelConfig:
    return family_config(fam, shape[0], shape[1], vocab_size=vocab_size, seq_len=seq_len, gate=gate)


def staged_sweep(budgets: list[float], out: Path, train: Trainer, *, extend: int = 2,
                 extend_at: tuple[float, ...] | None = None, log=sys.stdout, **design) -> int:
    """Run the stages (see the module docstring); ``design``: keyword arguments of ``isoflop_design``
    (``vocab_size``, ``seq_len``, ``gate``, ``seed`` and ``group`` are needed). ``extend_at``: the budgets
    whose profiles may be extended past an edge (None: all). Returns the number of failed runs."""
    caps = list(design.pop("runs_per_budget", None) or [None])
    if len(caps) not in (1, len(budgets)):
        raise PlanError(f"--runs-per-budget takes 1 value or one per budget ({len(budgets)}), got {len(caps)}")
    caps = dict(zip(budgets, caps * len(budgets) if len(caps) == 1 else caps))
    out.mkdir(parents=True, exist_ok=True)
    plan_path = out / "plan.csv"
    vocab, seq = design["vocab_size"], design["seq_len"]
    plan = (load_design(plan_path, vocab_size=vocab, seq_len=seq, seed=design["seed"], group=design["group"])
            if plan_path.exists() else [])
    failed = 0

    def at(budget: float, kinds: tuple[str, ...]) -> list[dict]:
        return [r for r in plan if r["budget"] and float(r["budget"]) == budget and r["design"] in kinds]

    for budget in budgets:
        stage = at(budget, ("core", "repeat", ""))
        if not stage:
            centre = fit_centres([r for r in _finished(out) if float(r.get("budget") or 0) < budget])
            stage = isoflop_design([budget], centre=centre, runs_per_budget=[caps[budget]], **design)
            plan += stage
            write_atomic(plan_path, plan_csv(plan))
        centres = sorted({(family_of(r), r["n_active"]) for r in stage})
        print(f"# budget {budget:.3g}: {len(stage)} runs, sizes {centres}", file=log, flush=True)
        failed += train(stage)
        if not extend or (extend_at is not None and budget not in extend_at):
            continue
        more = at(budget, ("extend",))
        if not more:
            more = extension_rows(budget, plan, _finished(out), count=extend, vocab_size=vocab, seq_len=seq,
                                  gate=design.get("gate", "renorm"), seed=design["seed"], group=design["group"])
            if more:
                plan += more
                write_atomic(plan_path, plan_csv(plan))
        if more:
            print(f"# budget {budget:.3g}: {len(more)} runs past profile edges", file=log, flush=True)
            failed += train(more)
    return failed
