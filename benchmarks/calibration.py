"""Calibration of predictive intervals at the top of scale, with and without the discrepancy term.

For each dataset: fit the law on the runs below its top scale (default NUTS settings), learn the
model-discrepancy term by forward chaining within those runs (``bayesmoe validate``; refits on the
smaller runs predict the larger ones, :mod:`bayesmoe.decide.validate`), then predict the held-out top
runs, which neither the fit nor the chaining saw. Reported per dataset: 90% coverage, median
|relative error| and R^2 of the held-out losses, law-only and with the discrepancy term.

    python benchmarks/calibration.py                        # every case; results appended to --out
    python benchmarks/calibration.py --only epoch gadre     # some cases
    python benchmarks/calibration.py --table                # print the markdown table of --out

Cases (held-out top of scale):
    epoch   Hoffmann et al.'s runs as extracted by Epoch AI (../shared/data, skipped when absent), chinchilla,
            5 highest-loss runs dropped, the 24 largest-compute runs (10%) held out
    gadre   Gadre et al. 2024, chinchilla pooled by corpus, the 1.4B and 6.9B runs held out
    clark   Clark et al. 2022, the 28 runs at 1.3B held out: three laws pooled by router (routing,
            routing_irreducible, joint), each forward-chained within the 195 fitted runs; the prediction is
            their mixture stacked on those forward-chaining log scores (issue 20, item 3), so the choice
            among the laws is made from the fitted runs alone. ``--clark-single`` gives the old case
            (routing pooled by router alone).
    clark_like  as clark, fitted only on runs in the held-out runs' configuration (``routing_frequency`` 0.5,
            top-1; 143 of the 195): the demo's selection
    clark_config  as clark, all 195 runs, each law pooled by router and routing configuration
            (``--group group+routing_frequency+top_k``: 13 groups, dense runs shared)
    sweep   our CPU sweep, joint law, the top compute budget held out
    sweep_gpu  our CPU sweep, joint law, all 80 runs fitted; held out: the GPU runs of the same recipe at 3e13,
            1e14 and 3e14 FLOPs (``trainer_gpu_extension``, its replicas left out), 3x-30x past the sweep's top

``--two-step`` scores each case one *and* two steps past the data (issue 20, item 4): the top level
and the level below it are both held out, the fit and its forward chaining see only the runs below
them, and the scores are given per step (record ``"<case>, two steps"``, key ``by_step``):
    epoch   step 1: compute ranks 25-48; step 2: the 24 largest-compute runs
    gadre   step 1: the 1.4B runs; step 2: the 6.9B runs (fit on 411M and smaller, as the one-step case)
    clark   step 1: the 370M level (368M-708M dense parameters, 54 runs); step 2: the 28 runs at 1.3B
    sweep   step 1: the 1e12 budget; step 2: the 2e12 budget (fit on 1e11 and 3e11)
    sweep_gpu  step 1: the 3e13 GPU runs; step 2: the 1e14 and 3e14 GPU runs (fit on all 80 CPU runs, as the
            one-step case)

A case with ``candidates`` fits each one, forward-chains it (``validate(..., score=log_score)``: one set of
refits gives its discrepancy term and its chaining log scores), stacks the candidates on those scores
(:func:`bayesmoe.decide.compare.chaining_matrix`) and scores the mixture of their predictives
(:func:`bayesmoe.decide.compare.mixture_predictive`) on the held-out runs. The mixture's discrepancy term is
learned from the members' chaining errors, moment-matched to the mixture
(:func:`bayesmoe.decide.compare.mixture_discrepancy`); ``with_member_discrepancy`` adds each member's own term
instead, for comparison. Each candidate's own scores are kept in ``candidates``.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayesmoe
from bayesmoe.decide.compare import (
    WEIGHTS_FROM,
    chaining_matrix,
    log_score,
    mixture_discrepancy,
    mixture_predictive,
    stack_log_scores,
)
from bayesmoe.decide.coverage import coverage_count, pooled_count
from bayesmoe.decide.validate import calibration, validate
from bayesmoe.runs import load_runs

EPOCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "chinchilla-epoch" / "svg_extracted_data.csv"


def _top_budget(frame: pd.DataFrame) -> pd.Series:
    return frame["compute"] >= 0.5 * frame["compute"].max()


def _epoch_steps(frame: pd.DataFrame) -> np.ndarray:
    rank = frame["compute"].rank(ascending=False, method="first").to_numpy()
    return np.where(rank <= 24, 2, np.where(rank <= 48, 1, 0))


def _budget_steps(frame: pd.DataFrame) -> np.ndarray:
    budgets = np.sort(frame["budget"].unique())
    return np.where(frame["budget"] == budgets[-1], 2, np.where(frame["budget"] == budgets[-2], 1, 0))


CASES = {
    "epoch": dict(runs=str(EPOCH), law="chinchilla", load={"exclude_top_loss": 5},
                  heldout=lambda f: f["compute"].rank(ascending=False, method="first") <= 24,
                  steps_past=_epoch_steps),
    "gadre": dict(runs="dataset:gadre2024_overtraining", law="chinchilla", group="group",
                  heldout=lambda f: f["n_active"] >= 1e9,
                  steps_past=lambda f: np.where(f["n_active"] >= 5e9, 2, np.where(f["n_active"] >= 1e9, 1, 0))),
    "clark": dict(runs="dataset:clark2022_routing", law="joint", group="group",
                  heldout=lambda f: f["n_active"] >= 1.2e9,
                  steps_past=lambda f: np.where(f["n_active"] >= 1.2e9, 2, np.where(f["n_active"] >= 3e8, 1, 0)),
                  candidates=[dict(law="routing", group="group"), dict(law="routing_irreducible", group="group"),
                              dict(law="joint", group="group")]),
    "sweep": dict(runs="dataset:trainer_cpu_sweep", law="joint", heldout=_top_budget, steps_past=_budget_steps),
    "sweep_gpu": dict(runs=["dataset:trainer_cpu_sweep", "dataset:trainer_gpu_extension"], law="joint",
                      load={"where": "design != 'replica'"}, heldout=lambda f: f["budget"] > 2e13,
                      steps_past=lambda f: np.where(f["budget"] > 5e13, 2, np.where(f["budget"] > 2e13, 1, 0))),
}
#: Clark's split restricted to the held-out runs' configuration (every other block routed, top-1), as
#: ``bayesmoe demo`` fits Clark's runs: the laws have no term for the routing-frequency and top-k variants.
CASES["clark_like"] = CASES["clark"] | {"load": {"where": "routing_frequency == 0.5 and top_k == 1"}}
#: All 195 of Clark's fitted runs, pooled by router *and* routing configuration (``--group A+B+C``): each
#: configuration keeps its own router terms, which the laws cannot express, and shares the dense law. With 13
#: groups the pooling scales adapt slowly: at the default 500 warmup steps routing's c_tau and
#: routing_irreducible's b_tau ended at R-hat > 1.01, so these fits adapt for 1000 (as the demo's granularity fit).
CONFIGURATION = "group+routing_frequency+top_k"
CASES["clark_config"] = CASES["clark"] | {"group": CONFIGURATION, "candidates": [
    dict(law=c["law"], group=CONFIGURATION, warmup=1000) for c in CASES["clark"]["candidates"]]}


def _term_record(term) -> dict | None:
    """The learned term as recorded here: its posterior means and placement, without its posterior draws."""
    return None if term is None else {k: v for k, v in term.as_meta().items() if k not in ("draws", "tilts")}


def load_case(case: dict, law: str) -> pd.DataFrame:
    """The case's runs for ``law``: one table, or several (``runs`` a list) loaded alike and stacked."""
    sources = case["runs"] if isinstance(case["runs"], list) else [case["runs"]]
    return pd.concat([load_runs(s, law=law, **case.get("load", {})) for s in sources], ignore_index=True)


def split(case: dict, frame: pd.DataFrame, two_step: bool) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(fitted runs, held-out runs by label): ``{"top": ...}``, or ``{"1": ..., "2": ...}`` with ``two_step``."""
    if not two_step:
        held = np.asarray(case["heldout"](frame), dtype=bool)
        return frame[~held], {"top": frame[held]}
    step = np.asarray(case["steps_past"](frame))
    return frame[step == 0], {"1": frame[step == 1], "2": frame[step == 2]}


def _record(name: str, law: str, train: pd.DataFrame, scored: dict[str, dict]) -> dict:
    """The case's record: the one-step keys as before, or ``by_step`` for a two-step split."""
    if "top" in scored:
        top = scored["top"]
        return {"case": name, "law": law, "n_train": len(train), "n_heldout": top["n_runs"],
                "heldout_distance": top.get("median_distance"), "law_only": top["law_only"],
                "with_discrepancy": top.get("with_discrepancy")}
    return {"case": f"{name}, two steps", "law": law, "n_train": len(train), "by_step": scored}


def run_case(name: str, case: dict, steps: int, two_step: bool = False) -> dict:
    frame = load_case(case, case["law"])
    train, parts = split(case, frame, two_step)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = bayesmoe.fit(train, law=case["law"], group=case.get("group"), progress_bar=False)
        fit_warnings = sorted({str(w.message) for w in caught if w.category.__name__ == "FitWarning"})
        result = validate(fitted, steps=steps)
    term = result.discrepancy
    return {
        **_record(name, case["law"], train, {label: calibration(fitted, runs) for label, runs in parts.items()}),
        "discrepancy": _term_record(term),
        "chaining": result.summary().reset_index().to_dict(orient="records"), "fit_warnings": fit_warnings,
        "refit_warnings": sum(len(r["warnings"]) for r in result.refits), "seconds": round(time.perf_counter() - start),
    }


def _mixture_scores(fits: list, weights: np.ndarray, heldout: pd.DataFrame, term, prob: float = 0.9) -> dict:
    """Coverage, median |relative error| and R^2 of the mixture on ``heldout``: law-only, with the mixture's
    own discrepancy ``term`` (the default), and with each member's own term (for comparison)."""
    observed = heldout["loss"].to_numpy(float)
    out = {"n_runs": len(heldout), "prob": prob, "median_distance": float(np.median(term.distance(heldout)))}
    # the point is the law-only mixture's median whatever the band (the terms are zero-mean: Fit.predict)
    point = np.median(np.exp(mixture_predictive(fits, weights, heldout, discrepancy=False)), axis=0)
    for name, use in (("law_only", False), ("with_discrepancy", term), ("with_member_discrepancy", True)):
        loss = np.exp(mixture_predictive(fits, weights, heldout, discrepancy=use))
        lo, hi = np.quantile(loss, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        residual = observed - point
        out[name] = {"coverage": float(np.mean((observed >= lo) & (observed <= hi))),
                     "median_abs_rel_error": float(np.median(np.abs(residual / observed))),
                     "r2": float(1 - np.sum(residual**2) / np.sum((observed - observed.mean()) ** 2)),
                     "count": coverage_count(loss, observed, prob)}
    return out


def run_stacked_case(name: str, case: dict, steps: int, two_step: bool = False) -> dict:
    """Fit and forward-chain each candidate, stack them on the chaining log scores, score the mixture."""
    start = time.perf_counter()
    fits, tables, members = [], [], []
    for candidate in case["candidates"]:
        frame = load_case(case, candidate["law"])
        train, parts = split(case, frame, two_step)
        begun = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fitted = bayesmoe.fit(train, law=candidate["law"], group=candidate.get("group"),
                                  pool=candidate.get("pool", ()), progress_bar=False,
                                  **({"warmup": candidate["warmup"]} if "warmup" in candidate else {}))
            fit_warnings = sorted({str(w.message) for w in caught if w.category.__name__ == "FitWarning"})
            result = validate(fitted, steps=steps, score=log_score)
        term = result.discrepancy
        fits.append(fitted)
        tables.append(result.errors)
        scored = {label: calibration(fitted, runs) for label, runs in parts.items()}
        members.append({
            **candidate, "elpd_chaining": float(result.errors["score"].sum()),
            **(scored["top"] if "top" in scored else {"by_step": scored}),
            "discrepancy": _term_record(term),
            "chaining": result.summary().reset_index().to_dict(orient="records"), "fit_warnings": fit_warnings,
            "refit_warnings": sum(len(r["warnings"]) for r in result.refits),
            "seconds": round(time.perf_counter() - begun)})
        print(json.dumps(members[-1]), flush=True)
    scores, _ = chaining_matrix(tables)
    weights = stack_log_scores(scores)
    label = " + ".join(c["law"] + (f" pooled by {c['group']}" if c.get("group") else "") for c in case["candidates"])
    term = mixture_discrepancy(tables, weights, scale_column=result.scale_column,
                               reference=float(train[result.scale_column].max()))
    mixed = {part: _mixture_scores(fits, weights, runs, term) for part, runs in parts.items()}
    for member, weight in zip(members, weights):
        member["weight"] = float(weight)
    record = _record(name, "stacked: " + label, train, mixed)
    if "top" in mixed:
        record["with_member_discrepancy"] = mixed["top"]["with_member_discrepancy"]
    return {
        **record, "weights_from": "chaining", "weights_description": WEIGHTS_FROM["chaining"],
        "weights": {c["law"]: float(w) for c, w in zip(case["candidates"], weights)},
        "discrepancy": _term_record(term), "candidates": members, "seconds": round(time.perf_counter() - start),
    }


def write_json(out: str | Path, content) -> None:
    """``content`` as indented JSON in ``out``, atomically (a temporary file beside it, then a rename)."""
    tmp = Path(out).with_suffix(".tmp")
    tmp.write_text(json.dumps(content, indent=1))
    tmp.replace(out)


def save_record(out: Path, results: list[dict], record: dict) -> list[dict]:
    """``results`` with ``record`` replacing any earlier one of its case, written to ``out`` atomically; prints it."""
    results = [r for r in results if r["case"] != record["case"]] + [record]
    write_json(out, results)
    print(json.dumps(record), flush=True)
    return results


def run_and_save(out: Path, names: list[str], run) -> list[dict]:
    """The records of ``out`` (a results file; missing: none) with each case of ``names`` run (``run(name)``
    returns its record) and saved as it finishes (:func:`save_record`); Epoch's case is skipped where its data
    is absent."""
    results = json.loads(out.read_text()) if out.exists() else []
    if names:
        bayesmoe.configure()
    for name in names:
        if name == "epoch" and not EPOCH.exists():
            print(f"skip epoch: {EPOCH} is absent")
            continue
        results = save_record(out, results, run(name))
    return results


#: one case per dataset, none sharing a run with another: their joint predictives are independent, so their
#: covered counts pool by convolution (:func:`bayesmoe.decide.coverage.pooled_count`). ``sweep`` is left out
#: because ``sweep_gpu``'s fit contains its runs, and Clark's other fit sets because they share its runs.
INDEPENDENT = ("epoch", "gadre", "clark_config", "sweep_gpu")


def _count(scores: dict) -> str:
    count = (scores.get("with_discrepancy") or {}).get("count")
    if count is None:
        return "-"
    return (f"{count['covered']}/{count['n_runs']}: {count['range'][0]}-{count['range'][1]}, "
            f"{count['p_all']:.0%}, {'yes' if count['consistent'] else 'no'}")


def pooled(results: list[dict]) -> str:
    """One line per band: the :data:`INDEPENDENT` cases' covered counts pooled (those with a ``count``)."""
    chosen = [r for r in results if r["case"] in INDEPENDENT and "count" in r["law_only"]]
    if not chosen:
        return ""
    lines = [f"Pooled over {', '.join(r['case'] for r in chosen)} (independent datasets):"]
    for band in ("law_only", "with_discrepancy"):
        total = pooled_count([r[band]["count"] for r in chosen])
        verdict = "consistent" if total["consistent"] else "not consistent"
        lines.append(f"- {band.replace('_', ' ')}: {total['covered']} of {total['n_runs']} covered, the joint "
                     f"predictives expect {total['expected']:.1f}; P(at least as many) {total['p_at_least']:.3f}, "
                     f"P(at most) {total['p_at_most']:.3f}: {verdict}")
    return "\n".join(lines)


def _pair(scores: dict, key: str, fmt: str) -> str:
    law_only, with_term = scores["law_only"][key], (scores.get("with_discrepancy") or {}).get(key, float("nan"))
    return f"{law_only:{fmt}} / {with_term:{fmt}}"


def table(results: list[dict]) -> str:
    """Markdown: the one-step table, then (when measured) the two-step table with one row per step."""
    count = "covered with the term: count, its joint predictive's 90% range, P(all), consistent"
    lines = ["| dataset (law) | fitted / held-out runs | held-out distance (ln) | discrepancy s0, s1, t | "
             f"90% coverage law-only / with | {count} | median abs rel error law-only / with | R^2 law-only / with |",
             "|---|---|---|---|---|---|---|---|"]
    two_step = ["| dataset (law) | fitted runs | step past the data | held-out runs | distance (ln) | "
                f"90% coverage law-only / with | {count} | median abs rel error law-only / with | "
                "R^2 law-only / with |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        d = r["discrepancy"] or {}
        if "by_step" in r:
            for step, scores in sorted(r["by_step"].items()):
                two_step.append(
                    f"| {r['case']} ({r['law']}) | {r['n_train']} | {step} | {scores['n_runs']} | "
                    f"{scores.get('median_distance') or 0:.2f} | {_pair(scores, 'coverage', '.0%')} | "
                    f"{_count(scores)} | "
                    f"{_pair(scores, 'median_abs_rel_error', '.2%')} | {_pair(scores, 'r2', '.3f')} |")
            continue
        lines.append(
            f"| {r['case']} ({r['law']}) | {r['n_train']} / {r['n_heldout']} | {r['heldout_distance'] or 0:.2f} | "
            f"{d.get('s0', 0):.4f}, {d.get('s1', 0):.4f}, {d.get('t', 0):.4f} | {_pair(r, 'coverage', '.0%')} | "
            f"{_count(r)} | "
            f"{_pair(r, 'median_abs_rel_error', '.2%')} | {_pair(r, 'r2', '.3f')} |")
    extra = pooled(results)
    return "\n".join(lines + ([""] + two_step if len(two_step) > 2 else []) + ([""] + [extra] if extra else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/calibration_results.json")
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    parser.add_argument("--clark-single", action="store_true",
                        help="clark: the routing law pooled by router alone (the case before the stacked mixture)")
    parser.add_argument("--two-step", action="store_true",
                        help="hold out the top two levels and score one and two steps past the data (docstring)")
    args = parser.parse_args()

    def run(name: str) -> dict:
        case = CASES[name]
        if name == "clark" and args.clark_single:
            case = {k: v for k, v in case.items() if k != "candidates"} | {"law": "routing"}
        runner = run_stacked_case if "candidates" in case else run_case
        return runner(name, case, args.steps, args.two_step)

    print(table(run_and_save(Path(args.out), [] if args.table else args.only, run)))


if __name__ == "__main__":
    main()
