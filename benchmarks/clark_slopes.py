"""Local log-log slopes of Clark et al. 2022's losses between model sizes: how the curve bends below 1.3B.

For each router and expert count in the held-out configuration (top-1, routed every other block), the slope
``d ln L / d ln N`` between consecutive sizes of the 15M-1.3B ladder. A law with a constant irreducible loss
bends steadily (its slope's magnitude shrinks as N grows); a pure power law keeps one slope. The table shows
which the runs below 1.3B suggest, and what the 1.3B runs then did (RESULTS.md, issue 20).

    python benchmarks/clark_slopes.py             # per-router median slopes, then the summary
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bayesmoe.runs import load_runs

#: The sizes every router was trained at (non-embedding parameters), smallest to the held-out 1.3B.
LADDER = (16527360, 57369600, 132163584, 368123904, 1308819456)


def local_slopes(runs: pd.DataFrame) -> pd.DataFrame:
    """Slope of ln loss against ln n_active between consecutive LADDER sizes, one row per (group, n_experts).

    Columns are labelled by the interval (e.g. ``"132M-368M"``); a missing run leaves its intervals NaN.
    """
    standard = runs[(runs["routing_frequency"] == 0.5) & (runs["top_k"] == 1)]
    loss = standard.pivot_table(index="n_active", columns=["group", "n_experts"], values="loss").reindex(LADDER)
    slopes = np.log(loss).diff().div(np.log(pd.Series(LADDER, index=LADDER, dtype=float)).diff(), axis=0).iloc[1:]
    slopes.index = [f"{a / 1e6:.0f}M-{b / 1e6:.0f}M" for a, b in zip(LADDER[:-1], LADDER[1:])]
    return slopes.T


def main() -> None:
    slopes = local_slopes(load_runs("dataset:clark2022_routing"))
    print(slopes.groupby(level="group").median().round(3).to_string())
    last, before = slopes.iloc[:, -1], slopes.iloc[:, -2]
    both = last.notna() & before.notna()
    print(f"\nmedian slope per interval: {', '.join(f'{c} {v:.3f}' for c, v in slopes.median().items())}")
    print(f"368M-1.3B steeper than 132M-368M in {int((last[both] < before[both]).sum())} of {int(both.sum())} series; "
          f"median change {float(np.median(last[both] - before[both])):+.4f}")


if __name__ == "__main__":
    main()
