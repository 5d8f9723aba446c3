"""Command line: ``python -m trainer plan|sweep`` (SPEC §4). Errors: one ``error:`` line, exit 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError
from .data import DataError, prepare
from .plan import PlanError, isoflop_design
from .sweep import RUNS_COLUMNS, load_design, print_plan, run_on_devices, run_sweep, to_csv
from .train import write_atomic


class CliError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes I/N, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= I < N")
    return i, n


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-per-budget", type=int, nargs="+", metavar="K",
                   help="cap on runs per budget: one value, or one per budget")
    p.add_argument("--seed", type=int, default=0, help="training seed of every run (default 0)")
    p.add_argument("--group", default="trainer", help="value of the runs table's group column")
    p.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary size (default 2048)")
    p.add_argument("--seq-len", type=int, default=64, help="training sequence length (default 64)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m trainer", description="Train MoE scaling sweeps that bayesmoe can fit.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("plan", help="print the isoFLOP design without training")
    p.add_argument("--budgets", type=float, nargs="+", required=True, metavar="B", help="training FLOPs per run")
    _common(p)
    p.add_argument("--json", action="store_true", help="print {\"runs\": [...]} on stdout")
    p.add_argument("--out", type=Path, help="also save the design as this CSV")
    s = sub.add_parser("sweep", help="plan (or read) a design and train it into DIR/runs.csv")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--budgets", type=float, nargs="+", metavar="B", help="training FLOPs per run")
    src.add_argument("--plan", type=Path, metavar="DESIGN.csv",
                     help="train exactly these rows (a runs table without loss; needs n_experts, top_k, "
                          "granularity, shared_ratio, d_model, n_layers, tokens)")
    s.add_argument("--out", type=Path, required=True, metavar="DIR")
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:I (default cpu)")
    s.add_argument("--devices", nargs="+", metavar="DEV", help="one worker per device, e.g. cuda:0 cuda:1")
    s.add_argument("--shard", type=_shard, default=(0, 1), help=argparse.SUPPRESS)
    s.add_argument("--corpus", default="gcide", help="gcide (default), austen, gcide+austen or a .txt path")
    s.add_argument("--ckpt-every", type=int, default=50, help="checkpoint interval in steps (default 50)")
    s.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    _common(s)
    return parser


def _plan(args) -> list[dict]:
    if getattr(args, "plan", None) is not None:
        return load_design(args.plan, vocab_size=args.vocab_size, seq_len=args.seq_len, seed=args.seed,
                           group=args.group)
    return isoflop_design(args.budgets, runs_per_budget=args.runs_per_budget, seed=args.seed, group=args.group,
                          vocab_size=args.vocab_size, seq_len=args.seq_len)


def cmd_plan(args) -> None:
    rows = _plan(args)
    if args.out:
        write_atomic(args.out, to_csv(rows, [c for c in RUNS_COLUMNS if c in rows[0]]))
    if args.json:
        print(json.dumps({"runs": rows}))
    else:
        print_plan(rows)


def cmd_sweep(args) -> int:
    if args.device.startswith("cuda") or args.devices:
        import torch
        if not torch.cuda.is_available():
            raise CliError(f"--device {args.device}: CUDA is not available on this machine")
    rows = _plan(args)
    args.out.mkdir(parents=True, exist_ok=True)
    plan_path = args.out / "plan.csv"
    if args.shard == (0, 1):
        write_atomic(plan_path, to_csv(rows, [c for c in RUNS_COLUMNS if c in rows[0]]))
        print_plan(rows)
    if args.devices:
        extra = ["--corpus", args.corpus, "--vocab-size", str(args.vocab_size), "--ckpt-every", str(args.ckpt_every)]
        return run_on_devices(plan_path, args.out, args.devices, extra)
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    data = prepare(args.corpus, args.vocab_size)
    if data.vocab_size != args.vocab_size:
        raise CliError(f"tokenizer has {data.vocab_size} tokens, not --vocab-size {args.vocab_size}")
    run_sweep(rows, args.out, data, device=args.device, shard=args.shard, ckpt_every=args.ckpt_every)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "plan":
            cmd_plan(args)
            return 0
        return cmd_sweep(args)
    except (CliError, PlanError, ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (re-run the same command to resume)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
