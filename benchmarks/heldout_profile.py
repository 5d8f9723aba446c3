"""Out-of-sample check on our own runs: fit below the held-out isoFLOP budget, predict its profiles.

The CPU sweep (``datasets/trainer_cpu_sweep.csv``) holds one isoFLOP budget out of the fit (the largest,
``design == "heldout"`` or the top ``budget``). This script fits the law on the other runs (default NUTS
settings), learns the model-discrepancy term by forward chaining within them (:mod:`bayesmoe.decide.validate`),
and for the held-out runs reports: coverage of the 90% predictive intervals (law-only and with the
discrepancy term), median |relative error| of the predictive median, and, per held-out profile (one
family: n_experts, top_k, granularity, shared_ratio), whether the observed best size lies inside the
90% band of the optimal ``n_active`` on that profile.

The optimal size on a profile is found along the profile's own iso-compute curve: tokens and embedding
counts are interpolated log-linearly in ``n_active`` between the profile's runs (real FLOPs, as trained),
the law's mean loss is evaluated per posterior draw on a grid of 200 sizes spanning the profile plus the
profile's own run sizes (so an observed best size is a grid point, not half a step off one), and the argmin
per draw gives the band. A band whose edge touches the grid edge is reported as such.

    python benchmarks/heldout_profile.py [--runs dataset:trainer_cpu_sweep] [--law joint] [--out FILE.json]
    python benchmarks/heldout_profile.py --where "budget <= 2e12" --out benchmarks/heldout_profile_2e12.json
        # the earlier check: runs above 2e12 dropped first, so 2e12 is the held-out top
    python benchmarks/heldout_profile.py --runs dataset:trainer_cpu_sweep dataset:trainer_gpu_extension \
        --where "design != 'replica'" --heldout "budget > 2e13" --out benchmarks/heldout_profile_gpu.json
        # all 80 CPU runs fitted; the GPU runs past 2e13 held out (one profile per family and budget)
    python benchmarks/heldout_profile.py --runs dataset:trainer_cpu_sweep dataset:trainer_gpu_extension \
        --where "design != 'replica'" --predict benchmarks/gpu_sweep_plan_v3.csv --out benchmarks/prediction_3e14.json
        # a prediction of planned runs (no losses), recorded before they are trained
    python benchmarks/heldout_profile.py --runs dataset:trainer_gpu_extension --where "design != 'replica'" \
        --score benchmarks/prediction_3e14.json --out benchmarks/prediction_3e14_scored.json
        # that prediction against the runs once trained (no fit)
"""
from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pandas as pd

import bayesmoe
from bayesmoe.decide import validate as validation
from bayesmoe.runs import load_runs

FAMILY = ["n_experts", "top_k", "granularity", "shared_ratio"]
PROB = 0.9


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit runs, held-out runs): the ``design == "heldout"`` rows, else the top budget."""
    if "design" in frame.columns and (frame["design"] == "heldout").any():
        held = frame["design"] == "heldout"
    else:
        key = frame["budget"] if "budget" in frame.columns else frame["compute"].round(-10)
        held = key == key.max()
    return frame[~held].copy(), frame[held].copy()


def profile_grid(profile: pd.DataFrame, points: int = 200) -> pd.DataFrame:
    """Runs-table rows along one isoFLOP profile: log-linear interpolation in n_active between its runs."""
    profile = profile.sort_values("n_active")
    log_n = np.log(profile["n_active"].to_numpy(float))
    grid = np.union1d(np.linspace(log_n.min(), log_n.max(), points), log_n)  # the runs' own sizes are grid points
    rows = {"n_active": np.exp(grid)}
    for column in ("tokens", "n_embedding", "n_total", "compute"):
        if column in profile.columns:
            rows[column] = np.exp(np.interp(grid, log_n, np.log(np.maximum(profile[column].to_numpy(float), 1.0))))
    out = pd.DataFrame(rows)
    for column in FAMILY + (["group"] if "group" in profile.columns else []):
        out[column] = profile[column].iloc[0]
    out["run_id"] = [f"grid{i}" for i in range(len(out))]
    return out


def _inside(band: list[float], size: float) -> bool:
    """Whether ``size`` lies in a size band; exp(log(n)) may round a run's own size off itself by 1e-16."""
    return bool(band[0] * (1 - 1e-9) <= size <= band[-1] * (1 + 1e-9))


def _band(best: np.ndarray, prob: float) -> list[float]:
    return [float(q) for q in np.quantile(best, [(1 - prob) / 2, 0.5, 1 - (1 - prob) / 2])]


def best_size_band(fitted, profile: pd.DataFrame, prob: float = PROB) -> dict:
    """The band of the optimal n_active along ``profile``: ``band`` with each draw's losses carrying one draw of
    the discrepancy term's tilt across the profile (as ``optimum``'s bands of the best configuration do; the
    law's alone for a fit without a tilt), and ``law_only``."""
    grid = profile_grid(profile)
    sizes = grid["n_active"].to_numpy()
    log_loss = fitted.log_mean(grid)  # (S, points)
    term = fitted.discrepancy
    tilt = 0.0 if term is None else term.tilt(grid, np.random.default_rng(7), len(log_loss))
    best = sizes[np.argmin(log_loss + tilt, axis=1)]
    lo, mid, hi = _band(best, prob)
    edge = np.mean((best <= sizes[0]) | (best >= sizes[-1]))
    out = {"family": {c: profile[c].iloc[0] for c in FAMILY}, "sizes": len(profile), "band": [lo, mid, hi],
           "share_at_grid_edge": float(edge), "law_only": _band(sizes[np.argmin(log_loss, axis=1)], prob)}
    if "loss" in profile.columns and profile["loss"].notna().all():   # a planned profile has no losses yet
        observed = float(profile.loc[profile["loss"].idxmin(), "n_active"])
        out["observed_best"] = observed
        out["inside"] = _inside([lo, hi], observed)
    return out


def planned_predictions(fitted, plan: pd.DataFrame, prob: float = PROB) -> list[dict]:
    """Each planned run's predictive band of loss, law-only and with the discrepancy term (no loss needed)."""
    law_only = fitted.predict(plan, prob=prob, discrepancy=False)
    with_term = fitted.predict(plan, prob=prob)
    return [{"run_id": r, "n_active": float(n), "compute": float(c), "law_only": list(map(float, a[1:4])),
             "with_discrepancy": list(map(float, b[1:4]))}
            for r, n, c, a, b in zip(plan["run_id"], plan["n_active"], plan["compute"],
                                     law_only.itertuples(index=False), with_term.itertuples(index=False))]


def score_prediction(prediction: dict, runs: pd.DataFrame) -> dict:
    """A recorded ``--predict`` output against the runs since trained: per run, whether its loss lies inside
    the law-only band and the band with the term; per profile, whether the observed best size lies inside the
    recorded best-size bands (with the tilt and law-only). Runs not trained yet are left out."""
    losses = runs.set_index("run_id")["loss"]
    rows = [p | {"observed": float(losses[p["run_id"]]),
                 **{f"inside_{k}": bool(p[k][0] <= losses[p["run_id"]] <= p[k][2])
                    for k in ("law_only", "with_discrepancy")}}
            for p in prediction["predictions"] if p["run_id"] in losses.index]
    profiles = []
    for recorded in prediction["profiles"]:
        family = np.ones(len(runs), bool)
        for column, value in recorded["family"].items():
            family &= np.isclose(runs[column].astype(float), float(value))
        if "budget" in recorded:
            family &= np.isclose(runs["budget"].astype(float), recorded["budget"])
        trained = runs[family]
        if len(trained) < recorded["sizes"]:
            continue
        best = float(trained.loc[trained["loss"].idxmin(), "n_active"])
        profiles.append(recorded | {"observed_best": best,
                                    "inside": _inside(recorded["band"], best),
                                    "inside_law_only": _inside(recorded["law_only"], best)})
    return {"plan": prediction.get("plan"), "runs": rows, "profiles": profiles,
            **{f"coverage_{k}": float(np.mean([r[f"inside_{k}"] for r in rows])) if rows else None
               for k in ("law_only", "with_discrepancy")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=["dataset:trainer_cpu_sweep"],
                        help="runs tables (stacked when several)")
    parser.add_argument("--law", default="joint")
    parser.add_argument("--out", default="benchmarks/heldout_profile_results.json")
    parser.add_argument("--where", metavar="EXPR", help="pandas query of the runs to use at all (before the split)")
    parser.add_argument("--heldout", metavar="EXPR", help="pandas query of the held-out runs (default: see split)")
    parser.add_argument("--method", choices=["nuts", "laplace"], default="nuts", help="laplace: a quick dry run")
    parser.add_argument("--predict", metavar="PLAN.csv",
                        help="predict a planned design (no losses yet) from a fit on all the runs: a prediction "
                             "recorded before the runs are trained")
    parser.add_argument("--score", metavar="PREDICTION.json",
                        help="score a recorded --predict output against the runs of --runs (no fit)")
    args = parser.parse_args()
    bayesmoe.configure()
    frame = pd.concat([load_runs(r, law=args.law) for r in args.runs], ignore_index=True)
    if args.where:
        frame = frame[frame.eval(args.where).to_numpy(bool)].reset_index(drop=True)
    if args.score:
        with open(args.score) as handle:
            _save(args.out, score_prediction(json.load(handle), frame))
        return
    if args.predict:
        train, heldout = frame, pd.read_csv(args.predict)
    elif args.heldout:
        held = frame.eval(args.heldout).to_numpy(bool)
        train, heldout = frame[~held].copy(), frame[held].copy()
    else:
        train, heldout = split(frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = bayesmoe.fit(train, law=args.law, progress_bar=False, method=args.method)
        if args.method == "laplace":
            validation.REFIT_METHOD = "laplace"
        validation.validate(fitted)
    fit_warnings = sorted({str(w.message) for w in caught if w.category.__name__ == "FitWarning"})
    scores = None if args.predict else validation.calibration(fitted, heldout)
    by = FAMILY + (["budget"] if "budget" in heldout.columns else [])   # one profile per family and budget
    profiles = [best_size_band(fitted, p) | ({"budget": float(p["budget"].iloc[0])} if "budget" in by else {})
                for _, p in heldout.groupby(by) if len(p) >= 3]
    result = {"law": args.law, "where": args.where, "n_fit": len(train), "n_heldout": len(heldout),
              "heldout_compute": float(heldout["compute"].median()),
              "largest_fitted_compute": float(train["compute"].max()),
              "scores": scores, "profiles": profiles, "fit_warnings": fit_warnings,
              **({"plan": args.predict, "predictions": planned_predictions(fitted, heldout)} if args.predict else {}),
              "discrepancy": {k: v for k, v in (fitted.meta.get("discrepancy") or {}).items() if k != "draws"}}
    _save(args.out, result)


def _save(out: str, result: dict) -> None:
    """``result`` as JSON in ``out``, and on stdout."""
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1, default=float)
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
