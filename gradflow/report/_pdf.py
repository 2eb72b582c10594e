"""Atomic, reproducible PDF and CSV writers and the pages a study report is made of."""

from __future__ import annotations

import contextlib
import os
import textwrap
from collections.abc import Iterator, Sequence

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_pdf import PdfPages

from .._files import atomic_path

PAGE = (8.27, 11.69)  # A4 portrait, inches


@contextlib.contextmanager
def paper_theme() -> Iterator[None]:
    """Seaborn's paper context on a white grid, restored on exit."""
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.1), \
            plt.rc_context({"figure.dpi": 100, "savefig.dpi": 150, "pdf.fonttype": 42}):
        yield


def write_pdf(path: str | os.PathLike, pages: Sequence[plt.Figure], *, title: str, subject: str,
              keywords: Sequence[str]) -> None:
    """Write ``pages`` to ``path`` with metadata, atomically.

    ``CreationDate`` comes from ``SOURCE_DATE_EPOCH`` when it is set (matplotlib
    honours it), so the same inputs give the same bytes.
    """
    from .. import __version__

    meta = {"Title": title, "Subject": subject, "Keywords": ", ".join(keywords),
            "Creator": f"gradflow {__version__}", "Author": "gradflow"}
    with atomic_path(path) as tmp:
        with PdfPages(tmp, metadata=meta) as pdf:
            for fig in pages:
                pdf.savefig(fig)
    for fig in pages:
        plt.close(fig)


def _wrap(text: str, width: int = 95) -> str:
    return "\n".join(textwrap.fill(p, width) if p else "" for p in text.split("\n"))


def table_page(title: str, paragraphs: Sequence[tuple[str, str]], table: pd.DataFrame | None = None,
               table_title: str = "", col_widths: Sequence[float] | None = None) -> plt.Figure:
    """A text page: a title, headed paragraphs, and optionally a table of numbers."""
    fig = plt.figure(figsize=PAGE)
    fig.text(0.07, 0.95, title, fontsize=16, weight="bold", va="top")
    y = 0.90
    for head, body in paragraphs:
        if head:
            fig.text(0.07, y, head, fontsize=11.5, weight="bold", va="top")
            y -= 0.025
        body = _wrap(body)
        fig.text(0.07, y, body, fontsize=9.5, va="top", family="DejaVu Sans")
        y -= 0.0165 * (body.count("\n") + 1) + 0.02
    if table is not None:
        fig.text(0.07, y, table_title, fontsize=11.5, weight="bold", va="top")
        height = min(0.03 * (len(table) + 1), y - 0.08)
        ax = fig.add_axes((0.07, y - 0.02 - height, 0.86, height))
        ax.axis("off")
        tab = ax.table(cellText=table.astype(str).to_numpy(), colLabels=list(table.columns),
                       loc="upper center", cellLoc="center", colWidths=col_widths)
        tab.auto_set_font_size(False)
        tab.set_fontsize(8.5)
        tab.scale(1.0, 1.25)
    return fig


def figure_page(fig: plt.Figure, caption: str) -> plt.Figure:
    """Put a caption (which should quote numbers from the data) under a figure.

    The axes move up when the caption needs more room than the figure left for it, so
    a long caption never covers tick labels or the x label.
    """
    text = _wrap(caption, 110)
    height = fig.get_figheight()
    top_of_caption = 0.045 + (text.count("\n") + 1) * 9 * 1.3 / 72 / height
    needed = top_of_caption + 0.65 / height  # tick labels and the x label: about 0.65 inch
    if fig.subplotpars.bottom < needed:
        fig.subplots_adjust(bottom=needed)
    fig.text(0.07, 0.045, text, fontsize=9, va="bottom")
    return fig


def combine_pdfs(path: str | os.PathLike, parts: Sequence[tuple[str, str, str]], *, title: str) -> int:
    """One PDF: a contents page (study, verdict, first page), then every part's pages, atomically.

    ``parts`` holds ``(name, verdict, pdf_path)``; returns the page count.
    """
    import io

    from pypdf import PdfReader, PdfWriter

    readers = [(name, verdict, PdfReader(p)) for name, verdict, p in parts]
    start, rows = 2, []
    for name, verdict, reader in readers:
        rows.append({"study": name, "verdict": verdict, "page": start})
        start += len(reader.pages)
    with paper_theme():
        table = pd.DataFrame(rows)
        table["verdict"] = table.verdict.map(lambda v: textwrap.shorten(v, 70, placeholder="..."))
        fig = table_page(title, [("Contents", "Each study ends in a verdict computed from its data; the "
                                              "CSV files beside each study's PDF hold every number.")],
                         table, "Studies", col_widths=(0.2, 0.68, 0.08))
        buffer = io.BytesIO()
        with PdfPages(buffer) as pdf:
            pdf.savefig(fig)
        plt.close(fig)
    writer = PdfWriter()
    writer.append(PdfReader(buffer))
    for _, _, reader in readers:
        writer.append(reader)
    from .. import __version__

    subject = "; ".join(f"{r['study']}: {r['verdict']}" for r in rows)
    writer.add_metadata({"/Title": title, "/Subject": subject, "/Keywords": "gradflow, report",
                         "/Creator": f"gradflow {__version__}"})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            writer.write(fh)
    return start - 1
