"""The "next runs" section of ``bayesmoe report``: the ranked candidates and the greedy path's expected
band width against FLOPs spent."""
from __future__ import annotations

import html

from matplotlib.figure import Figure

from ..decide.design import DesignResult

#: Rows of the ranked table shown in the report.
TABLE_ROWS = 20


def band_figure(result: DesignResult) -> Figure:
    """Expected 90% band width of the target against cumulative FLOPs of the greedily picked runs."""
    path = result.path
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    ax.plot(path["cumulative_compute"], path["expected_band_width"], "o-", color="C0")
    for _, row in path.iloc[1:].iterrows():
        ax.annotate(str(row["run_id"]), (row["cumulative_compute"], row["expected_band_width"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("training FLOPs spent on the picked runs")
    ax.set_ylabel(f"expected 90% band width of {result.target}")
    ax.set_title(f"{result.target} at {result.at_compute:.3g} FLOPs ({result.law})", fontsize=10)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    return fig


def next_runs_section(result: DesignResult) -> tuple[str, str, dict[str, Figure]]:
    """(title, HTML fragment, {name: matplotlib Figure}) for a :class:`~bayesmoe.decide.design.DesignResult`.

    The fragment holds a sentence on the target now, the top ``TABLE_ROWS`` candidates (rank, run, FLOPs,
    expected sd of log target, expected reduction, per FLOP, expected band width, Pareto k) and the
    selected runs; the figure ``next_runs_band`` is referenced as ``<img src="next_runs_band.png">``.
    """
    cur = result.current
    head = (f"<p>Target <b>{html.escape(result.target)}</b> at {result.at_compute:.3g} FLOPs: median {cur['q50']:.4g}, "
            f"90% band [{cur['q05']:.4g}, {cur['q95']:.4g}] (width {cur['band_width']:.4g}), sd of its log "
            f"{cur['sd_log']:.4f}. Expected values average {result.settings.get('outcomes', '')} simulated outcomes "
            "per run (Pareto-smoothed importance reweighting; k &gt; 0.7 marks an optimistic estimate).</p>")
    form = result.settings.get("discrepancy") or {}
    if form.get("used"):
        head += (f"<p>The band includes the law's form error at ln {form['target_distance']:.2f} past the data (the "
                 "discrepancy term of <code>bayesmoe validate</code>); a run past the data's edge moves the edge and "
                 "shrinks it, so runs nearer the target gain more than the law-only posterior says.</p>")
    columns = [("rank", "rank", "{:d}"), ("run_id", "run", "{}"), ("compute", "FLOPs", "{:.3g}"),
               ("expected_sd_log", "expected sd(log)", "{:.4f}"), ("expected_reduction", "reduction", "{:.4f}"),
               ("reduction_per_flop", "per FLOP", "{:.3g}"), ("expected_band_width", "expected band", "{:.4g}"),
               ("pareto_k", "Pareto k", "{:.2f}")]
    lines = ["<table class='next-runs'>", "<tr>" + "".join(f"<th>{label}</th>" for _, label, _ in columns) + "</tr>"]
    for _, row in result.table.head(TABLE_ROWS).iterrows():
        style = "" if row["reliable"] else " style='color:#a00'"
        cells = "".join(f"<td>{html.escape(fmt.format(row[key]))}</td>" for key, _, fmt in columns)
        lines.append(f"<tr{style}>{cells}</tr>")
    lines.append("</table>")
    picked = ", ".join(html.escape(r) for r in result.selected) or "(none)"
    tail = (f"<p>Selected (greedy, each pick conditioned on the simulated outcomes of the earlier ones): {picked}.</p>"
            "<img src='next_runs_band.png' alt='expected band width against FLOPs spent'>")
    return "Next runs", head + "\n".join(lines) + tail, {"next_runs_band": band_figure(result)}
