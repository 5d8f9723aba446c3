"""Layer 6, reports a researcher reads at a glance: one self-contained HTML page per set of fits.

>>> from bayesmoe.report import report   # also bayesmoe.report(...)
>>> report(["granularity.nc"], "reports/example")          # -> reports/example/report.html

The page embeds every figure as a base64 PNG (it opens with no network and no files beside it) and
the same PNGs are written next to it. Sections (anchor ids): ``glance``; per fit ``data``,
``model``, ``diagnostics``, ``fit``, ``scaling``, ``decisions`` (a second fit's get ``-2``, ...);
``comparison`` with several fits; ``next-runs`` when ``design=`` is given.

Imports from the layers below it (runs to decide). Figures are built as ``matplotlib.figure.Figure``
objects, so the caller's matplotlib backend is never changed.
"""
from .document import PAGE, report

__all__ = ["PAGE", "report"]
