"""Command line: ``python -m trainer plan|sweep|train`` (docs/cli.md). Errors: one ``error:`` line, exit 2."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import GATES, ConfigError
from .data import BYTE_VOCAB, DataError, TokenData, prepare
from .files import write_atomic
from .plan import DEFAULT_SEQ_LEN, FAMILIES, SIZES, SPAN, PlanError, isoflop_design
from .sweep import (
    BUSY_EXIT,
    RunBusy,
    load_design,
    plan_csv,
    print_plan,
    run_queue,
    run_sweep,
    shard_rows,
    train_and_record,
)

DISPATCHES = ("sorted", "loop", "masked", "cuda")
PRECISIONS = ("auto", "fp32", "bf16-autocast")


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


def _family(text: str) -> tuple[int, int, float]:
    try:
        e, g, s = text.split(",")
        return int(e), int(g), float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--families takes E,G,S triples such as 8,2,0, got {text!r}") from None


def _design_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-per-budget", type=int, nargs="+", metavar="K",
                   help="cap on runs per budget (whole families first): one value, or one per budget")
    p.add_argument("--seed", type=int, default=0, help="training seed of every run (default 0)")
    p.add_argument("--group", default="trainer", help="value of the runs table's group column")
    p.add_argument("--vocab-size", type=int, default=BYTE_VOCAB,
                   help=f"vocabulary: {BYTE_VOCAB} = bytes (default) or a byte-level BPE size")
    p.add_argument("--seq-len", type=int, default=DEFAULT_SEQ_LEN, help=f"sequence length (default {DEFAULT_SEQ_LEN})")
    p.add_argument("--gate", choices=GATES, default="renorm",
                   help="MoE gate weights: renorm (top-k softmax renormalised, default) or softmax (raw)")
    p.add_argument("--sizes", type=int, default=SIZES, help=f"sizes per (budget, family) profile (default {SIZES})")
    p.add_argument("--span", type=float, default=SPAN, help=f"n_active ratio largest/smallest (default {SPAN:g})")
    p.add_argument("--families", type=_family, nargs="+", metavar="E,G,S",
                   help="families (expansion, granularity, shared ratio); default "
                        + " ".join(f"{e},{g},{s:g}" for e, g, s in FAMILIES))
    p.add_argument("--repeat-at", type=float, nargs="+", default=[], metavar="B",
                   help="budgets whose middle size of the first two families is repeated with more seeds")
    p.add_argument("--repeats", type=int, default=3, help="seeds per repeated point (default 3)")
    p.add_argument("--centre-from", type=Path, metavar="RUNS.csv",
                   help="centre the profiles on the optimum fitted to this runs table (default: Chinchilla's rule)")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--corpus", default="gcide", help="gcide (default), austen, gcide+austen or a .txt path")
    p.add_argument("--ckpt-every", type=int, default=50, help="checkpoint interval in steps (default 50)")
    p.add_argument("--threads", type=int, help="torch CPU threads per run (default: torch's choice)")
    p.add_argument("--dispatch", choices=DISPATCHES, default="sorted",
                   help="MoE expert dispatch: sorted (PyTorch reference, default), loop, masked (every expert on "
                        "every token: E/k x the expert FLOPs, no sort or host sync; small models on a GPU), or "
                        "cuda (custom kernels)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default: bf16-autocast on CUDA, fp32 on CPU), fp32, or bf16-autocast (CUDA only)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m trainer", description="Train MoE scaling sweeps that bayesmoe can fit.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("plan", help="print the isoFLOP design without training")
    p.add_argument("--budgets", type=float, nargs="+", required=True, metavar="B", help="real training FLOPs per run")
    _design_args(p)
    p.add_argument("--json", action="store_true", help="print {\"runs\": [...]} on stdout")
    p.add_argument("--out", type=Path, help="also save the design as this CSV")
    s = sub.add_parser("sweep", help="plan (or read) a design and train it into DIR/runs.csv")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--budgets", type=float, nargs="+", metavar="B", help="real training FLOPs per run")
    src.add_argument("--plan", type=Path, metavar="DESIGN.csv",
                     help="train exactly these rows (a runs table without loss; needs n_experts, top_k, "
                          "granularity, shared_ratio, d_model, n_layers, tokens)")
    _run_args(s)
    s.add_argument("--device", default="cpu", help="cpu, cuda or cuda:I (default cpu)")
    s.add_argument("--devices", nargs="+", metavar="DEV", help="a shared queue with one slot per device")
    s.add_argument("--workers", type=int, default=1, help="CPU worker processes sharing the queue (default 1)")
    s.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/N",
                   help="train only shard I of N (runs by compute, largest first; for job arrays)")
    s.add_argument("--recentre", action="store_true",
                   help="plan one budget at a time (in the order given), centred on a fit of the finished runs")
    s.add_argument("--extend", type=int, default=2,
                   help="with --recentre: sizes added past a profile's edge holding its minimum (default 2)")
    s.add_argument("--extend-at", type=float, nargs="+", metavar="B",
                   help="with --recentre: extend only these budgets' profiles (default: every budget)")
    _design_args(s)
    t = sub.add_parser("train", help="train one row of a plan (what sweep's workers run; runs under torchrun too)")
    t.add_argument("--plan", type=Path, required=True, metavar="DESIGN.csv")
    t.add_argument("--run-id", required=True)
    _run_args(t)
    t.add_argument("--device", default="cpu", help="cpu, cuda or cuda:I (default cpu)")
    t.add_argument("--data", type=Path, help="an already prepared token folder (skips --corpus)")
    t.add_argument("--vocab-size", type=int, default=BYTE_VOCAB)
    t.add_argument("--seq-len", type=int, default=DEFAULT_SEQ_LEN)
    m = sub.add_parser("summary", help="figures of a runs table: shares, valleys, throughput (JSON)")
    m.add_argument("runs", type=Path, metavar="RUNS.csv")
    m.add_argument("--min-sizes", type=int, default=5, help="profiles counted by the valley measure (default 5)")
    return parser


def cmd_summary(args) -> None:
    from .summary import summarize
    from .sweep import read_csv
    try:
        rows = read_csv(args.runs)
    except OSError as e:
        raise CliError(f"cannot read {args.runs}: {e.strerror}") from None
    try:
        print(json.dumps(summarize(rows, args.min_sizes), indent=1))
    except (KeyError, ValueError) as e:
        raise CliError(f"{args.runs} is not a trainer runs table ({type(e).__name__}: {e})") from None


def _design_kw(args) -> dict:
    kw = dict(runs_per_budget=args.runs_per_budget, seed=args.seed, group=args.group, vocab_size=args.vocab_size,
              seq_len=args.seq_len, gate=args.gate, sizes=args.sizes, span=args.span,
              repeat_at=tuple(args.repeat_at), repeats=args.repeats)
    if args.families:
        kw["families"] = tuple(args.families)
    return kw


def _centre(args):
    """The centring function fitted to ``--centre-from`` (None without it)."""
    if args.centre_from is None:
        return None
    from .centre import fit_centres
    from .sweep import read_csv
    try:
        return fit_centres(read_csv(args.centre_from))
    except (OSError, KeyError, ValueError) as e:
        raise CliError(f"--centre-from {args.centre_from}: cannot fit the optimum ({e})") from None


def _plan(args) -> list[dict]:
    if getattr(args, "plan", None) is not None:
        return load_design(args.plan, vocab_size=args.vocab_size, seq_len=args.seq_len, seed=args.seed,
                           group=args.group)
    return isoflop_design(args.budgets, centre=_centre(args), **_design_kw(args))


def cmd_plan(args) -> None:
    rows = _plan(args)
    if args.out:
        write_atomic(args.out, plan_csv(rows))
    if args.json:
        print(json.dumps({"runs": rows}))
    else:
        print_plan(rows)


def _check_device(devices: list[str], dispatch: str, precision: str = "auto") -> None:
    """Clean errors for a CUDA device, the CUDA dispatch or bf16 autocast where they cannot run."""
    import torch
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        raise CliError(f"--device {' '.join(devices)}: CUDA is not available on this machine")
    if precision == "bf16-autocast" and not all(d.startswith("cuda") for d in devices):
        raise CliError("--precision bf16-autocast needs CUDA devices (--device cuda or --devices cuda:I ...); "
                       "use fp32 on CPU")
    if dispatch == "cuda":
        if not all(d.startswith("cuda") for d in devices):
            raise CliError("--dispatch cuda needs CUDA devices (--device cuda or --devices cuda:I ...)")
        from .cuda_dispatch import ExtensionError, extension
        try:
            extension()
        except ExtensionError as e:
            raise CliError(str(e)) from None


def _data(args) -> TokenData:
    data = prepare(args.corpus, args.vocab_size)
    if data.vocab_size != args.vocab_size:
        raise CliError(f"tokenizer has {data.vocab_size} tokens, not --vocab-size {args.vocab_size}")
    return data


def cmd_sweep(args) -> int:
    slots = args.devices or [args.device] * max(1, args.workers)
    _check_device(slots, args.dispatch, args.precision)
    args.out.mkdir(parents=True, exist_ok=True)
    data = _data(args)
    child = ["--data", str(data.directory), "--vocab-size", str(args.vocab_size), "--seq-len", str(args.seq_len),
             "--ckpt-every", str(args.ckpt_every), "--dispatch", args.dispatch, "--precision", args.precision]
    if args.threads:
        child += ["--threads", str(args.threads)]
    plan_path = args.out / "plan.csv"

    def train(rows: list[dict]) -> int:
        rows = shard_rows(rows, args.shard) if args.shard != (0, 1) else rows
        if len(slots) > 1:
            return run_queue(rows, args.out, slots, child)
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        run_sweep(rows, args.out, data, device=slots[0], ckpt_every=args.ckpt_every, dispatch=args.dispatch,
                  precision=args.precision)
        return 0

    if args.recentre:
        if args.plan is not None:
            raise CliError("--recentre plans the budgets itself; it takes --budgets, not --plan")
        from .staged import staged_sweep
        failed = staged_sweep(args.budgets, args.out, train, extend=args.extend,
                              extend_at=tuple(args.extend_at) if args.extend_at else None, **_design_kw(args))
    else:
        rows = _plan(args)
        if args.shard == (0, 1) or not plan_path.exists():
            write_atomic(plan_path, plan_csv(rows))
        print_plan(rows)
        failed = train(rows)
    if failed:
        raise CliError(f"{failed} run(s) failed; re-run the same command to retry them")
    return 0


def cmd_train(args) -> int:
    """One row of a plan; under ``torchrun`` one run data-parallel over the processes (``trainer.distributed``)."""
    from .distributed import init_from_env
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    _check_device([args.device], args.dispatch, args.precision)
    args.device = init_from_env(args.device)
    rows = [r for r in load_design(args.plan, vocab_size=args.vocab_size, seq_len=args.seq_len, seed=0,
                                   group="trainer") if r["run_id"] == args.run_id]
    if not rows:
        raise CliError(f"run_id {args.run_id!r} is not in {args.plan}")
    data = TokenData.open(args.data) if args.data else _data(args)
    try:
        res = train_and_record(rows[0], args.out, data, device=args.device, ckpt_every=args.ckpt_every,
                               dispatch=args.dispatch, precision=args.precision)
    except RunBusy as e:
        print(f"note: {e}", file=sys.stderr)
        return BUSY_EXIT
    except ValueError as e:                      # e.g. a batch that does not split over the torchrun processes
        raise CliError(str(e)) from None
    if "wall_s" in res:                          # rank 0 (or a single process) recorded the run
        print(f"{args.run_id}: loss {res['loss']:.4f} ({res['wall_s']} s, pid {os.getpid()})", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "plan":
            cmd_plan(args)
            return 0
        if args.command == "summary":
            cmd_summary(args)
            return 0
        return cmd_train(args) if args.command == "train" else cmd_sweep(args)
    except (CliError, PlanError, ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (re-run the same command to resume)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
