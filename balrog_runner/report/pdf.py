"""``report.pdf``: the page's tables and figures on A4, figures as vectors, fonts embedded.

The tables come first, as monospaced text (as many pages as they need; long lists are cut
to what a page can show, the rest is in ``per_tile.csv`` and ``summary.json``), then the
figures, drawn again straight into the pages by the same functions that drew the PNGs
(:mod:`.plots`): lines and text stay vectors (only dense images -- the sky map, the
magnitude image -- are rasterised inside them), every text is :data:`.plots.FONT_SIZE`
points, and the fonts are embedded as TrueType (``pdf.fonttype`` 42), as journals ask.
Written to a temporary name and renamed into place (:mod:`..atomic`).
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_path
from . import plots

#: A4 portrait, inches, and the margins.
A4 = (8.27, 11.69)
MARGIN_X = 0.6
MARGIN_TOP = 0.6
MARGIN_BOTTOM = 0.55
#: Table text: the figures' size, monospaced; line pitch and characters per line at that size.
LINE_PITCH_IN = plots.FONT_SIZE * 1.3 / 72
LINE_CHARS = int((A4[0] - 2 * MARGIN_X) * 72 / (plots.FONT_SIZE * 0.602))
CAPTION_CHARS = 118
#: Resolution of the rasterised parts of the figures.
RASTER_DPI = 200


def table_lines(table) -> list[tuple[str, str]]:
    """``(style, text)`` lines of a table in fixed-width text; style ``head`` or ``body``."""
    lines = [("head", table.title)]
    if table.note:
        lines += [("body", part) for part in textwrap.wrap(table.note, LINE_CHARS)]
    rows = table.rows if table.pdf_rows is None else table.rows[: table.pdf_rows]
    if table.header is None:
        width = min(max((len(r[0]) for r in rows), default=0), LINE_CHARS // 2)
        for key, value in rows:
            parts = textwrap.wrap(value, max(LINE_CHARS - width - 4, 20)) or [""]
            lines.append(("body", f"  {key:<{width}}  {parts[0]}"))
            lines += [("body", f"  {'':<{width}}  {p}") for p in parts[1:]]
    elif rows:
        grid = [table.header, *rows]
        widths = [max(len(r[i]) for r in grid) for i in range(len(table.header))]

        def fmt(r: Sequence[str]) -> str:
            return "  " + "  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True))

        for text in (fmt(table.header), "  " + "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)):
            wrapped = textwrap.wrap(text, LINE_CHARS, subsequent_indent="      ", drop_whitespace=False) or [""]
            lines += [("body", w) for w in wrapped]
        if len(rows) < len(table.rows):
            lines.append(("body", f"  ... {len(table.rows) - len(rows):,} more rows on the page and in the files"))
    lines.append(("body", ""))
    return lines


def _table_pages(tables) -> list[list[tuple[str, str]]]:
    lines = []
    for table in tables:
        if table.pdf_rows == 0:
            continue
        lines += table_lines(table)
    per_page = int((A4[1] - MARGIN_TOP - MARGIN_BOTTOM) / LINE_PITCH_IN) - 3
    return [lines[i:i + per_page] for i in range(0, len(lines), per_page)] or [[]]


def _figure_pages(figures: list[tuple[plots.FigureSpec, str]]) -> list[list[tuple[plots.FigureSpec, str]]]:
    """Figures packed onto pages in order, as many to a page as fit with their captions."""
    room = A4[1] - MARGIN_TOP - MARGIN_BOTTOM
    pages: list[list] = []
    used = room + 1
    for spec, caption in figures:
        nlines = len(textwrap.wrap(caption, CAPTION_CHARS))
        need = spec.height + (nlines + 1) * LINE_PITCH_IN + 0.15
        if used + need > room:
            pages.append([])
            used = 0.0
        pages[-1].append((spec, caption))
        used += need
    return pages


def write_pdf(path: Path, title: str, subtitle: str, tables, figures: list[tuple[plots.FigureSpec, str]],
              numbers: dict) -> Path:
    """Tables first (as many pages as they need), then the figures, several to a page where they fit."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # its font subsetting logs every glyph at INFO
    table_pages = _table_pages(tables)
    figure_pages = _figure_pages(figures)
    w, h = A4
    with plots.style(), atomic_path(path) as tmp, \
            PdfPages(tmp, metadata={"Title": title, "Creator": "balrog_runner"}) as pdf:
        page_no = 0
        for number, page in enumerate(table_pages):
            page_no += 1
            fig = plt.figure(figsize=A4)
            top = h - MARGIN_TOP
            if number == 0:
                fig.text(MARGIN_X / w, top / h, title, fontsize=plots.FONT_SIZE + 3, weight="bold", va="top")
                top -= 0.3
                for line in textwrap.wrap(subtitle, LINE_CHARS):
                    fig.text(MARGIN_X / w, top / h, line, va="top")
                    top -= LINE_PITCH_IN
                top -= LINE_PITCH_IN
            for k, (kind, text) in enumerate(page):
                fig.text(MARGIN_X / w, (top - k * LINE_PITCH_IN) / h, text, va="top", family="DejaVu Sans Mono",
                         weight="bold" if kind == "head" else "normal")
            fig.text((w - MARGIN_X) / w, 0.3 / h, f"page {page_no}", ha="right")
            pdf.savefig(fig)
            plt.close(fig)
        for page in figure_pages:
            page_no += 1
            fig = plt.figure(figsize=A4)
            top = h - MARGIN_TOP
            for spec, caption in page:
                box = plots.Box((w - plots.WIDTH) / 2, top - spec.height, plots.WIDTH, spec.height)
                spec.draw(fig, box, numbers)
                y = top - spec.height - 0.05
                for line in textwrap.wrap(caption, CAPTION_CHARS):
                    fig.text(box.left / w, y / h, line, va="top")
                    y -= LINE_PITCH_IN
                top = y - LINE_PITCH_IN - 0.15
            fig.text((w - MARGIN_X) / w, 0.3 / h, f"page {page_no}", ha="right")
            pdf.savefig(fig, dpi=RASTER_DPI)
            plt.close(fig)
    return path
