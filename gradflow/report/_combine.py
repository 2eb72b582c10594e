"""The combined report: contents pages listing every study's claim, source, verdict, interval and first page,
and `combine_pdfs`, which joins the studies' PDFs behind them with a PDF outline, atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from ..core._files import atomic_path
from ..core._version import read_version
from ._pdf import PAGE, paper_theme, wrap


def contents_pages(title: str, entries: Sequence[dict[str, Any]]) -> list[plt.Figure]:
    """Contents pages: per study its claim, source, verdict, interval and first page, wrapped, never cut."""
    pages: list[plt.Figure] = []
    fig, y = None, 0.0
    for entry in entries:
        lines = [(f"{entry['name']}  (page {entry['page']})", "bold")]
        for head in ("claim", "source", "verdict", "interval"):
            if entry.get(head):
                lines += [
                    (line, "normal") for line in wrap(f"{head.capitalize()}: {entry[head]}", 100).split("\n")
                ]
        height = 0.0165 * len(lines) + 0.02
        if fig is None or y - height < 0.05:
            fig = plt.figure(figsize=PAGE)
            fig.set_label("Contents: claims, sources, verdicts, intervals, pages")
            fig.text(0.07, 0.95, title, fontsize=16, weight="bold", va="top")
            fig.text(
                0.07,
                0.915,
                "Contents" if not pages else "Contents (continued)",
                fontsize=11.5,
                weight="bold",
                va="top",
            )
            if not pages:
                intro = (
                    "Each study states a claim from its source file (shared/seeds/), measures it on "
                    "many independent networks and decides it from a 95% interval; the CSV files "
                    "beside each study's PDF hold every number."
                )
                fig.text(0.07, 0.89, wrap(intro, 110), fontsize=9, va="top")
            pages.append(fig)
            y = 0.85
        for text, weight in lines:
            fig.text(
                0.07 if weight == "bold" else 0.09,
                y,
                text,
                fontsize=9.5 if weight == "bold" else 9,
                weight=weight,
                va="top",
            )
            y -= 0.0165
        y -= 0.02
    return pages


def combine_pdfs(path: str | os.PathLike, parts: Sequence[Any], *, title: str) -> int:
    """One PDF: contents pages, then every part's pages, with a PDF outline, atomically.

    Each of ``parts`` is a mapping with ``name``, ``verdict`` and ``pdf`` (the part's file)
    and optionally ``claim``, ``source`` and ``interval`` (a ``(name, verdict, pdf)`` tuple
    works too). The contents list each part's claim, source, verdict, interval and first
    page in full; the outline has a bookmark per part, holding the part's own bookmarks
    (one per page, see `write_pdf`). Returns the page count.
    """
    import io

    from pypdf import PdfReader, PdfWriter

    entries = [
        dict(zip(("name", "verdict", "pdf"), p, strict=True)) if isinstance(p, (tuple, list)) else dict(p)
        for p in parts
    ]
    readers = [PdfReader(e["pdf"]) for e in entries]
    with paper_theme():
        contents = 1
        while True:  # the contents' own length decides where the parts start
            start = contents + 1
            for entry, reader in zip(entries, readers, strict=True):
                entry["page"] = start
                start += len(reader.pages)
            figures = contents_pages(title, entries)
            if len(figures) == contents:
                break
            for fig in figures:
                plt.close(fig)
            contents = len(figures)
        buffer = io.BytesIO()
        with PdfPages(buffer) as pdf:
            for fig in figures:
                pdf.savefig(fig)
                plt.close(fig)
    writer = PdfWriter()
    writer.append(PdfReader(buffer), outline_item="Contents", import_outline=False)
    for entry, reader in zip(entries, readers, strict=True):
        writer.append(reader, outline_item=f"{entry['name']}: {entry['verdict']}", import_outline=True)
    writer.page_mode = "/UseOutlines"
    __version__ = read_version()

    subject = "; ".join(f"{e['name']}: {e['verdict']}" for e in entries)
    writer.add_metadata(
        {
            "/Title": title,
            "/Subject": subject,
            "/Keywords": "gradflow, report",
            "/Creator": f"gradflow {__version__}",
        }
    )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            writer.write(fh)
    return start - 1
