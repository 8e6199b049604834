"""The report as one multi-page PDF (``report.pdf`` beside ``index.html``): a file to attach or print.

Page 1 (and more if the tables are long, e.g. a campaign of many tiles) holds the tables of the
HTML page as monospaced text -- campaign, provenance, per band, per tile, splits -- so the
numbers read the same as on the page; then one page per figure, the figure's PNG with its
caption. The PNGs are the figures the page shows (one drawing, two documents). Written with
matplotlib's ``PdfPages`` to a temporary name and renamed into place (:mod:`atomic`), so a
reader never sees a half-written PDF.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_path

#: A4 in inches: portrait for the tables, landscape for the figures (most are wider than tall).
A4_PORTRAIT = (8.27, 11.69)
A4_LANDSCAPE = (11.69, 8.27)
#: Text lines per table page (monospaced, FONT_SIZE points) and the widest cell before wrapping.
LINES_PER_PAGE = 78
FONT_SIZE = 7.5
WRAP = 88
#: Characters of FONT_SIZE monospace that fit the page's width; a wider table (many bands, long
#: times) is set smaller rather than cut at the page edge.
LINE_CHARS = 110


@dataclass
class Table:
    """One table of the report: ``header`` None for a key/value table (two columns)."""

    title: str
    rows: list[list[str]]
    header: list[str] | None = None
    note: str = ""


def table_lines(table: Table) -> list[tuple[str, str]]:
    """``(style, text)`` lines of a table in fixed-width text; style ``head`` or ``body``."""
    lines = [("head", table.title)]
    if table.note:
        lines += [("body", part) for part in textwrap.wrap(table.note, WRAP + 20)]
    if table.header is None:
        width = max((len(r[0]) for r in table.rows), default=0)
        for key, value in table.rows:
            parts = textwrap.wrap(value, WRAP - width) or [""]
            lines.append(("body", f"  {key:<{width}}  {parts[0]}"))
            lines += [("body", f"  {'':<{width}}  {p}") for p in parts[1:]]
    elif table.rows:
        rows = [table.header, *table.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(table.header))]

        def fmt(r: Sequence[str]) -> str:
            return "  " + "  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True))

        lines.append(("body", fmt(table.header)))
        lines.append(("body", "  " + "  ".join("-" * w for w in widths)))
        lines += [("body", fmt(r)) for r in table.rows]
    lines.append(("body", ""))
    return lines


def write_pdf(path: Path, title: str, subtitle: str, tables: list[Table],
              figures: list[tuple[Path, str]]) -> Path:
    """Tables first (as many pages as they need), then one page per figure ``(png, caption)``."""
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    lines = []
    for table in tables:
        block = table_lines(table)
        size = FONT_SIZE * min(1.0, LINE_CHARS / max(len(text) for _, text in block))
        lines += [(style, text, size) for style, text in block]
    pages = [lines[i:i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
    with atomic_path(path) as tmp, PdfPages(tmp, metadata={"Title": title, "Creator": "balrog_runner"}) as pdf:
        for number, page in enumerate(pages):
            fig = plt.figure(figsize=A4_PORTRAIT)
            top = 0.95
            if number == 0:
                fig.text(0.06, 0.96, title, fontsize=14, weight="bold", va="top")
                fig.text(0.06, 0.935, subtitle, fontsize=8, va="top", family="monospace")
                top = 0.91
            step = (top - 0.04) / LINES_PER_PAGE
            for k, (style, text, size) in enumerate(page):
                fig.text(0.06, top - k * step, text, va="top", family="monospace",
                         fontsize=FONT_SIZE + 1.5 if style == "head" else size,
                         weight="bold" if style == "head" else "normal")
            fig.text(0.94, 0.02, f"page {number + 1}", ha="right", fontsize=7)
            pdf.savefig(fig)
            plt.close(fig)
        for k, (png, caption) in enumerate(figures, start=len(pages) + 1):
            fig = plt.figure(figsize=A4_LANDSCAPE)
            ax = fig.add_axes((0.03, 0.12, 0.94, 0.85))
            ax.imshow(mpimg.imread(str(png)))
            ax.set_axis_off()
            fig.text(0.5, 0.08, "\n".join(textwrap.wrap(caption, 140)), ha="center", va="top", fontsize=9)
            fig.text(0.97, 0.02, f"page {k}", ha="right", fontsize=7)
            pdf.savefig(fig, dpi=150)
            plt.close(fig)
    return path
