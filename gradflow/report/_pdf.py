"""Atomic, reproducible PDF and CSV writers and the pages a study report is made of."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import platform
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window

import matplotlib.pyplot as plt
import numpy as np
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


@contextlib.contextmanager
def fixed_jitter(seed: int) -> Iterator[None]:
    """Seed numpy's global generator inside the block and restore it after.

    seaborn's ``stripplot`` jitters points with the global generator, so without this the
    same data would give different PDF bytes on every run.
    """
    state = np.random.get_state()  # noqa: NPY002 - seaborn reads the legacy global generator
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def write_pdf(path: str | os.PathLike, pages: Sequence[plt.Figure], *, title: str, subject: str,
              keywords: Sequence[str], study: str | None = None, config: Any = None,
              source: str | None = None, reproduce: str | None = None,
              claim: Sequence[tuple[str, str]] = (), verdict: str | None = None) -> None:
    """Write ``pages`` to ``path`` with metadata, atomically.

    With ``study`` (and its ``config``, ``source``, ``reproduce``, ``claim`` and ``verdict``)
    a `title_page` comes first; its verdict is ``verdict``, else ``subject``.
    ``CreationDate`` comes from ``SOURCE_DATE_EPOCH`` when it is set (matplotlib
    honours it), so the same inputs give the same bytes.
    """
    from .. import __version__

    if study is not None:
        pages = [title_page(title, study, config, subject if verdict is None else verdict, source=source,
                            reproduce=reproduce, claim=claim), *pages]
    meta = {"Title": title, "Subject": subject, "Keywords": ", ".join(keywords),
            "Creator": f"gradflow {__version__}", "Author": "gradflow"}
    with atomic_path(path) as tmp:
        with PdfPages(tmp, metadata=meta) as pdf:
            for fig in pages:
                pdf.savefig(fig)
    for fig in pages:
        plt.close(fig)


LIBRARIES = ("gradflow", "numpy", "scipy", "autograd", "matplotlib", "seaborn", "pandas", "pypdf")


def library_versions() -> dict[str, str]:
    """Python's and every runtime library's version: what a report's numbers came from."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _config_rows(config: Any) -> pd.DataFrame:
    fields = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config or {})
    def show(value):
        if isinstance(value, (tuple, list)):
            return ", ".join(show(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)
    return pd.DataFrame({"parameter": list(fields), "value": [textwrap.shorten(show(v), 90)
                                                             for v in fields.values()]})


def title_page(title: str, study: str, config: Any, verdict: str, *, source: str | None = None,
               reproduce: str | None = None, claim: Sequence[tuple[str, str]] = ()) -> plt.Figure:
    """The first page of a report: its question, the claim, verdict, full configuration and library versions.

    ``claim`` holds ``(heading, text)`` pairs (a study's ``Claim.facts()``: the claim, its
    source and quote, the quantity, rule and threshold), printed before the verdict.
    ``config`` is the study's config dataclass (or a mapping). ``source`` (default
    ``analyses/<study>.py``) says what was analysed and ``reproduce`` (default: the
    ``gradflow report`` command with the ``<study>_config.toml`` written beside the PDF)
    how to get the same numbers again.
    """
    fig = plt.figure(figsize=PAGE)
    question = title.removeprefix("gradflow: ")
    question = question[:1].upper() + question[1:]
    fig.text(0.07, 0.93, "gradflow report", fontsize=12, color="0.35", va="top")
    heading = _wrap(question, 36)  # 22 pt bold: about 40 characters fit the A4 width
    fig.text(0.07, 0.89, heading, fontsize=22, weight="bold", va="top")
    y = 0.89 - 0.035 * (heading.count("\n") + 1) - 0.02
    seed = getattr(config, "seed", None) if not isinstance(config, dict) else config.get("seed")
    if reproduce is None:
        reproduce = (f"gradflow report {study} --config {study}_config.toml  (the configuration below, "
                     f"written beside this PDF)")
    # With a claim, "Source" names the seed file it comes from; the study's code is then "Code".
    facts = [("Study", study), ("Code" if claim else "Source", source or f"analyses/{study}.py"), *claim,
             ("Verdict", verdict.removeprefix("Verdict: ")), ("Seed", "-" if seed is None else str(seed)),
             ("Reproduce", reproduce)]
    for head, body in facts:
        fig.text(0.07, y, head, fontsize=10.5, weight="bold", va="top")
        body = _wrap(body, 80)
        fig.text(0.25, y, body, fontsize=10, va="top")
        y -= 0.022 * (body.count("\n") + 1) + 0.008
    rows = _config_rows(config)
    versions = pd.DataFrame(list(library_versions().items()), columns=["library", "version"])
    for head, table in (("Configuration", rows), ("Library versions", versions)):
        y -= 0.015
        fig.text(0.07, y, head, fontsize=11.5, weight="bold", va="top")
        height = 0.022 * (len(table) + 1)
        ax = fig.add_axes((0.07, y - 0.015 - height, 0.86, height))
        ax.axis("off")
        tab = ax.table(cellText=table.astype(str).to_numpy(), colLabels=list(table.columns),
                       cellLoc="left", colWidths=(0.3, 0.7), bbox=(0, 0, 1, 1))
        tab.auto_set_font_size(False)
        tab.set_fontsize(8.5)
        y -= height + 0.03
    return fig


def _wrap(text: str, width: int = 95) -> str:
    return "\n".join(textwrap.fill(p, width) if p else "" for p in text.split("\n"))


def table_page(title: str, paragraphs: Sequence[tuple[str, str]], table: pd.DataFrame | None = None,
               table_title: str = "", col_widths: Sequence[float] | None = None, *,
               more_tables: Sequence[tuple[str, pd.DataFrame, Sequence[float] | None]] = ()) -> plt.Figure:
    """A text page: a title, headed paragraphs, then tables of numbers, each under its own title.

    ``table`` (with ``table_title`` and ``col_widths``) is the first table; ``more_tables``
    holds ``(title, frame, col_widths)`` of any that follow it.
    """
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
    tables = ([(table_title, table, col_widths)] if table is not None else []) + list(more_tables)
    for head, frame, widths in tables:
        fig.text(0.07, y, head, fontsize=11.5, weight="bold", va="top")
        # The table fills its axes (bbox), so every row is 0.021 of the page and the next
        # heading lands right under it.
        height = min(0.021 * (len(frame) + 1), y - 0.08)
        ax = fig.add_axes((0.07, y - 0.025 - height, 0.86, height))
        ax.axis("off")
        tab = ax.table(cellText=frame.astype(str).to_numpy(), colLabels=list(frame.columns),
                       cellLoc="center", colWidths=widths, bbox=(0, 0, 1, 1))
        tab.auto_set_font_size(False)
        tab.set_fontsize(8.5)
        y -= height + 0.06
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
