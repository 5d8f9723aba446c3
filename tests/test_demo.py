"""The demo's steps are valid command lines: each parses, and the fits it prints decisions from run in the
fit's default settings (the settings ``tests/test_convergence.py`` checks), so their diagnostics hold."""
import inspect

import pytest

from bayesmoe.cli import demo
from bayesmoe.cli.main import COMMANDS
from bayesmoe.cli.runner import build_parser
from bayesmoe.inference.fitting import fit


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    return demo.steps(tmp_path_factory.mktemp("demo"), demo.DEMO_DRAWS, 500)


def test_every_step_parses_as_a_bayesmoe_command(steps):
    parser = build_parser(COMMANDS)
    for title, argv in steps:
        args = parser.parse_args(argv)
        assert args.command == argv[0], title


def test_fits_use_the_default_draws_and_gadre_is_pooled_by_corpus(steps):
    default_draws = inspect.signature(fit).parameters["draws"].default
    fits = [argv for _, argv in steps if argv[0] == "fit"]
    assert len(fits) == 4
    default_warmup = inspect.signature(fit).parameters["warmup"].default
    for argv in fits:
        assert argv[argv.index("--draws") + 1] == str(default_draws), argv
        assert int(argv[argv.index("--warmup") + 1]) >= default_warmup, argv
    ours = next(a for a in fits if "granularity" in a and "dataset:trainer_cpu_sweep" in a)
    assert ours[ours.index("--warmup") + 1] == str(demo.GRANULARITY_WARMUP)
    gadre = next(a for a in fits if "dataset:gadre2024_overtraining" in a)
    assert gadre[gadre.index("--group") + 1] == "group"
    decisions = next(a for _, a in steps if a[0] == "optimum" and any("gadre2024" in w for w in a))
    assert decisions[decisions.index("--group") + 1] == demo.GADRE_CORPUS


def test_the_report_on_our_runs_includes_sbc_from_a_checkout(steps):
    report = next(a for _, a in steps if a[0] == "report" and "--sbc" in a)
    assert report[report.index("--sbc") + 1] == str(demo.SBC_RESULTS)


def test_the_held_out_runs_are_exactly_the_top_budget():
    from bayesmoe.runs import load_runs

    runs = load_runs("dataset:trainer_cpu_sweep")
    held = runs.nlargest(demo.top_budget_runs(), "compute")
    assert set(held["budget"]) == {runs["budget"].max()}
    assert runs.drop(held.index)["budget"].max() < runs["budget"].max()   # and all of it
