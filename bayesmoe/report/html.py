"""HTML building blocks of a report: escaping, tables, verdict badges, figures (PNG file beside the
page and the same bytes embedded as base64) and the page itself (inline CSS, no scripts, no network).
"""
from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
from matplotlib.figure import Figure

#: Resolution of the PNG figures (dots per inch); a 10-inch figure is 900 px wide.
DPI = 90

CSS = """
:root { --ok:#1a7f37; --check:#9a6700; --bad:#cf222e; --muted:#57606a; --line:#d0d7de; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       color:#1f2328; background:#f6f8fa; }
header { background:#0d1117; color:#f0f6fc; padding:18px 32px; }
header h1 { margin:0; font-size:24px; } header p { margin:4px 0 0; color:#8b949e; }
nav { position:sticky; top:0; background:#fff; border-bottom:1px solid var(--line); padding:8px 32px; z-index:2;
      font-size:14px; }
nav a { margin-right:14px; color:#0969da; text-decoration:none; white-space:nowrap; }
main { max-width:1040px; margin:0 auto; padding:12px 24px 60px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:8px 24px 16px; margin:18px 0; }
section h2 { font-size:20px; border-bottom:1px solid var(--line); padding-bottom:6px; }
h3 { font-size:16px; margin:18px 0 6px; }
.glance { border-left:6px solid #0969da; }
table { border-collapse:collapse; margin:8px 0; font-size:13px; font-variant-numeric: tabular-nums; }
th, td { border:1px solid var(--line); padding:3px 8px; text-align:right; vertical-align:top; }
th { background:#f6f8fa; } td.text, th.text { text-align:left; }
.wide { overflow-x:auto; max-width:100%; }
.scroll { max-height:340px; overflow:auto; border:1px solid var(--line); display:inline-block; max-width:100%; }
.scroll table { margin:0; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:13px; background:#f6f8fa; }
pre { padding:8px 12px; border-radius:6px; white-space:pre-wrap; }
.badge { display:inline-block; padding:0 8px; border-radius:10px; color:#fff; font-size:12px; font-weight:600; }
.badge.ok { background:var(--ok); } .badge.check { background:var(--check); } .badge.bad { background:var(--bad); }
.note { color:var(--muted); font-size:13px; }
figure { margin:12px 0; } figure img { max-width:100%; height:auto; border:1px solid #eaeef2; }
figcaption { color:var(--muted); font-size:13px; }
.row { display:flex; gap:12px; flex-wrap:wrap; } .row figure { flex:1 1 420px; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:2px 16px; margin:6px 0; }
dt { color:var(--muted); } dd { margin:0; }
"""


def esc(value: object) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value), quote=True)


def badge(level: str) -> str:
    """A coloured verdict chip: ok / check / bad."""
    return f'<span class="badge {esc(level)}">{esc(level)}</span>'


def fmt(value: object, digits: int = 4) -> str:
    """A number to ``digits`` significant figures (ints and strings as they are)."""
    if isinstance(value, str):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:
        return "-"
    if float(number).is_integer() and abs(number) < 1e6:
        return f"{int(number)}"
    return f"{number:.{digits}g}"


def human(value: float, digits: int = 3) -> str:
    """A count with a K / M / B / T suffix from 1e5 (``2.06e8`` -> ``206M``), whole below that from 100
    (``1024``), else ``digits`` significant figures."""
    number = float(value)
    if number != number:
        return "-"
    for scale, suffix, start in ((1e12, "T", 1e12), (1e9, "B", 1e9), (1e6, "M", 1e6), (1e3, "K", 1e5)):
        if abs(number) >= start:
            return f"{number / scale:.{digits}g}{suffix}"
    return f"{number:.0f}" if abs(number) >= 100 else f"{number:.{digits}g}"


def table(
    frame: pd.DataFrame, *, index: bool = True, raw: Iterable[str] = (), scroll: bool = False, digits: int = 4
) -> str:
    """An HTML table of ``frame``; columns in ``raw`` hold HTML and are not escaped."""
    raw = set(raw)
    cols = list(frame.columns)
    head = ([f'<th class="text">{esc(frame.index.name or "")}</th>'] if index else []) + [
        f'<th class="{"" if pd.api.types.is_numeric_dtype(frame[c]) and c not in raw else "text"}">{esc(c)}</th>'
        for c in cols
    ]
    rows = []
    for label, row in frame.iterrows():
        cells = [f'<td class="text">{esc(label)}</td>'] if index else []
        for c in cols:
            value = row[c]
            if c in raw:
                cells.append(f'<td class="text">{value}</td>')
            elif isinstance(value, str):
                cells.append(f'<td class="text">{esc(value)}</td>')
            else:
                cells.append(f"<td>{esc(fmt(value, digits))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    body = f"<table><thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="scroll">{body}</div>' if scroll else f'<div class="wide">{body}</div>'


def definitions(items: Iterable[tuple[str, str]]) -> str:
    """A two-column list of (term, HTML description)."""
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


class FigureWriter:
    """Writes each figure as ``<out>/<name>.png`` and returns HTML embedding the same PNG bytes."""

    def __init__(self, out: Path, dpi: int = DPI):
        self.out, self.dpi = Path(out), dpi
        self.written: dict[str, Path] = {}

    def add(self, name: str, fig: Figure, caption: str, *, alt: str | None = None) -> str:
        """Save ``fig`` (then close it) and return a ``<figure>`` element with id ``fig-<name>``."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise ValueError(f"figure name {name!r} must be lowercase letters, digits, '-' or '_'")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=self.dpi)
        _close(fig)
        data = buffer.getvalue()
        path = self.out / f"{name}.png"
        path.write_bytes(data)
        self.written[name] = path
        encoded = base64.b64encode(data).decode("ascii")
        return (f'<figure id="fig-{esc(name)}"><img src="data:image/png;base64,{encoded}" alt="{esc(alt or caption)}">'
                f"<figcaption>{caption}</figcaption></figure>")


def _close(fig: Figure) -> None:
    """Release a figure; ArviZ figures are registered with pyplot and must be closed there."""
    import matplotlib.pyplot as plt

    if plt.fignum_exists(getattr(fig, "number", -1)):
        plt.close(fig)


@dataclass(frozen=True)
class Section:
    """One report section: anchor id, heading and HTML body."""

    id: str
    title: str
    body: str


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole HTML document."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(
        '<section '
        f'id="{esc(s.id)}"{" class=glance" if s.id == "glance" else ""}><h2>{esc(s.title)}</h2>{s.body}</section>'
        for s in sections
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        'content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav><main>{body}</main></body></html>\n"
    )
