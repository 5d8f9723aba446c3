"""Reports (issue 6): every section and figure present, the embedded PNGs are the written files,
the diagnostics verdicts, the scaling picture against the Chinchilla closed form, the design hook,
and the page rendered by headless Chromium."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import bayesmoe
from bayesmoe.cli.main import main
from bayesmoe.decide.optimum import PointPosterior
from bayesmoe.errors import BayesMoeError
from bayesmoe.inference import laplace_fit
from bayesmoe.laws import get_law
from bayesmoe.report import document as report_module
from bayesmoe.report import next_runs, report, scaling, sections
from bayesmoe.report.html import FigureWriter
from bayesmoe.report.verdicts import parameter_verdicts, sampler_verdicts

PER_FIT_SECTIONS = ("data", "model", "diagnostics", "fit", "scaling", "decisions", "validation")
PER_FIT_FIGURES = (
    "runs",
    "rank",
    "trace",
    "prior-posterior",
    "ppc",
    "residuals",
    "loo",
    "isoflop",
    "frontier",
    "decisions",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BESIROGLU = {"E": 1.81686, "A": 482.006, "B": 2085.434, "alpha": 0.34781, "beta": 0.36585}  # arXiv 2404.10102


class _Page(HTMLParser):
    """Section ids, figure ids and <img> sources of a page."""

    def __init__(self):
        super().__init__()
        self.sections, self.figures, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        elif tag == "figure":
            self.figures.append(attrs.get("id"))
        elif tag == "img":
            self.images.append(attrs.get("src", ""))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _isoflop_runs(seed: int = 0) -> pd.DataFrame:
    """A Chinchilla isoFLOP sweep (3 budgets x 6 sizes + 3 larger runs) with 1% noise on loss."""
    law = get_law("chinchilla")
    rows = []
    for c in (1e18, 1e19, 1e20):
        for n in np.sqrt(c / (6 * 20)) * np.geomspace(0.2, 5, 6):
            rows.append({"n_active": n, "tokens": c / (6 * n)})
    for n in (4e8, 6e8, 9e8):
        rows.append({"n_active": n, "tokens": 20 * n * 1.2})
    runs = pd.DataFrame(rows)
    runs.insert(0, "run_id", [f"r{i:02d}" for i in range(len(runs))])
    x = {k: jnp.asarray(v) for k, v in law.covariates(runs).items()}
    mean = np.asarray(law.mean_log_loss({k: jnp.asarray(v) for k, v in BESIROGLU.items()}, x))
    runs["loss"] = np.exp(mean + np.random.default_rng(seed).normal(0, 0.01, len(runs)))
    return runs


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fit")
    runs = folder / "runs.csv"
    _isoflop_runs().to_csv(runs, index=False)
    path = folder / "chin.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short chain may warn about ESS; the report shows that itself
        fit = bayesmoe.fit(runs, "chinchilla", chains=2, warmup=300, draws=300, seed=0, holdout_top_compute=3,
                           prior="chinchilla:besiroglu2024")
    fit.save(path)
    return path


@pytest.fixture(scope="module")
def cli_report(fit_file, tmp_path_factory) -> dict:
    """``bayesmoe report FIT --out DIR --json`` run once; its JSON answer."""
    out = tmp_path_factory.mktemp("report")
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["report", str(fit_file), "--out", str(out), "--json"]) == 0
    return json.loads(buffer.getvalue())


def test_report_has_every_section_and_figure(cli_report):
    path = Path(cli_report["report"])
    page = _parse(path)
    assert page.sections == ["glance", *PER_FIT_SECTIONS]
    assert page.figures == [f"fig-{name}" for name in PER_FIT_FIGURES]
    assert len(page.images) == len(PER_FIT_FIGURES)
    for name, src in zip(PER_FIT_FIGURES, page.images):
        png = path.parent / f"{name}.png"
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == data, f"embedded {name} differs from {png}"
    assert sorted(cli_report["figures"]) == sorted(str(path.parent / f"{n}.png") for n in PER_FIT_FIGURES)
    text = path.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "<script" not in text  # opens offline
    # what a reader needs: exclusions, the formula, held-out runs, a recommendation at the first budget
    assert "--holdout-top-compute" in text and "L = E + A / N^alpha + B / D^beta" in text
    assert "Held-out runs (never fitted)" in text and "compute (FLOPs)" in text


def test_report_several_fits_compare_and_next_runs(fit_file, tmp_path, monkeypatch):
    def next_runs_section(result):
        fig = Figure(figsize=(4, 3))
        fig.add_subplot().plot([0, 1], [result["gain"], 0])
        return "Next runs", f"<p id='design-marker'>spend {result['gain']} here</p>", {"Value of Runs": fig}

    monkeypatch.setattr(next_runs, "next_runs_section", next_runs_section)
    # every per-fit section is rendered in test_report_has_every_section_and_figure; here only the
    # assembly of several fits is under test, so the per-fit sections are cut to the data section
    monkeypatch.setattr(report_module, "_PER_FIT", (sections.data_section, sections.decisions_section))
    fit = bayesmoe.load_fit(fit_file)
    path = report([fit, fit_file], tmp_path / "two", design={"gain": 0.25}, title="Two fits", budgets=[1e21, 1e22])
    page = _parse(path)
    assert page.sections == ["glance", "data", "decisions", "data-2", "decisions-2", "comparison", "next-runs"]
    assert page.figures == ["fig-runs", "fig-decisions", "fig-runs-2", "fig-decisions-2", "fig-next-runs-value-of-runs"]
    assert (path.parent / "next-runs-value-of-runs.png").read_bytes().startswith(PNG_MAGIC)
    text = path.read_text(encoding="utf-8")
    assert "<p id='design-marker'>spend 0.25 here</p>" in text and "<title>Two fits</title>" in text
    assert "<td>1e+21</td>" in text.replace('<td class="text">', "<td>") and "1e+22" in text  # requested budgets
    # the same fit twice: equal elpd and stacking weights summing to 1
    views = [sections.FitView(bayesmoe.load_fit(fit_file), label, "", FigureWriter(tmp_path)) for label in ("x", "y")]
    compare = sections.compare_table(views)
    assert list(compare.columns[:5]) == ["law", "elpd_loo", "se", "elpd_diff", "dse"]
    assert compare["weight"].sum() == pytest.approx(1.0, abs=1e-6)
    assert compare["elpd_loo"].iloc[0] == pytest.approx(compare["elpd_loo"].iloc[1])
    assert "Best-predicting fit by LOO" in text and "8. Comparing the fits" in text


def test_decisions_without_an_optimizer_say_so(fit_file, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise BayesMoeError("law 'chinchilla' has no optimum implemented")

    monkeypatch.setattr(sections, "optimum", refuse)
    view = sections.FitView(bayesmoe.load_fit(fit_file), "chin", "", FigureWriter(tmp_path))
    section = sections.decisions_section(view)
    assert section.id == "decisions" and "no optimum implemented" in section.body and "<img" not in section.body
    assert not list(tmp_path.glob("*.png"))


def test_report_errors(fit_file, tmp_path):
    with pytest.raises(BayesMoeError, match="at least one fit"):
        report([], tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BayesMoeError, match="is a file"):
        report(fit_file, tmp_path / "file")
    with pytest.raises(BayesMoeError, match="does not exist"):
        report(tmp_path / "missing.nc", tmp_path / "out")
    with pytest.raises(BayesMoeError, match="--budgets"):
        report(fit_file, tmp_path / "out", budgets=[-1.0])


def test_parameter_verdicts_name_the_fix():
    table = pd.DataFrame(
        {"r_hat": [1.001, 1.02, 1.2, 1.001], "ess_bulk": [900, 900, 900, 50], "ess_tail": [900, 900, 900, 900]},
        index=["alpha", "beta", "E", "A"],
    )
    out = parameter_verdicts(table, chains=4)
    assert out["verdict"].tolist() == ["ok", "check", "bad", "check"]
    assert "warmup" in out.loc["beta", "action"] and "reparameterise" in out.loc["E", "action"]
    assert "50 effective draws (want 400)" in out.loc["A", "action"]


def test_sampler_verdicts():
    good = sampler_verdicts(
        divergences=0, n_draws=1000, bfmi=np.array([0.9, 1.1]), pareto_k=np.array([0.1, 0.5]), run_ids=["a", "b"]
    )
    assert [v.level for v in good] == ["ok", "ok", "ok"]
    bad = sampler_verdicts(
        divergences=30, n_draws=1000, bfmi=np.array([0.9, 0.2]), pareto_k=np.array([0.1, 0.9]), run_ids=["a", "b"]
    )
    assert [v.level for v in bad] == ["bad", "bad", "check"]
    assert "30 divergent" in bad[0].finding and "chain(s) 1" in bad[1].finding
    assert ": b" in bad[2].finding and "--exclude-top-loss" in bad[2].action


def test_frontier_matches_chinchilla_closed_form():
    """Grid search over sizes reproduces Hoffmann et al. Eq. 4 with Besiroglu et al.'s coefficients;
    LAWS.md: D_opt / N_opt at C = 5.76e23 is about 18 with that set."""
    law = get_law("chinchilla")
    theta = PointPosterior(law, BESIROGLU).draws()
    arch = scaling.Architecture()
    compute = np.array([1e21, 5.76e23])
    front = scaling.frontier(law, theta, arch, compute, n_grid=np.geomspace(1e8, 1e12, 2000))
    a, b = (BESIROGLU[k] for k in ("alpha", "beta"))
    g = (a * BESIROGLU["A"] / (b * BESIROGLU["B"])) ** (1 / (a + b))
    n_opt = g * (compute / 6) ** (b / (a + b))
    np.testing.assert_allclose(front.n_active[0], n_opt, rtol=0.01)
    ratio = compute[1] / (6 * front.n_active[0, 1] ** 2)
    assert ratio == pytest.approx(18, rel=0.1)
    assert np.all(front.near_lo <= front.n_active) and np.all(front.near_hi >= front.n_active)
    assert np.all(front.near_hi / front.near_lo > 1.5)  # a 0.5% loss tolerance admits a wide range of sizes


def test_budget_levels_and_architectures():
    runs = _isoflop_runs()
    runs["compute"] = 6 * runs["n_active"] * runs["tokens"]
    np.testing.assert_allclose(scaling.budget_levels(runs), [1e18, 1e19, 1e20], rtol=1e-9)
    moe = runs.assign(n_total=runs["n_active"] * 5, n_experts=[8] * 12 + [1] * 9, granularity=1.0)
    families = scaling.architectures(moe)
    assert [f.fixed["n_experts"] for f in families] == [8, 1] and [f.n_runs for f in families] == [12, 9]
    assert families[0].total_ratio == pytest.approx(5) and families[0].flops_ratio == pytest.approx(6)
    made = families[0].runs(np.array([1e20]), np.array([1e9]))
    assert made["tokens"].iloc[0] == pytest.approx(1e20 / 6e9) and made["n_experts"].iloc[0] == 8


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium is not installed")
def test_headless_chromium_renders_the_page(cli_report, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1280,2400",
           f"--screenshot={shot}", Path(cli_report["report"]).resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    # not blank: the dark header, text and plots give many distinct colours and dark pixels
    assert pixels.std() > 0.1
    assert (pixels.mean(axis=2) < 0.2).mean() > 0.01
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200


def test_decisions_for_a_family_the_published_architecture_does_not_fit(tmp_path):
    """Our sweep's models are tiny; the joint law's continuous optimum (the paper's 50k vocabulary) puts their
    active size below 10 parameters. The section then shows the trainable configurations only, and the
    glance facts come from them."""
    runs = bayesmoe.load_runs("dataset:trainer_cpu_sweep")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = laplace_fit(runs, "joint", draws=300, seed=0)
    view = sections.FitView(fit, "sweep", "", FigureWriter(tmp_path), np.array([2e13]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        section = sections.decisions_section(view)
    assert "continuous optimum (its published architecture, real-valued sizes) is not shown" in section.body
    assert "Trainable configurations" in section.body and not (tmp_path / "decisions.png").exists()
    budget, facts = view.facts["recommendation"]
    assert budget == 2e13 and "n_active" in facts and "K" in facts["n_active"]   # thousands, not units
    # the search stays within the expert counts the runs trained (32 at most), and says so
    assert "search bounded by the fitted runs: experts max 32" in section.body
    assert "extrapolation in expert count" not in section.body
    assert "experts E 64" not in str(facts) and all(f"{e} experts" not in section.body for e in (64, 128))
