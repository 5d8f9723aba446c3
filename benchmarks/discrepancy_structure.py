"""Is the law's form error independent from run to run, and should its scale be a point or a posterior?

Until commit 08ff8f0 the model-discrepancy term (:mod:`bayesmoe.inference.discrepancy`) added to each run's
log loss an independent Normal error with sd ``s0 + s1 d`` (d: ``ln`` distance past the fitted runs) and kept
the posterior *mode* of (s0, s1) learned from the forward-chaining errors. Two questions about that structure,
answered on every calibration case (``benchmarks/calibration.py``; issue 20); the answers made the package's
term the "integrated, shared" variant below:

1. **Shared shift.** A law extrapolated one step errs in much the same way for every run at that step (at
   Clark's 1.3B level all 28 errors but a few have one sign). The alternative adds to the independent part a
   shift common to the runs of one extrapolation step, ``t d z`` with one ``z ~ Normal(0, 1)`` per step:
   within a chaining step (one refit predicting one level ahead) the errors are then jointly Normal with
   covariance ``diag(law_sd^2 + (s0 + s1 d)^2) + (t d)(t d)^T``.
2. **Integrated scale.** The plug-in mode ignores how loosely a few dozen errors fix (s0, s1, t); the
   alternative averages the predictive over their posterior.

The hyper-parameter posterior is the package's grid posterior (:func:`bayesmoe.inference.discrepancy.learn`;
s0, s1, t each ``HalfNormal(PRIOR_SD)``), with t fixed at 0 for the independent variants. Variants scored:

    plug-in, independent      the term until 08ff8f0: the posterior mode of (s0, s1) (:func:`plug_in_mode`)
    integrated, independent   (s0, s1) averaged over their grid posterior
    plug-in, shared           the grid posterior's mode of (s0, s1, t)
    integrated, shared        (s0, s1, t) averaged over their grid posterior: the package's term now

On the held-out top of scale, each variant's predictive is the fit's law-only posterior predictive (parameter
draws, observation noise) plus the variant's term, one hyper-parameter draw per posterior draw; past the
chaining's reach the prior slope ``s2`` widens the independent part, as in the package. Reported: 90%
coverage, and the held-out log score (nats, higher is better) per run summed (*marginal*) and of the held-out
runs jointly (*joint*: the mixture over posterior draws of Normals with the law's mean, ``sigma`` and the
term, so the parameters' shared uncertainty and the shared shift both count). The evidence for a shared
shift is the log Bayes factor of the chaining errors, shared against independent.

    python benchmarks/discrepancy_structure.py                    # every case, ~8 min on 2 cores
    python benchmarks/discrepancy_structure.py --only gadre sweep
    python benchmarks/discrepancy_structure.py --table            # print the table of --out

For Clark's fit sets the law is ``routing_irreducible``, which holds all but a few millionths of the stacking
weight in ``benchmarks/calibration.py`` (clark_config) and 0.95 (clark_like). Point predictions, and so R^2
and the median error, are the same in every variant (each term is zero-mean).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

import bayesmoe
from bayesmoe.decide.validate import chaining_steps, validate
from bayesmoe.inference.discrepancy import PRIOR_SD, learn, normal_rank_one_logpdf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import CASES, load_case, run_and_save, split  # noqa: E402  (the calibration cases, one definition)

#: Posterior-predictive draws used on the held-out runs.
DRAWS = 2000
PROB = 0.9
#: The law and fit settings per case: the calibration case's own law, or routing_irreducible for Clark's sets.
SETTINGS = {"clark_config": dict(law="routing_irreducible", warmup=1000),
            "clark_like": dict(law="routing_irreducible", warmup=1000)}
DEFAULT_CASES = ("epoch", "gadre", "sweep", "sweep_gpu", "clark_config", "clark_like")


def plug_in_mode(errors: np.ndarray, law_sd: np.ndarray, distance: np.ndarray) -> tuple[float, float]:
    """The posterior mode of (s0, s1) with t = 0: the package's term until commit 08ff8f0, all shapes (m,)."""
    def negative_log_posterior(s: np.ndarray) -> float:
        total = np.sqrt(law_sd**2 + (s[0] + s[1] * distance) ** 2)
        return -float(stats.norm.logpdf(errors, 0.0, total).sum() + stats.halfnorm.logpdf(s, scale=PRIOR_SD).sum())

    best = min((optimize.minimize(negative_log_posterior, np.array(start), method="L-BFGS-B",
                                  bounds=[(0, None), (0, None)])
                for start in ([PRIOR_SD / 4, PRIOR_SD / 4], [PRIOR_SD, 0.0], [0.0, PRIOR_SD])), key=lambda r: r.fun)
    return float(best.x[0]), float(best.x[1])


def variants(errors: pd.DataFrame) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """Each variant's hyper-parameter draws as (points (K, 3), probabilities (K,)), and the log Bayes factor of
    a shared shift in the chaining errors."""
    args = (errors["error"].to_numpy(float), errors["law_sd"].to_numpy(float), errors["distance"].to_numpy(float))
    s0, s1 = plug_in_mode(*args)
    out = {"plug-in, independent": (np.array([[s0, s1, 0.0]]), np.ones(1))}
    posterior = {shared: learn(*args, chaining_steps(errors), shared=shared) for shared in (False, True)}
    out["integrated, independent"] = (posterior[False].points, np.exp(posterior[False].log_weights))
    out["integrated, shared"] = (posterior[True].points, np.exp(posterior[True].log_weights))
    out["plug-in, shared"] = (posterior[True].points[[int(np.argmax(posterior[True].log_weights))]], np.ones(1))
    return out, posterior[True].log_evidence - posterior[False].log_evidence


def heldout_scores(fitted, heldout: pd.DataFrame, errors: pd.DataFrame, scale_column: str, hyper: np.ndarray,
                   prob: np.ndarray, seed: int = 0) -> dict:
    """Coverage and held-out log scores (module docstring) of one variant on ``heldout``: hyper-parameter
    triples ``hyper`` (K, 3) with probabilities ``prob`` (K,); distances in ``ln scale_column`` past the fit."""
    rng = np.random.default_rng(seed)
    law = fitted.predictive_log_loss(heldout, seed=seed, discrepancy=False)
    mean = fitted.log_mean(heldout, seed=seed)
    sigma = fitted.draws()["sigma"]
    pick = rng.choice(len(law), DRAWS, replace=len(law) < DRAWS)
    law, mean, sigma = law[pick], mean[pick], sigma[pick]
    h = hyper[rng.choice(len(hyper), DRAWS, p=prob / prob.sum())]
    reference = float(fitted.runs[scale_column].max())
    d = np.maximum(0.0, np.log(heldout[scale_column].to_numpy(float) / reference))[None, :]
    reach = float(errors["distance"].max())
    slope = np.abs(rng.normal(0.0, PRIOR_SD, DRAWS))[:, None]
    independent = h[:, :1] + h[:, 1:2] * d + slope * np.maximum(0.0, d - reach)
    shift = h[:, 2:3] * d
    noise = independent * rng.standard_normal(law.shape) + shift * rng.standard_normal((DRAWS, 1))
    observed = np.log(heldout["loss"].to_numpy(float))
    lo, hi = np.quantile(law + noise, [(1 - PROB) / 2, (1 + PROB) / 2], axis=0)
    diag = sigma[:, None] ** 2 + independent**2
    marginal = special.logsumexp(stats.norm.logpdf(observed, mean, np.sqrt(diag + shift**2)), axis=0) - np.log(DRAWS)
    joint = special.logsumexp(normal_rank_one_logpdf(observed - mean, diag, shift)) - np.log(DRAWS)
    return {"covered": int(np.sum((observed >= lo) & (observed <= hi))), "n_runs": len(heldout),
            "coverage": float(np.mean((observed >= lo) & (observed <= hi))),
            "log_score_marginal": float(marginal.sum()), "log_score_joint": float(joint)}


def run_case(name: str) -> dict:
    case = CASES[name] | SETTINGS.get(name, {})
    frame = load_case(case, case["law"])
    train, parts = split(case, frame, two_step=False)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = bayesmoe.fit(train, law=case["law"], group=case.get("group"), progress_bar=False,
                              **({"warmup": case["warmup"]} if "warmup" in case else {}))
        result = validate(fitted, steps=3)
    fit_warnings = sorted({str(w.message) for w in caught if w.category.__name__ == "FitWarning"})
    drawn, log_bayes_factor = variants(result.errors)
    scored = {}
    for label, (hyper, prob) in drawn.items():
        mean_hyper = (prob[:, None] * hyper).sum(axis=0)
        scored[label] = {"s0": float(mean_hyper[0]), "s1": float(mean_hyper[1]), "t": float(mean_hyper[2]),
                         **heldout_scores(fitted, parts["top"], result.errors, result.scale_column, hyper, prob)}
    steps = result.errors.groupby(["step", "ahead"])["error"].agg(["size", "mean", "std"]).reset_index()
    return {"case": name, "law": case["law"], "group": case.get("group"), "n_train": len(train),
            "n_errors": len(result.errors), "log_bayes_factor_shared": log_bayes_factor,
            "chaining_steps": steps.to_dict(orient="records"), "variants": scored, "fit_warnings": fit_warnings,
            "seconds": round(time.perf_counter() - start)}


def table(results: list[dict]) -> str:
    """Markdown: one row per case and variant."""
    lines = ["| case (law) | chaining errors | log BF shared vs independent | variant | s0, s1, t | "
             "90% covered | held-out log score marginal / joint |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for label, v in r["variants"].items():
            lines.append(f"| {r['case']} ({r['law']}) | {r['n_errors']} | {r['log_bayes_factor_shared']:.1f} | "
                         f"{label} | "
                         f"{v['s0']:.4f}, {v['s1']:.4f}, {v['t']:.4f} | {v['covered']}/{v['n_runs']} | "
                         f"{v['log_score_marginal']:.1f} / {v['log_score_joint']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=DEFAULT_CASES, default=list(DEFAULT_CASES))
    parser.add_argument("--out", default="benchmarks/discrepancy_structure_results.json")
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = parser.parse_args()
    print(table(run_and_save(Path(args.out), [] if args.table else args.only, run_case)))


if __name__ == "__main__":
    main()
