"""Planner, CLI and resumable sweeps on the committed sample corpus (tiny runs, CPU)."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")
torch.set_num_threads(1)

from trainer.__main__ import main  # noqa: E402
from trainer.data import TokenData, prepare  # noqa: E402
from trainer.plan import Recipe, isoflop_design, lr_at  # noqa: E402
from trainer.sweep import load_design, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "trainer" / "data" / "sample.txt"
RUNS_TABLE_COLUMNS = ["run_id", "group", "loss", "tokens", "n_active", "n_total", "n_embedding", "n_experts", "top_k",
                "granularity", "shared_ratio", "d_model", "n_layers", "flops_per_token", "compute", "seed"]
DESIGN = ("run_id,n_experts,top_k,granularity,shared_ratio,d_model,n_layers,tokens,seq_len,batch_seqs,steps,lr,"
          "warmup_steps\nmoe,8,2,2,0.0,16,1,{tokens},32,4,{steps},0.01,2\n")


def _design(tmp_path, steps=24):
    path = tmp_path / "design.csv"
    path.write_text(DESIGN.format(tokens=steps * 4 * 32, steps=steps))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return prepare(str(SAMPLE), 300, cache=tmp_path_factory.mktemp("cache"))


def _curve(run_dir):
    with open(run_dir / "curve.csv") as f:
        return [tuple(map(float, r.values())) for r in csv.DictReader(f)]


def test_lr_schedule():
    r = Recipe(batch_seqs=8, steps=102, lr=1.0, warmup_steps=5)
    assert lr_at(0, r) == pytest.approx(0.2) and lr_at(4, r) == pytest.approx(1.0)
    assert lr_at(101, r) == pytest.approx(0.1) and lr_at(53, r) == pytest.approx(0.55)


def test_plan_cli_json(capsys):
    assert main(["plan", "--budgets", "1e11", "1e12", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert {r["budget"] for r in runs} == {1e11, 1e12}
    for r in runs:
        assert set(RUNS_TABLE_COLUMNS) - {"loss"} <= set(r)
        assert r["compute"] == r["real_flops_per_token"] * r["tokens"] > r["flops_per_token"] * r["tokens"]
        assert r["compute"] == pytest.approx(r["budget"], rel=0.1)        # isoFLOP up to whole steps
        assert r["n_total"] >= r["n_active"] > 0
        assert r["vocab_size"] == 257 and r["seq_len"] == 128 and r["gate"] == "renorm"
    assert len({r["n_experts"] for r in runs}) >= 3 and {1, 2, 4} <= {r["granularity"] for r in runs}
    assert {r["shared_ratio"] for r in runs} == {0.0, 0.25}
    for b in (1e11, 1e12):                                                 # five sizes per budget
        assert len({r["n_active"] for r in runs if r["budget"] == b}) >= 5


def test_runs_per_budget_caps():
    rows = isoflop_design([1e11, 3e11], runs_per_budget=[3, 5])
    assert [sum(r["budget"] == b for r in rows) for b in (1e11, 3e11)] == [3, 5]


def test_sweep_writes_runs_table_and_skips_finished(tmp_path, data):
    plan = load_design(_design(tmp_path), vocab_size=300, seq_len=32, seed=3, group="g")
    out = tmp_path / "out"
    res = run_sweep(plan, out, data, log=open(os.devnull, "w"))
    assert len(res) == 1
    with open(out / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:len(RUNS_TABLE_COLUMNS)] == RUNS_TABLE_COLUMNS
    row = rows[0]
    assert row["run_id"] == "moe" and row["group"] == "g" and row["seed"] == "3"
    assert 0 < float(row["loss"]) < 7 and int(row["tokens"]) == 24 * 4 * 32
    assert int(row["n_experts"]) == 8 and int(row["top_k"]) == 2 and float(row["granularity"]) == 2
    assert float(row["compute"]) == (float(row["flops_per_token"]) + 6 * 300 * 16) * float(row["tokens"])
    assert row["dispatch"] == "sorted" and row["gate"] == "renorm"
    run_dir = out / "runs" / "moe"
    assert {"config.json", "curve.csv", "ckpt.pt", "result.json"} <= {p.name for p in run_dir.iterdir()}
    assert len(_curve(run_dir)) == 24
    assert run_sweep(plan, out, data, log=open(os.devnull, "w")) == []          # finished: skipped


class _Crash(Exception):
    pass


class CrashingData(TokenData):
    """Raises when asked for the batch of ``crash_step``: a crash in the middle of a run."""

    crash_step = 14

    def batch(self, step, seed, batch_size, seq_len):
        if step == self.crash_step:
            raise _Crash
        return super().batch(step, seed, batch_size, seq_len)


def test_resume_after_crash_equals_uninterrupted(tmp_path, data):
    plan = load_design(_design(tmp_path), vocab_size=300, seq_len=32, seed=0, group="g")
    quiet = open(os.devnull, "w")
    run_sweep(plan, tmp_path / "ref", data, log=quiet)
    crashing = CrashingData(data.directory, data.vocab_size, data.train, data.val)
    with pytest.raises(_Crash):
        run_sweep(plan, tmp_path / "crash", data=crashing, ckpt_every=5, log=quiet)
    state = torch.load(tmp_path / "crash" / "runs" / "moe" / "ckpt.pt", weights_only=False)
    assert state["step"] == 10                                   # last checkpoint before the crash
    assert not (tmp_path / "crash" / "runs.csv").exists()
    run_sweep(plan, tmp_path / "crash", data, ckpt_every=5, log=quiet)
    assert _curve(tmp_path / "crash" / "runs" / "moe") == _curve(tmp_path / "ref" / "runs" / "moe")
    loss = lambda d: json.loads((d / "runs" / "moe" / "result.json").read_text())["loss"]  # noqa: E731
    assert loss(tmp_path / "crash") == loss(tmp_path / "ref")


def _cli(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "trainer", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.slow
def test_kill_9_then_resume_matches(tmp_path, data):
    """A real ``kill -9`` of the CLI process (slow: three interpreter starts and a 400-step run); the fast
    suite covers the same resume path in process (test_resume_after_crash_equals_uninterrupted)."""
    design = _design(tmp_path, steps=400)
    common = ["--plan", str(design), "--corpus", str(SAMPLE), "--vocab-size", "300", "--threads", "1"]
    os.environ["BAYESMOE_CACHE"] = str(tmp_path / "cache")
    try:
        killed = _cli(["sweep", *common, "--out", str(tmp_path / "k"), "--ckpt-every", "20"])
        ckpt = tmp_path / "k" / "runs" / "moe" / "ckpt.pt"
        deadline = time.time() + 60
        while not ckpt.exists() and time.time() < deadline and killed.poll() is None:
            time.sleep(0.01)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        step = torch.load(ckpt, weights_only=False)["step"]
        assert 0 < step < 400                                     # really killed mid-run
        resumed = _cli(["sweep", *common, "--out", str(tmp_path / "k"), "--ckpt-every", "20"])
        ref = _cli(["sweep", *common, "--out", str(tmp_path / "r"), "--ckpt-every", "400"])
        assert resumed.wait() == 0 and ref.wait() == 0, resumed.stderr.read() + ref.stderr.read()
    finally:
        del os.environ["BAYESMOE_CACHE"]
    assert _curve(tmp_path / "k" / "runs" / "moe") == _curve(tmp_path / "r" / "runs" / "moe")
    rows = [list(csv.DictReader(open(tmp_path / d / "runs.csv"))) for d in ("k", "r")]
    assert len(rows[0]) == 1 and rows[0][0]["loss"] == rows[1][0]["loss"]


BAD_DESIGNS = [
    ("n_experts,top_k,granularity,d_model,n_layers\n8,1,1,16,1\n",
     "error: design .* is missing column\\(s\\) shared_ratio, tokens"),
    ("n_experts,top_k,granularity,shared_ratio,d_model,n_layers,tokens\n8,1,1,0.3,16,1,1000\n",
     "error: design .* row 1: shared_ratio 0.3 with top_k 1"),
    ("n_experts,top_k,granularity,shared_ratio,d_model,n_layers,tokens\n8,1,1,0,16,1,-5\n",
     "error: design .* row 1: tokens must be > 0"),
]
USAGE_ERRORS = [["sweep", "--out", "OUT"], ["plan", "--budgets", "abc"], ["plan", "--budgets", "-1"],
                ["plan", "--budgets", "1e5"], ["plan", "--budgets", "1e24"],
                ["sweep", "--budgets", "1e11", "--out", "OUT", "--dispatch", "fast"]]


def _main_in_process(args, capsys) -> tuple[int, str]:
    """Exit code and stderr of ``python -m trainer ARGS`` run in this process (argparse errors exit)."""
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def _one_error_line(code, err, message=None):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error:")
    if message:
        assert re.match(message, lines[0]), lines[0]


@pytest.mark.parametrize("content, message", BAD_DESIGNS)
def test_bad_design_is_a_clean_error(tmp_path, content, message, capsys):
    path = tmp_path / "d.csv"
    path.write_text(content)
    code, err = _main_in_process(["sweep", "--plan", str(path), "--out", str(tmp_path / "o")], capsys)
    _one_error_line(code, err, message)


def test_cli_usage_errors(tmp_path, capsys):
    for args in USAGE_ERRORS:
        _one_error_line(*_main_in_process([str(tmp_path) if a == "OUT" else a for a in args], capsys))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_dispatch_without_a_gpu_is_one_line(tmp_path, capsys):
    for args in (["sweep", "--budgets", "1e11", "--out", str(tmp_path), "--dispatch", "cuda"],
                 ["sweep", "--budgets", "1e11", "--out", str(tmp_path), "--device", "cuda"],
                 ["sweep", "--plan", str(_design(tmp_path)), "--out", str(tmp_path), "--device", "cuda",
                  "--dispatch", "cuda"]):
        code, err = _main_in_process(args, capsys)
        _one_error_line(code, err, "error: .*(CUDA|cuda)")


def test_bf16_autocast_on_cpu_is_one_line(tmp_path, capsys):
    code, err = _main_in_process(["sweep", "--plan", str(_design(tmp_path)), "--out", str(tmp_path / "o"),
                                  "--precision", "bf16-autocast"], capsys)
    _one_error_line(code, err, "error: --precision bf16-autocast needs CUDA")
    assert not (tmp_path / "o" / "runs.csv").exists()


def test_precision_and_dispatch_are_recorded(tmp_path, data):
    """``--precision fp32`` and the masked dispatch reach the runs table; the masked run's loss equals the
    sorted one's on the same plan (the same model, summation order aside)."""
    plan = load_design(_design(tmp_path, steps=12), vocab_size=300, seq_len=32, seed=0, group="g")
    losses = {}
    for name in ("sorted", "masked"):
        out = tmp_path / name
        run_sweep(plan, out, data, log=open(os.devnull, "w"), dispatch=name, precision="fp32")
        row = next(csv.DictReader(open(out / "runs.csv")))
        assert row["dispatch"] == name and row["precision"] == "fp32"
        losses[name] = float(row["loss"])
    assert losses["masked"] == pytest.approx(losses["sorted"], rel=1e-4)


def test_shared_queue_trains_each_run_once(tmp_path, data):
    """Two worker slots take runs from one queue (separate processes); every run is trained once and appended
    to one runs table; a second call finds nothing left to do."""
    from trainer.sweep import plan_csv, run_queue
    design = tmp_path / "design.csv"
    design.write_text(DESIGN.format(tokens=8 * 4 * 32, steps=8) + "moe2,4,1,1,0.0,16,1,1024,32,4,8,0.01,1\n"
                      "dense,1,1,1,0.0,16,1,1024,32,4,8,0.01,1\n")
    plan = load_design(design, vocab_size=300, seq_len=32, seed=0, group="g")
    out = tmp_path / "q"
    out.mkdir()
    (out / "plan.csv").write_bytes(plan_csv(plan))
    child = ["--data", str(data.directory), "--vocab-size", "300", "--seq-len", "32", "--threads", "1"]
    log = open(os.devnull, "w")
    assert run_queue(plan, out, ["cpu", "cpu"], child, log=log) == 0
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert sorted(r["run_id"] for r in rows) == ["dense", "moe", "moe2"]
    assert run_queue(plan, out, ["cpu", "cpu"], child, log=log) == 0
    assert len(list(csv.DictReader(open(out / "runs.csv")))) == 3


@pytest.mark.slow
def test_cli_errors_in_a_real_process(tmp_path):
    """The same error contract through ``python -m trainer`` (exit status 2, one line on stderr)."""
    path = tmp_path / "d.csv"
    path.write_text(BAD_DESIGNS[1][0])
    cases = [(["sweep", "--plan", str(path), "--out", str(tmp_path / "o")], BAD_DESIGNS[1][1])]
    cases += [([str(tmp_path) if a == "OUT" else a for a in args], None) for args in USAGE_ERRORS]
    for args, message in cases:
        p = _cli(args)
        _, err = p.communicate()
        _one_error_line(p.returncode, err, message)


def test_distributed_shard_splits_the_global_batch(monkeypatch):
    from trainer import distributed
    x = torch.arange(12).reshape(6, 2)
    monkeypatch.setattr(distributed, "world", lambda: (1, 3))
    assert distributed.shard(x, 6).tolist() == [[4, 5], [6, 7]]
    with pytest.raises(ValueError, match="not divisible by the 3 torchrun"):
        distributed.shard(x[:5], 5)


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path, data):
    """One run data-parallel over 2 torchrun processes (gloo, CPU) follows the single-process loss curve."""
    design = tmp_path / "d.csv"
    design.write_text("run_id,n_experts,top_k,granularity,shared_ratio,d_model,n_layers,tokens,seq_len,batch_seqs,"
                      "steps,lr,warmup_steps\ndense,1,1,1,0.0,16,2,3072,32,4,24,0.01,2\n")
    common = ["train", "--plan", str(design), "--run-id", "dense", "--data", str(data.directory), "--vocab-size",
              "300", "--seq-len", "32", "--threads", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = lambda pre, out: subprocess.run([sys.executable, *pre, "-m", "trainer", *common, "--out", str(out)],  # noqa: E731
                                          cwd=ROOT, env=env, capture_output=True, text=True)
    one = run([], tmp_path / "one")
    two = run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], tmp_path / "two")
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    a, b = _curve(tmp_path / "one" / "runs" / "dense"), _curve(tmp_path / "two" / "runs" / "dense")
    assert len(a) == len(b) == 24
    for ra, rb in zip(a, b):
        assert ra[3] == pytest.approx(rb[3], rel=1e-5)
    rows = list(csv.DictReader(open(tmp_path / "two" / "runs.csv")))
    assert len(rows) == 1 and rows[0]["processes"] == "2"
