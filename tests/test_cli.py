"""The command line: JSON shapes of docs/cli.md and clean errors (one `error:` line, exit 2, no traceback)."""
import json

import pandas as pd
import pytest

from bayesmoe.cli.main import main
from bayesmoe.model.simulate import simulate_runs

TRUTH = {"E": 1.8, "A": 480.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}
TINY = ["--chains", "2", "--warmup", "150", "--draws", "150"]


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code, out, err, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len([x for x in lines if x.startswith("error:")]) == 1, err
    assert "Traceback" not in err and out == ""
    for word in words:
        assert word in err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    simulate_runs("chinchilla", TRUTH, 40, seed=2).to_csv(folder / "runs.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def fitted(files):
    code = main(["fit", str(files / "runs.csv"), "--law", "chinchilla", "--out", str(files / "fit.nc"), *TINY])
    assert code == 0
    return files / "fit.nc"


def test_laws_json(capsys):
    code, out, _ = run(capsys, "laws", "--json")
    laws = json.loads(out)["laws"]
    assert code == 0 and {"chinchilla", "granularity", "joint"} <= set(laws)
    assert laws["joint"]["parameters"] == ["a", "alpha", "b", "beta", "c", "delta", "gamma", "omega", "zeta"]


def test_summary_json_shape(capsys, fitted):
    code, out, _ = run(capsys, "summary", str(fitted), "--json")
    info = json.loads(out)
    assert code == 0
    assert {"law", "n_runs", "draws", "chains", "divergences", "parameters"} <= set(info)
    assert info["draws"] == 300 and info["chains"] == 2
    for name in ("E", "A", "B", "alpha", "beta"):
        assert {"mean", "sd", "q05", "q50", "q95", "r_hat", "ess_bulk"} <= set(info["parameters"][name])


def test_predict_json_shape(capsys, fitted, files):
    pd.read_csv(files / "runs.csv").drop(columns="loss").head(3).to_csv(files / "new.csv", index=False)
    code, out, _ = run(capsys, "predict", str(fitted), str(files / "new.csv"), "--json")
    info = json.loads(out)
    assert code == 0 and info["law"] == "chinchilla" and len(info["runs"]) == 3
    assert set(info["runs"][0]["loss"]) == {"q05", "q50", "q95"}


def test_bad_input_leaves_existing_fit_untouched(capsys, fitted, files):
    before = fitted.read_bytes()
    pd.read_csv(files / "runs.csv").assign(loss=-1.0).to_csv(files / "bad.csv", index=False)
    assert_clean_error(
        *run(capsys, "fit", str(files / "bad.csv"), "--law", "chinchilla", "--out", str(fitted)), "'loss'"
    )
    assert fitted.read_bytes() == before


@pytest.mark.parametrize(
    "args, words",
    [
        (["fit", "missing.csv", "--law", "chinchilla", "--out", "x.nc"], ["does not exist"]),
        (["fit", "{runs}", "--law", "nope", "--out", "x.nc"], ["unknown law 'nope'"]),
        (["fit", "{runs}", "--law", "chinchilla", "--out", "x.nc", "--where", "loss >>"], ["invalid --where"]),
        (["fit", "{runs}", "--law", "chinchilla", "--out", "no/such/dir/x.nc"], ["does not exist"]),
        (["fit", "{runs}", "--law", "chinchilla"], ["--out"]),
        (["fit", "{runs}", "--law", "chinchilla", "--out", "x.nc", "--chains", "two"], ["--chains", "invalid int"]),
        (["summary", "missing.nc"], ["does not exist"]),
        (["predict", "missing.nc", "{runs}"], ["does not exist"]),
        (["nosuchcommand"], ["invalid choice"]),
        (["predict", "{runs}"], ["required"]),
    ],
)
def test_errors_are_one_clean_line(capsys, files, args, words):
    args = [a.replace("{runs}", str(files / "runs.csv")) for a in args]
    assert_clean_error(*run(capsys, *args), *words)


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "fit", "--help")
    assert code == 0 and "--holdout-top-compute" in out
